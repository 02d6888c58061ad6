"""Shared parameters and preparation of the white-box evasion probes.

Budgets are read in ``units`` with the one rule of
:mod:`bastion.attacks.evasion.units` (``auto``: raw input units when every feature
shares one finite range, fractions of each feature's range otherwise). Defaults, as
fractions of the range (multiplied by the shared range's width in raw units):

======  ========================================  ==========
norm    budgets                                   tolerance
======  ========================================  ==========
linf    0.01, 0.02, 0.05, 0.1, 0.2, 0.3           0.1
l2      0.1, 0.25, 0.5, 1, 2, 4                   1.0
======  ========================================  ==========

The *tolerance budget* is the largest perturbation the model is expected to
withstand; budgets above it are measured and plotted but do not make the model
vulnerable.

Examples
--------
>>> EvasionParams(norm="l2").resolved_budgets()
[0.1, 0.25, 0.5, 1.0, 2.0, 4.0]
>>> EvasionParams(budgets=[0.3, 0.1]).resolved_budgets()
[0.1, 0.3]
>>> from bastion.attacks.evasion.units import BudgetUnits
>>> pixels = BudgetUnits("raw", "auto", (0.0, 255.0), True)
>>> EvasionParams().resolved_budgets(pixels)[:2], EvasionParams().resolved_tolerance(pixels)
([2.55, 5.1], 25.5)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from bastion.attacks.evasion.budget import Domain
from bastion.attacks.evasion.model import CountedModel, as_model
from bastion.attacks.evasion.sanity import ModelHealth, SanityFlag, model_health
from bastion.attacks.evasion.units import BudgetUnits, Units
from bastion.data.dataset import Dataset
from bastion.errors import DataError, UsageError
from bastion.probes.base import ProbeParams
from bastion.targets.base import Capability, Target

__all__ = [
    "DEFAULT_BUDGETS",
    "DEFAULT_TOLERANCE",
    "EvasionParams",
    "Setup",
    "prepare",
    "resolve_budgets",
]

DEFAULT_BUDGETS: dict[str, list[float]] = {
    "linf": [0.01, 0.02, 0.05, 0.1, 0.2, 0.3],
    "l2": [0.1, 0.25, 0.5, 1.0, 2.0, 4.0],
}
DEFAULT_TOLERANCE: dict[str, float] = {"linf": 0.1, "l2": 1.0}
_EPS = 1e-12


class EvasionParams(ProbeParams):
    """Parameters every white-box evasion probe shares."""

    norm: Literal["linf", "l2"] = Field("linf", description="Perturbation norm.")
    units: Units = Field(
        "auto",
        description="Budget units: 'auto' (raw when every feature shares one finite range, "
        "else 'range'), 'raw' or 'range' (fractions of each feature's range).",
    )
    budgets: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] | None = Field(
        None,
        min_length=1,
        max_length=20,
        description="Budgets in 'units' (sorted for you); None for the norm's defaults.",
    )
    tolerance_budget: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="Largest budget the model should withstand, in 'units'; None for the "
        "norm's default.",
    )
    max_success_rate: float = Field(
        0.1, ge=0, lt=1, description="Largest acceptable attack success rate within tolerance."
    )
    n_samples: int = Field(200, ge=10, le=100_000, description="Test rows to attack.")
    batch_size: int = Field(500, ge=1, le=100_000, description="Rows per attack batch.")
    n_examples: int = Field(3, ge=0, le=20, description="Adversarial examples kept as evidence.")
    sanity_samples: int = Field(
        64, ge=0, le=10_000, description="Rows for the gradient and determinism checks."
    )

    @field_validator("budgets")
    @classmethod
    def _unique(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("must not repeat a budget")
        return None if v is None else sorted(v)

    @model_validator(mode="after")
    def _in_range(self) -> EvasionParams:
        if self.units == "range" and self.norm == "linf":
            given = [*(self.budgets or []), self.tolerance_budget or 0.0]
            if max(given) > 1:
                raise ValueError(
                    "L∞ budgets and tolerance_budget in units 'range' are fractions of each "
                    "feature's range and must lie in (0, 1]"
                )
        if self.budgets and self.tolerance_budget is not None:
            _check_tolerance(self.budgets, self.tolerance_budget, ValueError)
        return self

    def resolved_budgets(
        self, units: BudgetUnits | None = None, *, who: str = "the evasion probe"
    ) -> list[float]:
        """The budgets to test, ascending; defaults converted to ``units`` when given."""
        if self.budgets:
            return list(self.budgets)
        defaults = list(DEFAULT_BUDGETS[self.norm])
        return defaults if units is None else units.from_fractions(defaults, who=who)

    def resolved_tolerance(
        self, units: BudgetUnits | None = None, *, who: str = "the evasion probe"
    ) -> float:
        """The tolerance budget; the default converted to ``units`` when given."""
        if self.tolerance_budget is not None:
            return self.tolerance_budget
        default = DEFAULT_TOLERANCE[self.norm]
        if units is None:
            return default
        return units.from_fractions([default], who=who, name="tolerance_budget")[0]


def _check_tolerance(budgets: list[float], tol: float, error: type[Exception]) -> None:
    if min(budgets) > tol + _EPS:
        raise error(
            f"needs at least one budget at or below tolerance_budget ({tol:g}) to judge the model"
        )


def resolve_budgets(probe_id: str, p: EvasionParams, domain: Domain) -> tuple[list[float], float]:
    """The budgets and tolerance in the domain's units, checked against its reach.

    Raises
    ------
    UsageError
        If a budget exceeds what the input could ever need, raw units on features of
        different ranges come without budgets, or no budget is at or below the
        tolerance.
    """
    budgets = p.resolved_budgets(domain.units, who=probe_id)
    tol = p.resolved_tolerance(domain.units, who=probe_id)
    domain.check_budgets(budgets, p.norm, probe_id)
    domain.check_budgets([tol], p.norm, probe_id, name="tolerance_budget")
    try:
        _check_tolerance(budgets, tol, ValueError)
    except ValueError as err:
        raise UsageError(f"The 'budgets' parameter of {probe_id} {err}.") from None
    return budgets, tol


@dataclass
class Setup:
    """Everything an evasion probe needs once the inputs are validated.

    ``x`` ``(n, *shape)`` and ``y`` ``(n,)`` live on the target's device; ``correct``
    marks rows the model classifies correctly without attack.
    """

    x: torch.Tensor
    y: torch.Tensor
    domain: Domain
    model: CountedModel
    correct: torch.Tensor
    health: ModelHealth | None
    budgets: list[float]
    tolerance: float

    @property
    def units(self) -> BudgetUnits:
        """How the budgets are read."""
        return self.domain.units

    @property
    def n(self) -> int:
        """Sampled rows."""
        return len(self.y)

    @property
    def n_correct(self) -> int:
        """Rows classified correctly without attack."""
        return int(self.correct.sum())

    @property
    def flags(self) -> list[SanityFlag]:
        """Warning signs from the model checks."""
        return [] if self.health is None else self.health.flags()


def prepare(
    probe_id: str, target: Target, data: Dataset, p: EvasionParams, seed: int
) -> Setup | str:
    """Validate inputs, build the domain and run the clean and sanity checks.

    Returns a :class:`Setup`, or a sentence saying why the probe cannot judge the
    model (for an inconclusive finding).

    Raises
    ------
    MissingCapabilityError
        If the target has no gradients.
    DataError
        If the data do not fit the target.
    UsageError
        If a budget exceeds what the input could ever need (see
        :func:`resolve_budgets`).
    """
    target.require(Capability.GRADIENTS, who=f"The {probe_id} probe")
    spec = target.input_spec
    if np.dtype(spec.dtype).kind != "f":
        return f"the model takes {spec.dtype} inputs; gradient attacks need floating-point inputs"
    x_np, y_np = data.test_sample(p.n_samples, seed=seed)
    if len(y_np) and int(y_np.max()) >= target.n_classes:
        raise DataError(
            f"The data have labels up to {int(y_np.max())} but the model has {target.n_classes} "
            "classes; use data that matches the model."
        )
    spec.check(x_np, what="test data")
    reference = np.concatenate([data.x_train, data.x_test]) if len(data.x_train) else x_np
    device = torch.device(getattr(target, "device", "cpu"))
    x = torch.from_numpy(np.ascontiguousarray(x_np, dtype=np.dtype(spec.dtype))).to(device)
    y = torch.from_numpy(np.asarray(y_np, dtype=np.int64)).to(device)
    domain = Domain.from_spec(
        spec, reference=reference, device=device, dtype=x.dtype, units=p.units, who=probe_id
    )
    if not domain.any_mutable:
        return "no feature may be changed (all are immutable, integer or one-hot)"
    budgets, tolerance = resolve_budgets(probe_id, p, domain)
    model = as_model(target)
    with torch.no_grad():
        pred = torch.cat(
            [model(x[i : i + p.batch_size]).argmax(dim=1) for i in range(0, len(x), p.batch_size)]
        )
    correct = pred == y
    health = None
    if p.sanity_samples:
        m = min(p.sanity_samples, len(x))
        health = model_health(model, x[:m], y[:m], domain=domain)
    chance = 1.0 / target.n_classes
    accuracy = float(correct.float().mean())
    if accuracy < chance + 0.1:
        return (
            f"clean accuracy on the sample is {accuracy:.2f}, close to chance ({chance:.2f}); "
            "check that the data match the model's input space"
        )
    return Setup(
        x=x,
        y=y,
        domain=domain,
        model=model,
        correct=correct,
        health=health,
        budgets=budgets,
        tolerance=tolerance,
    )
