"""Input restoration: squeeze every input before the model sees it (MITRE ATLAS AML.M0010).

The hardened model is ``model(squeeze(x))`` with the squeezers of feature squeezing
(Xu, Evans and Qi, NDSS 2018): bit-depth reduction and, for image rows, median
smoothing (see :mod:`bastion.guards.squeezing`). The preprocessing layer computes the
squeeze exactly in the forward pass, and its backward pass is the identity -- the
*BPDA* approximation of Athalye, Carlini and Wagner, "Obfuscated Gradients Give a
False Sense of Security", ICML 2018. So the white-box probes that verify it
(``evasion.pgd``, ``evasion.apgd``) attack the restored model *adaptively*: without
BPDA, rounding would zero every gradient, gradient attacks would fail, and the
remedy would look like a fix while only masking gradients.

Expect an honest, often small, gain: on its own input restoration is a weak defence
against an adaptive attacker (Athalye et al. 2018 break it fully at moderate budgets);
``bastion harden`` reports whatever the adaptive re-run measures, and says so when
the remedy did not fix the finding.

Examples
--------
>>> import torch
>>> from bastion.targets import InputSpec
>>> from bastion.targets.torch_target import TorchTarget
>>> from bastion.probes.context import ProbeContext
>>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
>>> t = TorchTarget(net, input_spec=InputSpec(shape=(4,), lower=0.0, upper=1.0),
...                 classes=["a", "b"])
>>> r = InputRestoration(bits=1, median=None).apply(t, None, ProbeContext())
>>> x = torch.tensor([[0.2, 0.7, 0.4, 0.9]], requires_grad=True)
>>> bool(torch.equal(r.target.module(x), net(torch.tensor([[0.0, 1.0, 0.0, 1.0]]))))
True
>>> r.target.module(x).sum().backward(); x.grad is not None
True
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from bastion.data.dataset import Dataset
from bastion.errors import TargetError
from bastion.findings import CatalogRefs
from bastion.guards.squeezing import Squeezers
from bastion.probes.context import ProbeContext
from bastion.remedies.base import Remedy, RemedyMeta, RemedyResult
from bastion.targets.base import Capability, Target
from bastion.targets.torch_target import TorchTarget

__all__ = ["InputRestoration", "InputRestorationParams", "Restored"]


class InputRestorationParams(BaseModel):
    """``bits`` (1..16 or None) and ``median`` window (2..7 or None); defaults 4 and 2."""

    model_config = ConfigDict(extra="forbid")

    bits: int | None = Field(4, ge=1, le=16)
    median: int | None = Field(2, ge=2, le=7)


class Restored(torch.nn.Module):
    """``model(squeeze(x))`` with a straight-through (BPDA) backward pass.

    Input ``(n, *shape)`` in the target's raw space, output the model's logits
    ``(n, K)``.
    """

    def __init__(self, model: torch.nn.Module, squeezers: Squeezers) -> None:
        super().__init__()
        self.model = model
        self.lower, self.upper = squeezers.lower, squeezers.upper
        self.bits, self.median = squeezers.bits, squeezers.median

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sq = Squeezers(self.lower, self.upper, self.bits, self.median)
        out: torch.Tensor = self.model(sq(x, bpda=True))
        return out


class InputRestoration(Remedy):
    """Bit-depth reduction and median smoothing in front of the model (AML.M0010).

    Wraps a deep copy of a torch target's module in :class:`Restored`; the original
    is untouched. Verified adaptively by ``evasion.pgd`` and ``evasion.apgd`` through
    the straight-through gradient (BPDA, Athalye et al. 2018). Needs inputs with
    finite scalar bounds (e.g. images in ``[0, 1]``).
    """

    meta: ClassVar[RemedyMeta] = RemedyMeta(
        id="evasion.input_restoration",
        title="Input restoration: bit-depth reduction and median smoothing",
        catalog=CatalogRefs(
            owasp=["ML01"], atlas_mitigations=["AML.M0010"], cwe=["CWE-1039"], failure_modes=["FM1"]
        ),
        verified_by=("evasion.pgd", "evasion.apgd"),
        needs=frozenset({Capability.GRADIENTS}),
    )
    Params: ClassVar[type[InputRestorationParams]] = InputRestorationParams

    def apply(self, target: Target, data: Dataset | None, context: ProbeContext) -> RemedyResult:
        """Return a restored copy of ``target``."""
        p = self.validated_params(InputRestorationParams)
        if not isinstance(target, TorchTarget):
            raise TargetError(
                f"evasion.input_restoration wraps torch models; {target.name!r} is a "
                f"{target.kind} target."
            )
        lo, hi = target.input_spec.bounds()
        finite = np.isfinite(lo).all() and np.isfinite(hi).all()
        if not (finite and np.all(lo == lo[0]) and np.all(hi == hi[0])):
            raise TargetError(
                f"evasion.input_restoration needs one finite [lower, upper] range for every "
                f"feature of {target.name!r} (e.g. images in [0, 1]); declare the bounds."
            )
        squeezers = Squeezers(float(lo[0]), float(hi[0]), p.bits, p.median)
        restored = Restored(copy.deepcopy(target.module), squeezers)
        hardened = TorchTarget(
            restored,
            input_spec=target.input_spec,
            classes=target.classes,
            name=target.name,
            device=target.device,
            batch_size=target.batch_size,
        )
        changes: dict[str, Any] = {
            "bits": p.bits,
            "median": p.median if len(target.input_spec.shape) == 3 else None,
            "bounds": [float(lo[0]), float(hi[0])],
            "gradient": "straight-through (BPDA) so verification attacks adaptively",
        }
        if data is not None and len(data.x_test):
            changes.update(_accuracies(target, hardened, data))
        return RemedyResult(
            target=hardened,
            changes=changes,
            notes="Inputs are squeezed before the model; verification uses BPDA gradients.",
        )


def _accuracies(before: TorchTarget, after: TorchTarget, data: Dataset) -> dict[str, Any]:
    from bastion.remedies.adversarial_training import accuracy

    a = accuracy(before.module, data.x_test, data.y_test, before.device)
    b = accuracy(after.module, data.x_test, data.y_test, after.device)
    return {
        "clean_accuracy_before": round(a, 4),
        "clean_accuracy_after": round(b, 4),
        "test_rows": len(data.y_test),
    }
