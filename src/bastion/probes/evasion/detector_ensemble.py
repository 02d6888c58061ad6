"""The ensemble-disagreement detector under adaptive attack.

The detector (:mod:`bastion.guards.ensemble`; the disagreement signal of Bagnall,
Bunescu & Stewart, "Training Ensembles to Detect Adversarial Examples", 2017) scores
a row by how far its members' softmax outputs spread: the mean L1 distance of each
member's distribution from the ensemble mean. Members are built the way
:meth:`EnsembleDisagreementGuard.from_target
<bastion.guards.ensemble.EnsembleDisagreementGuard.from_target>` builds them: the
target itself plus ``n_copies`` models of the same architecture trained from seeds
``seed + 1, ...`` on the dataset's training rows (:meth:`TorchTarget.train_copy
<bastion.targets.torch_target.TorchTarget.train_copy>`).

An attacker who knows the members attacks them jointly (Carlini & Wagner,
"Adversarial Examples Are Not Easily Detected: Bypassing Ten Detection Methods",
AISec 2017; Tramèr, Carlini, Brendel & Madry, "On Adaptive Attacks to Adversarial
Example Defenses", NeurIPS 2020). The adaptive loss, maximised by PGD, is::

    CE(f(x'), y) - lam * relu(D(x') - 0.9 * t) + lam * mean_i log softmax(m_i(x'))[c]

with ``f`` the deployed model, ``D`` the disagreement score, ``t`` the threshold,
``m_i`` the other members and ``c`` the deployed model's most likely wrong class at
the current iterate: misclassify, and pull every member to the same wrong answer so
that they agree again. Every member is a differentiable torch module, so the attack
uses exact gradients (no BPDA); the gradient and determinism checks of
:meth:`~bastion.probes.evasion.detector_attack.AdaptiveDetector.inspect` switch on
EoT for a randomised member and flag a non-differentiable one.

Examples
--------
>>> import torch
>>> from bastion.attacks.evasion.model import as_model
>>> _ = torch.manual_seed(0)
>>> det = EnsembleDetector(as_model(torch.nn.Linear(4, 3)), [torch.nn.Linear(4, 3)])
>>> x, y = torch.rand(5, 4), torch.zeros(5, dtype=torch.long)
>>> loss, logits, score = det.loss(x, y, lam=1.0, threshold=0.1)
>>> loss.shape, logits.shape, bool((score >= 0).all() and (score <= 2).all())
(torch.Size([5]), torch.Size([5, 3]), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from bastion.attacks.evasion.model import CountedModel
from bastion.data.dataset import Dataset
from bastion.errors import DataError
from bastion.guards.ensemble import disagreement_torch
from bastion.probes.evasion.detector_attack import MARGIN, AdaptiveDetector
from bastion.targets.base import Capability, Target

__all__ = ["EnsembleDetector", "train_members"]


def train_members(
    target: Target, data: Dataset, n_copies: int, seed: int, *, who: str
) -> list[torch.nn.Module]:
    """``n_copies`` modules retrained from seeds ``seed + 1, ...`` on ``data``'s training rows.

    Raises
    ------
    MissingCapabilityError
        If the target cannot train copies of itself.
    DataError
        If the dataset has no training rows.
    """
    target.require(Capability.TRAINING, who=who)
    if len(data.x_train) == 0:
        raise DataError(
            f"Dataset {data.name!r} has no training rows; {who} trains the ensemble members on "
            "x_train/y_train."
        )
    trainable: Any = target  # TRAINING is checked above; train_copy is that capability
    copies = [
        trainable.train_copy(data.x_train, data.y_train, seed=seed + i + 1) for i in range(n_copies)
    ]
    modules: list[torch.nn.Module] = []
    for copy in copies:
        module = getattr(copy, "module", None)
        if not isinstance(module, torch.nn.Module):
            raise DataError(f"{who} needs torch ensemble members; train_copy returned {copy!r}.")
        modules.append(module.eval())
    return modules


class EnsembleDetector(AdaptiveDetector):
    """The deployed model plus independently trained members, scored by disagreement."""

    label: ClassVar[str] = "ensemble-disagreement detector"
    score_unit: ClassVar[str] = "mean L1 distance"

    def __init__(self, model: CountedModel, members: Sequence[torch.nn.Module]) -> None:
        super().__init__(model)
        self.members = list(members)

    def modules(self) -> list[torch.nn.Module]:
        """The members other than the deployed model."""
        return self.members

    def _probs(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        logits = self.model(x)
        outs = [m(x) for m in self.members]
        probs = torch.stack([F.softmax(o, dim=1) for o in (logits, *outs)])
        return logits, outs, probs

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Mean L1 distance of the members' softmax outputs from their mean (0 to 2)."""
        return disagreement_torch(self._probs(x)[2])

    def loss(
        self, x: torch.Tensor, y: torch.Tensor, lam: float, threshold: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The adaptive loss of the module docstring (to maximise)."""
        logits, outs, probs = self._probs(x)
        score = disagreement_torch(probs)
        others = logits.detach().scatter(1, y[:, None], float("-inf"))
        wrong_class = others.argmax(dim=1, keepdim=True)
        agree = torch.stack([F.log_softmax(o, dim=1).gather(1, wrong_class)[:, 0] for o in outs])
        excess = F.relu(score - MARGIN * threshold)
        ce = F.cross_entropy(logits, y, reduction="none")
        return ce - lam * excess + lam * agree.mean(dim=0), logits, score

    def member_note(self, x: torch.Tensor, y: torch.Tensor, n_train: int, seed: int) -> str:
        """A sentence on how the members were built and how accurate they are on ``x``."""
        with torch.no_grad():
            accs = [float((m(x).argmax(dim=1) == y).float().mean()) for m in self.members]
        seeds = ", ".join(str(seed + i + 1) for i in range(len(self.members)))
        return (
            f"Ensemble: the model plus {len(self.members)} copies of its architecture trained "
            f"from seeds {seeds} on the {n_train} training rows (as "
            "EnsembleDisagreementGuard.from_target builds them), clean accuracy "
            f"{', '.join(f'{a:.2f}' for a in accs)} on the {len(x)} held-out rows. Every member "
            "is a differentiable torch module, so the joint attack needs no BPDA."
        )

    def threshold_definition(self) -> str:
        """What the threshold is a quantile of."""
        return (
            f"ensemble disagreement of the model and {len(self.members)} retrained "
            "member(s) (mean L1 distance of softmax outputs from their mean)"
        )
