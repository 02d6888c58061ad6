"""Shared parameters and preparation of the white-box evasion probes.

Budgets are fractions of each feature's range (see
:mod:`bastion.attacks.evasion.budget`): for inputs in ``[0, 1]`` they are raw
budgets, for tabular data they scale with each feature's declared range. Defaults:

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from bastion.attacks.evasion.budget import Domain
from bastion.attacks.evasion.model import CountedModel, as_model
from bastion.attacks.evasion.sanity import ModelHealth, SanityFlag, model_health
from bastion.data.dataset import Dataset
from bastion.errors import DataError, UsageError
from bastion.probes.base import ProbeParams
from bastion.targets.base import Capability, Target

__all__ = ["DEFAULT_BUDGETS", "DEFAULT_TOLERANCE", "EvasionParams", "Setup", "prepare"]

DEFAULT_BUDGETS: dict[str, list[float]] = {
    "linf": [0.01, 0.02, 0.05, 0.1, 0.2, 0.3],
    "l2": [0.1, 0.25, 0.5, 1.0, 2.0, 4.0],
}
DEFAULT_TOLERANCE: dict[str, float] = {"linf": 0.1, "l2": 1.0}
_EPS = 1e-12


class EvasionParams(ProbeParams):
    """Parameters every white-box evasion probe shares."""

    norm: Literal["linf", "l2"] = Field("linf", description="Perturbation norm.")
    budgets: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] | None = Field(
        None,
        min_length=1,
        max_length=20,
        description="Budgets as fractions of each feature's range (sorted for you); "
        "None for the norm's defaults.",
    )
    tolerance_budget: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="Largest budget the model should withstand; None for the norm's default.",
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
        budgets, tol = self.resolved_budgets(), self.resolved_tolerance()
        if self.norm == "linf" and (budgets[-1] > 1 or tol > 1):
            raise ValueError(
                "L∞ budgets and tolerance_budget are fractions of each feature's range and "
                "must lie in (0, 1]"
            )
        if budgets[0] > tol + _EPS:
            raise ValueError(
                f"needs at least one budget at or below tolerance_budget ({tol:g}) to judge "
                "the model"
            )
        return self

    def resolved_budgets(self) -> list[float]:
        """The budgets to test, ascending."""
        return list(self.budgets) if self.budgets else list(DEFAULT_BUDGETS[self.norm])

    def resolved_tolerance(self) -> float:
        """The tolerance budget."""
        return (
            self.tolerance_budget
            if self.tolerance_budget is not None
            else DEFAULT_TOLERANCE[self.norm]
        )


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
        If an L2 budget exceeds what the input could ever need.
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
    domain = Domain.from_spec(spec, reference=reference, device=device, dtype=x.dtype)
    if not domain.any_mutable:
        return "no feature may be changed (all are immutable, integer or one-hot)"
    if p.norm == "l2":
        reach = math.sqrt(int(domain.mutable.sum()))
        if p.resolved_budgets()[-1] > reach:
            raise UsageError(
                f"The 'budgets' parameter of {probe_id} has an L2 budget of "
                f"{p.resolved_budgets()[-1]:g}, more than {reach:.3g}, the L2 size of moving every "
                "mutable feature across its whole range; use smaller budgets."
            )
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
    return Setup(x=x, y=y, domain=domain, model=model, correct=correct, health=health)
