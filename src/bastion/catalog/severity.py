"""The severity bar: from what a finding proves to critical, important, moderate or low.

Bastion rates findings the way a security bug bar does (the idea comes from Microsoft's
"Failure Modes in Machine Learning"): what the attacker gains decides the level, how much
of it was shown and how cheaply adjust it, and the OWASP ML Top 10 risk factors of the
threats involved can raise it. The thresholds and tables live in ``severity.yaml`` and
every rule is explained, with a table, in ``docs/severity.md``. In order:

1. **Extent 0** - nothing was proven: severity ``none``; no other rule applies.
2. **Band** - ``extent >= bands.strong`` is *strong*, ``>= bands.partial`` *partial*,
   anything above 0 *weak*.
3. **Base level** - looked up by effect and band. Evasion and degradation have separate,
   higher rows when the model makes a security decision.
4. **Effort** - for effects where it applies, low effort raises one level (never above
   the row's ceiling) and high effort lowers one level (never below low).
5. **OWASP** - if any mapped OWASP entry is rated easy to exploit *and* difficult to
   detect, the level rises one more (never above critical).

Examples
--------
>>> from bastion.catalog.severity import Effect, Effort, Impact, rate
>>> r = rate(Impact(Effect.EVASION, extent=0.8, effort=Effort.LOW, security_decision=True))
>>> r.severity.value
'critical'
>>> rate(Impact(Effect.DEGRADATION, extent=0.0)).severity.value
'none'
>>> rate(Impact(Effect.TAMPERING, extent=0.3), owasp=["ML07"]).severity.value
'critical'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bastion.catalog.entries import OwaspEntry, Source
from bastion.catalog.loader import data_directory, load_catalog, read_yaml
from bastion.errors import CatalogError, UsageError
from bastion.findings import Severity

if TYPE_CHECKING:
    from bastion.catalog.catalog import Catalog

__all__ = [
    "Effect",
    "EffectRule",
    "Effort",
    "Impact",
    "SeverityRating",
    "SeverityRules",
    "load_rules",
    "rate",
]

_LEVELS = (Severity.LOW, Severity.MODERATE, Severity.IMPORTANT, Severity.CRITICAL)
_SECURITY_SUFFIX = "_security_decision"


class Effect(StrEnum):
    """What a finding proves an attacker can achieve."""

    CODE_EXECUTION = "code_execution"
    """Run code of the attacker's choice, e.g. by loading a model file."""
    EVASION = "evasion"
    """Make the model give a wrong answer with crafted inputs."""
    DATA_DISCLOSURE = "data_disclosure"
    """Learn private training data (membership, reconstructed records)."""
    MODEL_THEFT = "model_theft"
    """Obtain a working copy of the model."""
    TAMPERING = "tampering"
    """Change the model, its data or its outputs undetected (poisoning, backdoors)."""
    INFORMATION_EXPOSURE = "information_exposure"
    """Learn facts that help later attacks (full scores, class names, model family)."""
    MISSING_CONTROL = "missing_control"
    """A protective control is absent (no query budget, no signature check)."""
    DEGRADATION = "degradation"
    """Accuracy falls under conditions an attacker or the world can bring about."""


