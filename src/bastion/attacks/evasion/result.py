"""What a white-box evasion attack returns: :class:`AttackResult`.

Examples
--------
>>> import torch
>>> r = AttackResult(x_adv=torch.zeros(2, 3), success=torch.tensor([True, False]),
...                  norms=torch.tensor([0.1, float("inf")]), queries=8, attack="pgd",
...                  norm="linf")
>>> r.success_rate, r.n
(0.5, 2)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bastion.attacks.evasion.projections import Norm

__all__ = ["AttackResult"]


@dataclass(frozen=True)
class AttackResult:
    """Per-sample outcome of one attack run.

    Attributes
    ----------
    x_adv : Tensor
        ``(n, *shape)`` in the raw input space, inside the bounds. For successful
        rows the adversarial example; for the others the attack's last point (or the
        clean input, for minimum-norm attacks).
    success : Tensor
        ``(n,)`` bool: the model misclassifies ``x_adv`` (the attack's goal).
    norms : Tensor
        ``(n,)`` size of ``x_adv - x`` in the attack's norm, in units of the
        per-feature scale (see :mod:`~bastion.attacks.evasion.budget`). Minimum-norm
        attacks report ``inf`` where they found nothing.
    queries : int
        Model rows evaluated (forward passes, each charged as one query per row).
    attack : str
        Which attack produced it, e.g. ``"pgd"`` or ``"apgd-ce"``.
    norm : {"linf", "l2"}
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    norms: torch.Tensor
    queries: int
    attack: str
    norm: Norm

    @property
    def n(self) -> int:
        """Number of samples."""
        return len(self.success)

    @property
    def success_rate(self) -> float:
        """Share of samples the attack made misclassified."""
        return float(self.success.float().mean()) if self.n else 0.0
