"""REPAIR: hardening steps, each naming the probes that verify it.

The concrete remedies import torch, so they load lazily: ``from bastion.remedies
import AdversarialTraining`` (or :data:`BUILTIN_REMEDIES`) imports them on first use
and importing :mod:`bastion.remedies.base` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bastion.remedies.base import Remedy, RemedyMeta, RemedyResult

if TYPE_CHECKING:
    from bastion.remedies.adversarial_training import AdversarialTraining
    from bastion.remedies.input_restoration import InputRestoration
    from bastion.remedies.safe_reserialisation import SafeReserialisation

__all__ = [
    "BUILTIN_REMEDIES",
    "AdversarialTraining",
    "InputRestoration",
    "Remedy",
    "RemedyMeta",
    "RemedyResult",
    "SafeReserialisation",
]

_LAZY = {
    "AdversarialTraining": "bastion.remedies.adversarial_training",
    "InputRestoration": "bastion.remedies.input_restoration",
    "SafeReserialisation": "bastion.remedies.safe_reserialisation",
}


def _builtin() -> dict[str, type[Remedy]]:
    classes = [getattr(importlib.import_module(m), name) for name, m in _LAZY.items()]
    return {cls.meta.id: cls for cls in classes}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "BUILTIN_REMEDIES":
        return _builtin()
    raise AttributeError(f"module 'bastion.remedies' has no attribute {name!r}")
