"""The one rule for reading a perturbation budget: :class:`BudgetUnits`.

Every evasion probe and remedy (white-box, black-box, constrained tabular, the
detector evaluation, adversarial training) takes a ``units`` parameter and reads its
budgets with this rule. Budgets live in the target's *raw* input space --
normalisation is part of the model -- and ``units`` says what one unit is:

``auto`` (the default)
    *raw* when every feature shares one finite range (images: ``eps=8`` means 8 grey
    levels on pixels in ``[0, 255]``, ``8/255`` is the same budget on ``[0, 1]``),
    *range* otherwise (tabular data with mixed scales).
``raw``
    raw input units for every feature: an L∞ budget moves each feature by at most
    ``eps``; an L2 budget bounds ``||x_adv - x||_2``.
``range``
    fractions of each feature's range: feature ``i`` moves by at most
    ``eps * (upper_i - lower_i)`` (the reference data's range where a bound is
    missing, 1 where even that is zero); L2 is measured on the change divided by the
    ranges.

For inputs in ``[0, 1]`` the three readings agree. Default budget lists are
fractions of the range; in raw units with one shared range they are multiplied by
its width (the L∞ tolerance 0.1 becomes 25.5 on ``[0, 255]``). Explicit ``raw`` on
features of different ranges has no such conversion, so budgets must then be given.

Examples
--------
>>> from bastion.targets import InputSpec
>>> img = BudgetUnits.resolve(InputSpec(shape=(1, 8, 8), lower=0.0, upper=255.0))
>>> img.kind, img.describe(), img.from_fractions([0.1])
('raw', 'raw units, pixels in [0, 255]', [25.5])
>>> img.budget_text("linf", 8)
'L∞ 8 (raw units, pixels in [0, 255])'
>>> tab = BudgetUnits.resolve(InputSpec(shape=(2,), lower=[0.0, 0.0], upper=[1.0, 100.0]))
>>> tab.kind, tab.describe()
('range', "fractions of each feature's range")
>>> BudgetUnits.resolve(InputSpec(shape=(2,), lower=0.0, upper=9.0), "range").kind
'range'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from bastion.errors import UsageError
from bastion.targets.spec import InputSpec

__all__ = ["NORM_NAMES", "BudgetUnits", "Units", "check_units"]

#: What a caller may ask for.
Units = Literal["auto", "raw", "range"]
#: Display names of the norms.
NORM_NAMES = {"linf": "L∞", "l2": "L2"}


def check_units(units: object, who: str) -> Units:
    """``units`` if it is ``"auto"``, ``"raw"`` or ``"range"``, else a :class:`UsageError`."""
    if units not in ("auto", "raw", "range"):
        raise UsageError(
            f"The 'units' parameter of {who} must be 'auto', 'raw' or 'range'; got {units!r}."
        )
    return units  # type: ignore[return-value]


def _fmt(v: float) -> str:
    return f"{v:g}"


@dataclass(frozen=True)
class BudgetUnits:
    """How the budgets of one run are read, after ``auto`` is resolved.

    Attributes
    ----------
    kind : {"raw", "range"}
        Raw input units, or fractions of each feature's range.
    requested : {"auto", "raw", "range"}
        What the caller asked for.
    shared : tuple of float or None
        ``(lower, upper)`` when every feature shares this one finite range.
    image : bool
        Rows with two or more axes (the description says "pixels").
    """

    kind: Literal["raw", "range"]
    requested: Units = "auto"
    shared: tuple[float, float] | None = None
    image: bool = False

    @classmethod
    def resolve(
        cls, spec: InputSpec, units: Units = "auto", *, who: str = "the attack"
    ) -> BudgetUnits:
        """Apply the rule of the module docstring to an input spec."""
        check_units(units, who)
        lo, hi = spec.bounds()
        shared = None
        if (
            len(lo)
            and np.isfinite(lo).all()
            and np.isfinite(hi).all()
            and np.all(lo == lo[0])
            and np.all(hi == hi[0])
            and hi[0] > lo[0]
        ):
            shared = (float(lo[0]), float(hi[0]))
        kind: Literal["raw", "range"] = (
            ("raw" if shared is not None else "range") if units == "auto" else units
        )
        return cls(kind, units, shared, len(spec.shape) >= 2)

    def describe(self) -> str:
        """What one budget unit is, e.g. ``"raw units, pixels in [0, 255]"``."""
        if self.kind == "range":
            return "fractions of each feature's range"
        if self.shared is None:
            return "raw units of each feature"
        what = "pixels" if self.image else "every feature"
        return f"raw units, {what} in [{_fmt(self.shared[0])}, {_fmt(self.shared[1])}]"

    def budget_text(self, norm: str, eps: float) -> str:
        """A budget with its norm and units, e.g. ``"L∞ 8 (raw units, pixels in [0, 255])"``."""
        return f"{NORM_NAMES.get(norm, norm)} {eps:g} ({self.describe()})"

    def axis_label(self, norm: str) -> str:
        """An axis label for a budget series."""
        return f"{NORM_NAMES.get(norm, norm)} budget ({self.describe()})"

    def from_fractions(
        self, fractions: Sequence[float], *, who: str = "the attack", name: str = "budgets"
    ) -> list[float]:
        """Default budgets (fractions of the range) in these units.

        Raises
        ------
        UsageError
            For raw units on features of different ranges (no single width to scale by).
        """
        if self.kind == "range":
            return [float(v) for v in fractions]
        if self.shared is None:
            raise UsageError(
                f"The {name!r} parameter of {who} has no default in raw units for features "
                "with different ranges; give it explicitly in raw units, or use units 'range'."
            )
        width = self.shared[1] - self.shared[0]
        return [float(f"{v * width:.10g}") for v in fractions]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record for findings: resolved and requested units, shared range."""
        return {
            "units": self.kind,
            "requested": self.requested,
            "shared_range": None if self.shared is None else list(self.shared),
            "meaning": self.describe(),
        }
