"""``input.ensemble_disagreement``: detect adversarial inputs by disagreement among models.

Adversarial examples crafted against one model transfer imperfectly to independently
trained models of the same task, while clean inputs get consistent answers. The
guard runs the input through several members (the production model plus copies
trained from other random seeds, or any models of the same task) and scores each row
by how far the members' softmax outputs spread: the mean L1 distance between each
member's distribution and the ensemble mean (0 when all agree; at most 2). This is
the disagreement signal of ensemble-based detection, e.g. Bagnall, Bunescu and
Stewart, "Training Ensembles to Detect Adversarial Examples" (2017), here without
their diversity-promoting training (members differ only by seed or by whatever you
supply; say so when reporting).

:meth:`EnsembleDisagreementGuard.calibrated` sets the threshold to the ``1 - fpr``
quantile of scores on clean in-distribution rows. Caveat, stated plainly: an
attacker who knows all members can attack them jointly (the ensemble is then one
bigger model), so evaluate it adaptively before relying on it:
``evasion.detector_adaptive`` with ``detector: ensemble``
(:mod:`bastion.probes.evasion.detector_ensemble`) builds the members the way
:meth:`EnsembleDisagreementGuard.from_target` does, calibrates at a fixed
false-positive rate and attacks model and members together;
:func:`disagreement_torch` is the same score, differentiable.

Members are :class:`~bastion.targets.torch_target.TorchTarget` objects or torch
modules (run on tensors) or any :class:`~bastion.targets.base.Target` with
probabilities (run through ``predict_proba``).

Examples
--------
>>> import numpy as np, torch
>>> from bastion.guards.base import GuardRequest
>>> _ = torch.manual_seed(0)
>>> members = [torch.nn.Linear(4, 3) for _ in range(3)]
>>> x = np.random.default_rng(0).random((40, 4)).astype(np.float32)
>>> guard = EnsembleDisagreementGuard.calibrated(members, x, fpr=0.1)
>>> guard.scores(x).shape
(40,)
>>> guard.before(GuardRequest("p", "m", x[:1])).action.value in ("allow", "deny")
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from bastion.errors import DataError, TargetError, UsageError
from bastion.guards.base import Decision, Guard, GuardMeta, GuardRequest
from bastion.guards.squeezing import DETECTOR_CATALOG, calibrate_threshold
from bastion.targets.base import Capability, Target

__all__ = ["EnsembleDisagreementGuard", "disagreement", "disagreement_torch"]


def disagreement(probs: np.ndarray) -> np.ndarray:
    """Scores ``(n,)`` for member probabilities ``(m, n, K)``: mean L1 to the ensemble mean.

    >>> disagreement(np.array([[[1.0, 0.0]], [[0.0, 1.0]]])).tolist()
    [1.0]
    """
    p = np.asarray(probs, dtype=np.float64)
    scores: np.ndarray = np.abs(p - p.mean(axis=0, keepdims=True)).sum(axis=2).mean(axis=0)
    return scores


def disagreement_torch(probs: torch.Tensor) -> torch.Tensor:
    """:func:`disagreement` on a tensor ``(m, n, K)``, differentiable: scores ``(n,)``.

    >>> disagreement_torch(torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])).tolist()
    [1.0]
    """
    return (probs - probs.mean(dim=0, keepdim=True)).abs().sum(dim=2).mean(dim=0)


def _probs(member: Any, x: np.ndarray) -> np.ndarray:
    module = getattr(member, "module", member)
    if isinstance(module, torch.nn.Module):
        device = torch.device(getattr(member, "device", "cpu"))
        with torch.no_grad():
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
            out = torch.softmax(module(t).double(), dim=1)
        arr: np.ndarray = out.cpu().numpy()
        return arr
    if isinstance(member, Target):
        return np.asarray(member.predict_proba(x), dtype=np.float64)
    raise UsageError(
        f"Ensemble members must be torch modules or Bastion targets; got {type(member).__name__}."
    )


class EnsembleDisagreementGuard(Guard):
    """Refuses inputs on which independently trained models disagree too much.

    Parameters
    ----------
    members : sequence
        At least two models of the same task with the same classes.
    threshold : float
        Rows whose disagreement score exceeds it are adversarial.
    action : {"deny", "flag"}
        Refuse the request (HTTP 422) or let it through and record an event.
    """

    meta: ClassVar[GuardMeta] = GuardMeta(
        id="input.ensemble_disagreement",
        title="Detect adversarial inputs by ensemble disagreement",
        catalog=DETECTOR_CATALOG,
        order=41,
    )

    def __init__(self, members: Sequence[Any], *, threshold: float, action: str = "deny") -> None:
        if len(members) < 2:
            raise UsageError(
                f"Ensemble disagreement needs at least two members; got {len(members)}."
            )
        if not (isinstance(threshold, int | float) and math.isfinite(threshold) and threshold >= 0):
            raise UsageError(f"threshold must be a finite number >= 0; got {threshold!r}.")
        if action not in ("deny", "flag"):
            raise UsageError(f"action must be 'deny' or 'flag'; got {action!r}.")
        self.members = list(members)
        self.threshold = float(threshold)
        self.action = action

    @classmethod
    def calibrated(
        cls, members: Sequence[Any], clean: np.ndarray, *, fpr: float = 0.05, action: str = "deny"
    ) -> EnsembleDisagreementGuard:
        """A guard refusing about ``fpr`` of rows like ``clean`` (``(m, *shape)``)."""
        guard = cls(members, threshold=0.0, action=action)
        guard.threshold = calibrate_threshold(guard.scores(clean), fpr)
        return guard

    @classmethod
    def from_target(
        cls,
        target: Target,
        x_train: np.ndarray,
        y_train: np.ndarray,
        clean: np.ndarray,
        *,
        n_copies: int = 2,
        seed: int = 0,
        fpr: float = 0.05,
    ) -> EnsembleDisagreementGuard:
        """``target`` plus ``n_copies`` copies retrained from seeds ``seed + 1, ...``."""
        if n_copies < 1:
            raise UsageError(f"n_copies must be >= 1; got {n_copies!r}.")
        target.require(Capability.TRAINING, who="Ensemble disagreement from_target")
        trainable: Any = target
        copies = [
            trainable.train_copy(x_train, y_train, seed=seed + i + 1) for i in range(n_copies)
        ]
        return cls.calibrated([target, *copies], clean, fpr=fpr)

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Disagreement scores ``(n,)`` for rows ``x``."""
        outs = [_probs(m, np.asarray(x)) for m in self.members]
        shapes = {o.shape for o in outs}
        if len(shapes) != 1:
            raise TargetError(
                f"Ensemble members returned outputs of different shapes {sorted(shapes)}; use "
                "models of the same task with the same classes."
            )
        return disagreement(np.stack(outs))

    def before(self, request: GuardRequest) -> Decision:
        """Refuse (or flag) the request when any row's disagreement exceeds the threshold."""
        x = np.asarray(request.inputs)
        if x.dtype.kind not in "fiu" or x.ndim < 2:
            return Decision.deny("Inputs must be a numeric batch.", http_status=400)
        try:
            scores = self.scores(x.astype(np.float32))
        except (RuntimeError, DataError, TargetError) as err:
            return Decision.deny(f"Inputs could not be checked ({err}).", http_status=400)
        rows = np.flatnonzero(scores > self.threshold)
        if len(rows) == 0:
            return Decision.allow()
        reason = (
            f"{len(rows)} of {len(x)} row(s) look adversarial (ensemble disagreement "
            f"{float(scores[rows].max()):.3f} > {self.threshold:.3f})."
        )
        if self.action == "flag":
            return Decision.flag(reason, rows=[int(r) for r in rows])
        return Decision.deny(reason, http_status=422)
