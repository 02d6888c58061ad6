"""The feature-squeezing detector under adaptive attack (BPDA).

Xu, Evans & Qi, "Feature Squeezing: Detecting Adversarial Examples in Deep Neural
Networks", NDSS 2018 (the detector, :mod:`bastion.guards.squeezing`). The adaptive
loss is ``CE(f(x'), y) - lam * relu(score(x') - 0.9 * t)`` (``t`` the threshold),
where ``score`` is the joint L1 score computed through straight-through squeezers:
rounding and the median have no useful gradient, so the backward pass treats them as
the identity (BPDA, Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False
Sense of Security", ICML 2018). The squeezers are deterministic, so no Expectation
over Transformation is needed for them.

Examples
--------
>>> import torch
>>> from bastion.attacks.evasion.model import as_model
>>> from bastion.guards.squeezing import Squeezers
>>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
>>> det = SqueezingDetector(as_model(net), Squeezers(0.0, 1.0, bits=2, median=None))
>>> det.scores(torch.rand(5, 4)).shape
torch.Size([5])
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from bastion.attacks.evasion.budget import Domain
from bastion.attacks.evasion.model import CountedModel
from bastion.attacks.evasion.projections import Norm
from bastion.guards.squeezing import Squeezers
from bastion.probes.evasion.detector_attack import MARGIN, AdaptiveDetector, adaptive_pgd

__all__ = ["SqueezingDetector", "adaptive_squeeze_attack"]


class SqueezingDetector(AdaptiveDetector):
    """The joint feature-squeezing detector of one model, attacked through BPDA."""

    label: ClassVar[str] = "feature-squeezing detector"
    score_unit: ClassVar[str] = "L1 distance"

    def __init__(self, model: CountedModel, squeezers: Squeezers) -> None:
        super().__init__(model)
        self.squeezers = squeezers
        self.notes.append(
            "The squeezers are deterministic, so the adaptive attack uses BPDA (straight-through "
            "squeezers) without Expectation over Transformation."
        )

    def _score(self, x: torch.Tensor, logits: torch.Tensor, bpda: bool) -> torch.Tensor:
        p = F.softmax(logits, dim=1)
        squeezed = self.squeezers.each(x, bpda=bpda)
        dists = [(p - F.softmax(self.model(s), dim=1)).abs().sum(1) for s in squeezed]
        return torch.stack(dists).amax(0)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Joint score: the largest L1 distance between softmax outputs on ``x`` and squeezed."""
        return self._score(x, self.model(x), bpda=False)

    def loss(
        self, x: torch.Tensor, y: torch.Tensor, lam: float, threshold: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``CE - lam * relu(score - 0.9 t)`` with straight-through squeezers."""
        logits = self.model(x)
        score = self._score(x, logits, bpda=True)
        excess = F.relu(score - MARGIN * threshold)
        return F.cross_entropy(logits, y, reduction="none") - lam * excess, logits, score

    def threshold_definition(self) -> str:
        """What the threshold is a quantile of."""
        sq = self.squeezers
        return f"joint feature-squeezing score (bits={sq.bits}, median={sq.median})"


def adaptive_squeeze_attack(
    f: CountedModel,
    sq: Squeezers,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: Norm,
    steps: int,
    lam: float,
    threshold: float,
    domain: Domain,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PGD on ``CE - lam * relu(score - 0.9 * threshold)`` with BPDA squeezers.

    Returns ``(evaded (n,), fooled (n,))``: some iterate was misclassified and scored
    at most ``threshold``; some iterate was misclassified at all (see
    :func:`~bastion.probes.evasion.detector_attack.adaptive_pgd`).
    """
    return adaptive_pgd(
        SqueezingDetector(f, sq),
        x,
        y,
        eps=eps,
        norm=norm,
        steps=steps,
        lam=lam,
        threshold=threshold,
        domain=domain,
        seed=seed,
    )
