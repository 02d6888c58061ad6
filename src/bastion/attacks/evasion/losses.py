"""Per-sample losses that gradient attacks maximise.

All functions take logits ``z`` of shape ``(n, K)`` and labels ``(n,)`` (int64) and
return one value per row, ``(n,)``; attacks sum them before differentiating, which
gives every row its own gradient because rows do not interact in an eval-mode model.

``cross_entropy``
    ``-log softmax(z)_y``: the loss of FGSM (Goodfellow et al. 2015), PGD (Madry
    et al. 2018) and APGD-CE.
``margin``
    ``max_{k != y} z_k - z_y`` (Carlini & Wagner 2017): positive exactly when the
    row is misclassified; used by the sanity checks because, unlike cross-entropy,
    its gradient does not vanish when the softmax saturates.
``dlr`` / ``dlr_targeted``
    The Difference of Logits Ratio of Croce & Hein, "Reliable evaluation of
    adversarial robustness with an ensemble of diverse parameter-free attacks", ICML
    2020, Eq. (4) and its targeted form::

        DLR(z, y)      = -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)
        DLR_T(z, y, t) = -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)

    with ``pi`` sorting the logits in decreasing order. Both are invariant to shifting
    and rescaling the logits, so a model cannot hide behind a saturated softmax.
    They need at least 3 (untargeted) and 4 (targeted) classes. With 3 classes the
    targeted denominator uses ``z_pi3`` for ``(z_pi3 + z_pi4) / 2``; with 2 classes
    no ratio of logit differences is informative (it is always +-1), so both fall
    back to the plain margin ``z_t - z_y`` (our generalisation, documented here).

Examples
--------
>>> import torch
>>> z = torch.tensor([[3.0, 1.0, 0.0, -1.0]])
>>> y = torch.tensor([0])
>>> round(float(margin(z, y)[0]), 3), round(float(dlr(z, y)[0]), 3)
(-2.0, -0.667)
>>> round(float(dlr_targeted(z, y, torch.tensor([1]))[0]), 3)
-0.571
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

__all__ = ["LossFn", "LossName", "cross_entropy", "dlr", "dlr_targeted", "get_loss", "margin"]

#: ``(logits (n, K), labels (n,)) -> (n,)``.
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: Names accepted by :func:`get_loss`.
LossName = Literal["ce", "dlr", "margin"]

_TINY = 1e-12


def cross_entropy(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per row, ``(n,)``."""
    return F.cross_entropy(z, y, reduction="none")


def _others_max(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return z.scatter(1, y[:, None], float("-inf")).amax(dim=1)


def margin(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``max_{k != y} z_k - z_y`` per row; > 0 exactly when the row is misclassified."""
    return _others_max(z, y) - z.gather(1, y[:, None])[:, 0]


def dlr(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Untargeted DLR loss per row (see the module docstring)."""
    if z.shape[1] < 3:
        return margin(z, y)
    ordered = z.sort(dim=1, descending=True).values
    third = ordered[:, 2]
    spread = (ordered[:, 0] - third).clamp_min(_TINY)
    return margin(z, y) / spread


def dlr_targeted(z: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Targeted DLR loss per row towards classes ``t`` ``(n,)`` (module docstring)."""
    gap = z.gather(1, t[:, None])[:, 0] - z.gather(1, y[:, None])[:, 0]
    k = z.shape[1]
    if k < 3:
        return gap
    ordered = z.sort(dim=1, descending=True).values
    low = (ordered[:, min(2, k - 1)] + ordered[:, min(3, k - 1)]) / 2
    spread = (ordered[:, 0] - low).clamp_min(_TINY)
    return gap / spread


def get_loss(name: LossName) -> LossFn:
    """The untargeted loss called ``name`` (``"ce"``, ``"dlr"`` or ``"margin"``)."""
    losses: dict[str, LossFn] = {"ce": cross_entropy, "dlr": dlr, "margin": margin}
    return losses[name]
