"""Running attacks in batches for the evasion probes, and turning failures into findings.

Examples
--------
>>> import torch
>>> from bastion.attacks.evasion.result import AttackResult
>>> x = torch.zeros(5, 2)
>>> def attack(rows, labels):
...     return AttackResult(rows + 1, labels > 0, torch.ones(len(rows)), len(rows), "demo", "linf")
>>> adv, hit, norms = in_batches(attack, x, torch.tensor([0, 1, 1, 0, 1]), torch.arange(5), 2)
>>> hit.tolist(), adv.shape
([False, True, True, False, True], torch.Size([5, 2]))
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bastion.attacks.evasion.result import AttackResult
from bastion.errors import MissingCapabilityError, TargetError
from bastion.findings import Finding, Status
from bastion.probes.base import Probe
from bastion.probes.context import ProbeContext
from bastion.targets.base import Target

__all__ = ["Attack", "guarded", "in_batches"]

#: ``(rows (m, *shape), labels (m,)) -> AttackResult``.
Attack = Callable[[torch.Tensor, torch.Tensor], AttackResult]


def in_batches(
    attack: Attack, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run ``attack`` on rows ``idx`` of ``x``/``y`` in batches.

    Returns ``(x_adv (m, *shape), success (m,), norms (m,))`` in the order of ``idx``.
    """
    if len(idx) == 0:
        empty = x[:0]
        return empty, torch.zeros(0, dtype=torch.bool, device=x.device), x.new_zeros(0)
    parts = [attack(x[chunk], y[chunk]) for chunk in torch.split(idx, batch_size)]
    return (
        torch.cat([r.x_adv for r in parts]),
        torch.cat([r.success for r in parts]),
        torch.cat([r.norms for r in parts]),
    )


def guarded(
    probe: Probe,
    target: Target,
    context: ProbeContext,
    variant: str,
    body: Callable[[], list[Finding]],
) -> list[Finding]:
    """Run ``body``; a model that fails or runs out of budget gives an inconclusive finding.

    A missing capability is a usage problem, not a property of the model, and is
    raised as it is.
    """
    try:
        return body()
    except MissingCapabilityError:
        raise
    except TargetError as err:  # NaN logits, a failing model, a spent query budget
        return [
            probe.finding(
                target,
                context,
                status=Status.INCONCLUSIVE,
                variant=variant,
                summary=f"The attack could not be completed, so robustness is unknown: {err}",
            )
        ]


def inconclusive(
    probe: Probe, target: Target, context: ProbeContext, variant: str, why: str
) -> list[Finding]:
    """A one-finding list saying why the probe cannot judge the model."""
    return [
        probe.finding(
            target,
            context,
            status=Status.INCONCLUSIVE,
            variant=variant,
            summary=f"Evasion robustness could not be measured: {why}.",
        )
    ]
