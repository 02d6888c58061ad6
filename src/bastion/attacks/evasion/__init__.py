"""Evasion attacks: inputs crafted to make a model answer wrongly (OWASP ML01).

White-box, gradient-based (a :class:`~bastion.targets.torch_target.TorchTarget`,
a ``torch.nn.Module`` or any logits function; batched, on the model's device):

==========================  ===================================================
:func:`fgsm`                one signed-gradient step (Goodfellow et al. 2015)
:func:`pgd`                 PGD, L∞/L2, restarts, per-sample early stop (Madry et al. 2018)
:func:`apgd`                APGD-CE / APGD-DLR (Croce & Hein 2020)
:func:`apgd_targeted`       APGD-T with the targeted DLR loss (Croce & Hein 2020)
:func:`fab`                 FAB / FAB-T minimum-norm attack (Croce & Hein 2020)
:func:`auto_attack`         the standard AutoAttack ensemble
==========================  ===================================================

Budgets live in a :class:`Domain` (bounds, per-feature scale, mutable features);
:mod:`.sanity` holds the gradient-masking checks. Black-box attacks (Square,
HopSkipJump) and the constrained tabular attack live in their own modules
(:mod:`.square`, :mod:`.hop_skip_jump`, :mod:`.constrained_pgd`) and are loaded
from here on first use.

Examples
--------
>>> import torch
>>> from bastion.attacks.evasion import pgd
>>> net = torch.nn.Linear(4, 2)
>>> r = pgd(net, torch.rand(3, 4), torch.zeros(3, dtype=torch.long), eps=0.5, steps=5)
>>> r.x_adv.shape
torch.Size([3, 4])
"""

import importlib
from typing import Any

from bastion.attacks.evasion.apgd import apgd
from bastion.attacks.evasion.apgd_targeted import apgd_targeted
from bastion.attacks.evasion.auto import STANDARD_MEMBERS, EnsembleResult, auto_attack
from bastion.attacks.evasion.budget import Domain
from bastion.attacks.evasion.fab import fab
from bastion.attacks.evasion.fgsm import fgsm
from bastion.attacks.evasion.pgd import pgd
from bastion.attacks.evasion.projections import Norm
from bastion.attacks.evasion.result import AttackResult
from bastion.attacks.evasion.sanity import SanityFlag, model_health

# Black-box and constrained attacks: imported when first used.
_LAZY = {
    "square_attack": "bastion.attacks.evasion.square",
    "SquareResult": "bastion.attacks.evasion.square",
    "hop_skip_jump": "bastion.attacks.evasion.hop_skip_jump",
    "HopSkipJumpResult": "bastion.attacks.evasion.hop_skip_jump",
    "constrained_pgd": "bastion.attacks.evasion.constrained_pgd",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bastion.attacks.evasion' has no attribute {name!r}")


__all__ = [
    "STANDARD_MEMBERS",
    "AttackResult",
    "Domain",
    "EnsembleResult",
    "Norm",
    "SanityFlag",
    "apgd",
    "apgd_targeted",
    "auto_attack",
    "fab",
    "fgsm",
    "model_health",
    "pgd",
]
