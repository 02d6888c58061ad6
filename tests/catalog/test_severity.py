"""The severity bar: one test per rule, plus the shipped rules file and its documentation."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from bastion.catalog.severity import (
    Effect,
    Effort,
    Impact,
    SeverityRating,
    SeverityRules,
    load_rules,
    rate,
)
from bastion.errors import CatalogError, UsageError
from bastion.findings import Severity

CRIT, IMP, MOD, LOW, NONE = (
    Severity.CRITICAL,
    Severity.IMPORTANT,
    Severity.MODERATE,
    Severity.LOW,
    Severity.NONE,
)

# Base levels at medium effort: (effect, security_decision) -> (strong, partial, weak)
BASE = {
    (Effect.CODE_EXECUTION, False): (CRIT, CRIT, CRIT),
    (Effect.EVASION, False): (IMP, MOD, LOW),
    (Effect.EVASION, True): (IMP, IMP, MOD),
    (Effect.TAMPERING, False): (IMP, IMP, MOD),
    (Effect.DATA_DISCLOSURE, False): (IMP, MOD, LOW),
    (Effect.MODEL_THEFT, False): (IMP, MOD, LOW),
    (Effect.INFORMATION_EXPOSURE, False): (MOD, LOW, LOW),
    (Effect.MISSING_CONTROL, False): (MOD, MOD, MOD),
    (Effect.DEGRADATION, False): (MOD, LOW, LOW),
    (Effect.DEGRADATION, True): (IMP, MOD, LOW),
}
EXTENTS = {"strong": 0.8, "partial": 0.3, "weak": 0.05}


# -- rule 1: nothing proven ------------------------------------------------------------------
@pytest.mark.parametrize("effect", list(Effect))
def test_extent_zero_is_none(effect: Effect) -> None:
    rating = rate(Impact(effect, 0.0, Effort.LOW, security_decision=True), owasp=["ML07"])
    assert rating.severity is NONE
    assert len(rating.rationale) == 1
    assert "extent 0" in rating.rationale[0]


def test_extent_zero_still_validates_owasp_ids() -> None:
    with pytest.raises(CatalogError, match="ML99"):
        rate(Impact(Effect.EVASION, 0.0), owasp=["ML99"])


# -- rules 2 and 3: bands and base levels ------------------------------------------------------
@pytest.mark.parametrize(("key", "levels"), list(BASE.items()), ids=lambda v: str(v))
def test_base_levels(key: tuple[Effect, bool], levels: tuple[Severity, ...]) -> None:
    effect, security = key
    for band, expected in zip(EXTENTS, levels, strict=True):
        rating = rate(Impact(effect, EXTENTS[band], security_decision=security))
        assert rating.severity is expected, (effect, security, band)
        assert f"({band}:" in rating.rationale[0]
        assert f"base level {expected.value}" in rating.rationale[0]
        assert len(rating.rationale) == 1  # medium effort, no OWASP ids: nothing else fires


@pytest.mark.parametrize(
    ("extent", "band"),
    [
        (1.0, "strong"),
        (0.5, "strong"),
        (0.4999, "partial"),
        (0.1, "partial"),
        (0.0999, "weak"),
        (1e-9, "weak"),
    ],
)
def test_band_boundaries(extent: float, band: str) -> None:
    rating = rate(Impact(Effect.MODEL_THEFT, extent))
    assert f"({band}:" in rating.rationale[0]


def test_security_decision_only_changes_effects_with_such_a_row() -> None:
    plain = rate(Impact(Effect.MODEL_THEFT, 0.3))
    flagged = rate(Impact(Effect.MODEL_THEFT, 0.3, security_decision=True))
    assert plain.severity is flagged.severity is MOD
    assert "security decision" not in flagged.rationale[0]
    assert (
        "security decision"
        in rate(Impact(Effect.EVASION, 0.3, security_decision=True)).rationale[0]
    )


# -- rule 4: effort ------------------------------------------------------------------------
def test_low_effort_strong_evasion_of_security_decision_is_critical() -> None:
    rating = rate(Impact(Effect.EVASION, 0.9, Effort.LOW, security_decision=True))
    assert rating.severity is CRIT
    assert rating.rationale[1] == "Low attacker effort raises it one level to critical."


def test_high_effort_lowers_one_level() -> None:
    rating = rate(Impact(Effect.EVASION, 0.9, Effort.HIGH, security_decision=True))
    assert rating.severity is MOD
    assert rating.rationale[1] == "High attacker effort lowers it one level to moderate."


def test_low_effort_is_capped_by_the_ceiling() -> None:
    rating = rate(Impact(Effect.EVASION, 0.9, Effort.LOW))
    assert rating.severity is IMP
    assert "capped at important" in rating.rationale[1]
    assert rate(Impact(Effect.EVASION, 0.3, Effort.LOW)).severity is IMP
    assert rate(Impact(Effect.DEGRADATION, 0.9, Effort.LOW)).severity is MOD


def test_high_effort_never_goes_below_low() -> None:
    rating = rate(Impact(Effect.EVASION, 0.05, Effort.HIGH))
    assert rating.severity is LOW
    assert "low is the floor" in rating.rationale[1]


@pytest.mark.parametrize(
    "effect", [Effect.CODE_EXECUTION, Effect.INFORMATION_EXPOSURE, Effect.MISSING_CONTROL]
)
@pytest.mark.parametrize("effort", list(Effort))
def test_effort_does_not_apply_to_some_effects(effect: Effect, effort: Effort) -> None:
    rating = rate(Impact(effect, 0.8, effort))
    assert rating.severity is BASE[(effect, False)][0]
    assert len(rating.rationale) == 1


def test_low_effort_data_disclosure_can_reach_critical() -> None:
    assert rate(Impact(Effect.DATA_DISCLOSURE, 0.6, Effort.LOW)).severity is CRIT
    assert rate(Impact(Effect.MODEL_THEFT, 0.6, Effort.LOW)).severity is IMP


# -- rule 5: OWASP risk factors --------------------------------------------------------------
@pytest.mark.parametrize("owasp_id", ["ML07", "ML08", "ml08"])
def test_easy_to_exploit_and_hard_to_detect_raises_one_level(owasp_id: str) -> None:
    rating = rate(Impact(Effect.TAMPERING, 0.05), owasp=[owasp_id])
    assert rating.severity is IMP
    assert rating.rationale[-1] == (
        f"OWASP rates {owasp_id.upper()} easy to exploit and difficult to detect: "
        "raised one level to important."
    )


@pytest.mark.parametrize(
    "owasp_id", ["ML01", "ML02", "ML03", "ML04", "ML05", "ML06", "ML09", "ML10"]
)
def test_other_owasp_ratings_do_not_change_the_level(owasp_id: str) -> None:
    with_ref = rate(Impact(Effect.EVASION, 0.3), owasp=[owasp_id])
    assert with_ref == rate(Impact(Effect.EVASION, 0.3))


def test_owasp_raise_applies_once_and_goes_past_effect_ceilings() -> None:
    rating = rate(Impact(Effect.EVASION, 0.9, Effort.LOW), owasp=["ML01", "ML07", "ML08"])
    assert rating.severity is CRIT  # important (capped) -> critical
    assert rating.rationale[-1].startswith("OWASP rates ML07 and ML08 easy to exploit")
    assert len(rating.rationale) == 3


def test_owasp_raise_never_exceeds_critical() -> None:
    rating = rate(Impact(Effect.CODE_EXECUTION, 1.0), owasp=["ML07"])
    assert rating.severity is CRIT
    assert "already the highest level" in rating.rationale[-1]


def test_unknown_or_non_owasp_ids_are_errors() -> None:
    with pytest.raises(CatalogError, match="Unknown catalog id 'ML11'"):
        rate(Impact(Effect.EVASION, 0.5), owasp=["ML11"])
    with pytest.raises(CatalogError, match="'FM1' as an OWASP id, but it is a failure_mode"):
        rate(Impact(Effect.EVASION, 0.5), owasp=["FM1"])


# -- inputs and rules file -------------------------------------------------------------------
@pytest.mark.parametrize("extent", [-0.1, 1.01, math.nan, math.inf])
def test_extent_must_be_in_unit_interval(extent: float) -> None:
    with pytest.raises(UsageError, match=r"extent must be a number in \[0, 1\]"):
        Impact(Effect.EVASION, extent)


def test_impact_accepts_enum_values_as_strings() -> None:
    impact = Impact("evasion", 1, "low", True)  # type: ignore[arg-type]
    assert impact.effect is Effect.EVASION and impact.effort is Effort.LOW
    assert isinstance(impact.extent, float)
    with pytest.raises(UsageError, match="use an Effect and an Effort member"):
        Impact("flooding", 0.5)  # type: ignore[arg-type]


def test_rating_shape() -> None:
    rating = rate(Impact(Effect.MISSING_CONTROL, 1.0))
    assert isinstance(rating, SeverityRating)
    assert rating.severity is MOD
    assert all(isinstance(line, str) and line.endswith(".") for line in rating.rationale)


def test_custom_rules_are_used() -> None:
    shipped = load_rules()
    no_raise = shipped.model_copy(
        update={"owasp_raise": shipped.owasp_raise.model_copy(update={"steps": 0})}
    )
    assert rate(Impact(Effect.TAMPERING, 0.05), owasp=["ML07"], rules=no_raise).severity is MOD


def test_rules_file_covers_every_effect() -> None:
    rules = load_rules()
    assert rules is load_rules()
    assert {e.value for e in Effect} <= set(rules.effects)
    assert rules.bands.strong == 0.5 and rules.bands.partial == 0.1


def test_rules_file_is_validated() -> None:
    data = load_rules().model_dump()
    data["effects"]["evasion"]["weak"] = "critical"  # weak above strong
    with pytest.raises(ValueError, match="weak <= partial <= strong <= ceiling"):
        SeverityRules.model_validate(data)
    data = load_rules().model_dump()
    del data["effects"]["degradation"]
    with pytest.raises(ValueError, match="no rule for degradation"):
        SeverityRules.model_validate(data)


def test_documented_table_matches_rules_file() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "severity.md"
    if not doc.is_file():
        pytest.skip("docs/severity.md is not present in this checkout")
    rows = re.findall(
        r"^\| `(\w+)` \| (\w+) \| (\w+) \| (\w+) \| (\w+) \| (\w+|—) \|$",
        doc.read_text(encoding="utf-8"),
        flags=re.MULTILINE,
    )
    rules = load_rules()
    assert {r[0] for r in rows} == set(rules.effects)
    for key, strong, partial, weak, effort, ceiling in rows:
        rule = rules.effects[key]
        assert (rule.strong.value, rule.partial.value, rule.weak.value) == (strong, partial, weak)
        assert rule.effort_applies is (effort == "yes")
        if rule.effort_applies:
            assert rule.ceiling.value == ceiling


@pytest.mark.parametrize(
    ("impact", "owasp", "expected"),
    [
        (Impact(Effect.CODE_EXECUTION, 1.0), ["ML06"], CRIT),
        (Impact(Effect.EVASION, 0.62, Effort.LOW, security_decision=True), ["ML01"], CRIT),
        (Impact(Effect.EVASION, 0.62, Effort.LOW), ["ML01"], IMP),
        (Impact(Effect.EVASION, 0.30, Effort.HIGH), ["ML01"], LOW),
        (Impact(Effect.DATA_DISCLOSURE, 0.18), ["ML04"], MOD),
        (Impact(Effect.TAMPERING, 0.08), ["ML07"], IMP),
        (Impact(Effect.INFORMATION_EXPOSURE, 1.0), ["ML03", "ML04", "ML05"], MOD),
        (Impact(Effect.MISSING_CONTROL, 1.0), ["ML05"], MOD),
        (Impact(Effect.DEGRADATION, 0.06), [], LOW),
        (Impact(Effect.DEGRADATION, 0.0), ["ML01"], NONE),
    ],
)
def test_worked_examples_in_docs(impact: Impact, owasp: list[str], expected: Severity) -> None:
    assert rate(impact, owasp).severity is expected