class Effort(StrEnum):
    """What the attack cost: budget size, number of queries, access needed."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True)
class Impact:
    """What a finding proved, as the input to :func:`rate`.

    Parameters
    ----------
    effect : Effect
    extent : float
        In [0, 1]: the share of attempts that succeeded, the share of accuracy lost, or
        the share of the threat proven. 0 means nothing was proven.
    effort : Effort
        The attacker's cost; medium unless the probe knows better.
    security_decision : bool
        True when the model's output decides something security-relevant (malware,
        fraud, authentication).
    """

    effect: Effect
    extent: float
    effort: Effort = Effort.MEDIUM
    security_decision: bool = False

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "effect", Effect(self.effect))
            object.__setattr__(self, "effort", Effort(self.effort))
        except ValueError as err:
            raise UsageError(
                f"Impact got {err.args[0]}; use an Effect and an Effort member."
            ) from None
        extent = float(self.extent)
        if not (math.isfinite(extent) and 0.0 <= extent <= 1.0):
            raise UsageError(f"Impact extent must be a number in [0, 1]; got {self.extent!r}.")
        object.__setattr__(self, "extent", extent)


@dataclass(frozen=True)
class SeverityRating:
    """A severity and the rules that produced it, in plain words, in order."""

    severity: Severity
    rationale: list[str] = field(default_factory=list)


# -- rules (severity.yaml) ----------------------------------------------------------------
class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Bands(_Frozen):
    """Extent thresholds of the strong and partial bands."""

    strong: float = Field(gt=0, le=1)
    partial: float = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if self.partial > self.strong:
            raise ValueError("bands.partial must not exceed bands.strong")
        return self


class EffectRule(_Frozen):
    """Base levels of one effect per band, and how effort moves them."""

    strong: Severity
    partial: Severity
    weak: Severity
    effort_applies: bool
    ceiling: Severity = Severity.CRITICAL

    @model_validator(mode="after")
    def _levels(self) -> EffectRule:
        if Severity.NONE in (self.strong, self.partial, self.weak, self.ceiling):
            raise ValueError("levels must be low, moderate, important or critical")
        if not self.weak <= self.partial <= self.strong <= self.ceiling:
            raise ValueError("levels must satisfy weak <= partial <= strong <= ceiling")
        return self


class OwaspRaise(_Frozen):
    """The OWASP risk-factor rule: which ratings raise a level, and by how much."""

    exploitability: Literal["easy", "moderate", "difficult"]
    detectability: Literal["easy", "moderate", "difficult"]
    steps: int = Field(ge=0, le=3)


class SeverityRules(_Frozen):
    """The whole severity bar, as read from ``severity.yaml``."""

    version: str
    source: Source
    bands: Bands
    effects: dict[str, EffectRule]
    owasp_raise: OwaspRaise

    @model_validator(mode="after")
    def _complete(self) -> SeverityRules:
        known = {e.value for e in Effect}
        missing = known - set(self.effects)
        if missing:
            raise ValueError(f"effects has no rule for {', '.join(sorted(missing))}")
        for key in self.effects:
            if key not in known and key.removesuffix(_SECURITY_SUFFIX) not in known:
                raise ValueError(f"effects has a rule for unknown effect {key!r}")
        return self

    def rule_for(self, impact: Impact) -> tuple[str, EffectRule]:
        """The row that applies to ``impact`` and its key."""
        key = impact.effect.value
        if impact.security_decision and key + _SECURITY_SUFFIX in self.effects:
            key += _SECURITY_SUFFIX
        return key, self.effects[key]


@cache
def load_rules() -> SeverityRules:
    """The severity bar shipped in ``severity.yaml``, read once per process."""
    data = read_yaml(data_directory(), "severity.yaml")
    try:
        return SeverityRules.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CatalogError(
            f"Catalog file 'severity.yaml' is invalid at {where}: {first['msg']}; fix the file."
        ) from None


# -- rating -------------------------------------------------------------------------------
_EFFECT_PHRASES = {
    Effect.CODE_EXECUTION: "Code execution",
    Effect.EVASION: "Evasion",
    Effect.DATA_DISCLOSURE: "Training-data disclosure",
    Effect.MODEL_THEFT: "Model theft",
    Effect.TAMPERING: "Tampering",
    Effect.INFORMATION_EXPOSURE: "Information exposure",
    Effect.MISSING_CONTROL: "A missing control",
    Effect.DEGRADATION: "Degradation",
}


def _shift(level: Severity, steps: int, *, floor: Severity, ceiling: Severity) -> Severity:
    index = _LEVELS.index(level) + steps
    index = max(_LEVELS.index(floor), min(_LEVELS.index(ceiling), index))
    return _LEVELS[index]


def _percent(value: float) -> str:
    return f"{value * 100:.3g}%"


def _owasp_entries(ids: Sequence[str], catalog: Catalog) -> list[OwaspEntry]:
    found = []
    for entry_id in ids:
        entry = catalog.get(entry_id)
        if not isinstance(entry, OwaspEntry):
            raise CatalogError(
                f"Severity rating got {entry_id!r} as an OWASP id, but it is a "
                f"{entry.kind.value} entry; pass OWASP ids such as 'ML01'."
            )
        found.append(entry)
    return found


def rate(
    impact: Impact,
    owasp: Sequence[str] = (),
    *,
    catalog: Catalog | None = None,
    rules: SeverityRules | None = None,
) -> SeverityRating:
    """Rate a finding from what it proved and the OWASP entries it maps to.

    Parameters
    ----------
    impact : Impact
        The effect, its extent, the attacker's effort and whether the model makes a
        security decision.
    owasp : sequence of str
        OWASP ML Top 10 ids the finding maps to (e.g. ``finding.catalog.owasp``).
    catalog : Catalog, optional
        Where to read OWASP risk factors; the shipped catalog by default.
    rules : SeverityRules, optional
        The severity bar; the shipped ``severity.yaml`` by default.

    Returns
    -------
    SeverityRating
        ``severity`` and ``rationale``: one plain sentence per rule that fired.

    Raises
    ------
    CatalogError
        If an id in ``owasp`` is unknown or not an OWASP entry.
    """
    rules = rules or load_rules()
    catalog = catalog or load_catalog()
    entries = _owasp_entries(owasp, catalog)  # validate ids even when nothing was proven
    phrase = _EFFECT_PHRASES[impact.effect]

    if impact.extent == 0.0:
        return SeverityRating(Severity.NONE, [f"{phrase} was not shown (extent 0): severity none."])

    # bands and base level
    bands = rules.bands
    if impact.extent >= bands.strong:
        band, threshold = "strong", f"at least {_percent(bands.strong)}"
    elif impact.extent >= bands.partial:
        band, threshold = "partial", f"at least {_percent(bands.partial)}"
    else:
        band, threshold = "weak", f"below {_percent(bands.partial)}"
    key, rule = rules.rule_for(impact)
    level: Severity = getattr(rule, band)
    context = " against a model that makes a security decision" if key != impact.effect else ""
    rationale = [
        f"{phrase}{context} was shown with extent {_percent(impact.extent)} "
        f"({band}: {threshold}): base level {level.value}."
    ]

    # attacker effort
    if rule.effort_applies and impact.effort is Effort.LOW:
        raised = _shift(level, +1, floor=Severity.LOW, ceiling=max(rule.ceiling, level))
        if raised > level:
            rationale.append(f"Low attacker effort raises it one level to {raised.value}.")
        else:
            rationale.append(
                f"Low attacker effort would raise it, but this effect is capped at "
                f"{rule.ceiling.value}."
            )
        level = raised
    elif rule.effort_applies and impact.effort is Effort.HIGH:
        lowered = _shift(level, -1, floor=Severity.LOW, ceiling=Severity.CRITICAL)
        if lowered < level:
            rationale.append(f"High attacker effort lowers it one level to {lowered.value}.")
        else:
            rationale.append("High attacker effort would lower it, but low is the floor.")
        level = lowered

    # OWASP risk factors
    cond = rules.owasp_raise
    hits = [
        e.id
        for e in entries
        if e.exploitability.rating == cond.exploitability
        and e.detectability.rating == cond.detectability
    ]
    if hits and cond.steps:
        raised = _shift(level, cond.steps, floor=Severity.LOW, ceiling=Severity.CRITICAL)
        who = " and ".join(dict.fromkeys(hits))
        factors = f"{cond.exploitability} to exploit and {cond.detectability} to detect"
        if raised > level:
            steps = "one level" if raised.rank - level.rank == 1 else "levels"
            rationale.append(f"OWASP rates {who} {factors}: raised {steps} to {raised.value}.")
        else:
            rationale.append(
                f"OWASP rates {who} {factors}, but {level.value} is already the highest level."
            )
        level = raised
    return SeverityRating(level, rationale)
