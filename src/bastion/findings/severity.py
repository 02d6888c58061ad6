"""The four-step severity scale Bastion uses for triage.

The scale follows the bug-bar idea from Microsoft's "Failure Modes in Machine
Learning": a finding is *critical*, *important*, *moderate* or *low*, and a finding
that shows no weakness has severity *none*. How a level is derived from what a
finding proves lives in :mod:`bastion.catalog.severity`.

Examples
--------
>>> from bastion.findings.severity import Severity
>>> Severity.IMPORTANT >= Severity.MODERATE
True
>>> Severity.parse("critical")
<Severity.CRITICAL: 'critical'>
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from bastion.errors import UsageError

_ORDER = {"none": 0, "low": 1, "moderate": 2, "important": 3, "critical": 4}


class Severity(StrEnum):
    """Ordered severity levels; comparisons follow the order none < low < … < critical."""

    NONE = "none"
    LOW = "low"
    MODERATE = "moderate"
    IMPORTANT = "important"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Position on the scale, 0 for ``none`` up to 4 for ``critical``."""
        return _ORDER[self.value]

    @classmethod
    def parse(cls, value: str | Severity) -> Severity:
        """Read a level from its name, case-insensitively.

        Raises
        ------
        UsageError
            If ``value`` names no level.
        """
        if isinstance(value, Severity):
            return value
        key = str(value).strip().lower()
        if key not in _ORDER:
            allowed = ", ".join(_ORDER)
            raise UsageError(f"Unknown severity {value!r}; use one of: {allowed}.")
        return cls(key)

    def _cmp(self, other: Any) -> int:
        if not isinstance(other, Severity):
            return NotImplemented  # type: ignore[no-any-return]
        return self.rank - other.rank

    def __lt__(self, other: Any) -> bool:
        return self._cmp(other) < 0

    def __le__(self, other: Any) -> bool:
        return self._cmp(other) <= 0

    def __gt__(self, other: Any) -> bool:
        return self._cmp(other) > 0

    def __ge__(self, other: Any) -> bool:
        return self._cmp(other) >= 0
