"""Triage: why a finding has the severity it has, by the bug-bar rules, and what would change it.

A finding stores the sentences :func:`bastion.catalog.severity.rate` wrote for it
(``Finding.severity_rationale``). :func:`explain` finds the bug-bar inputs that produce
exactly those sentences and that severity (trying every effect, effort and
security-decision setting at the recorded extent), then asks the same rules what a
single change would do: lower or higher effort, a security decision or not, a stronger
or weaker result. A responder sees which rule decided the level, which rule capped it,
and what it would take to be one level worse, e.g. why a finding is *important* and
not *critical*.

When no inputs reproduce the stored rationale (a finding written by another rule set),
the explanation says so and shows the stored rationale and the rules as they are.

Examples
--------
>>> from bastion.catalog.severity import Effect, Effort, Impact, rate
>>> from bastion.findings import CatalogRefs, Finding, Status
>>> rating = rate(Impact(Effect.EVASION, 0.62, Effort.MEDIUM), owasp=["ML01"])
>>> f = Finding(probe_id="evasion.pgd", title="PGD", target="tagger",
...             status=Status.VULNERABLE, severity=rating.severity, summary="s",
...             severity_rationale=rating.rationale, catalog=CatalogRefs(owasp=["ML01"]))
>>> t = explain(f)
>>> t.severity, t.determined["effect"], t.determined["band"]
('important', 'evasion', 'strong')
>>> t.why_not_higher[0]
'It would be critical if the model made a security decision and the attack needed low effort.'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import product

from bastion.catalog import Catalog, OwaspEntry, load_catalog
from bastion.catalog.severity import Effect, Effort, Impact, SeverityRules, load_rules, rate
from bastion.errors import BastionError
from bastion.findings import Finding, Severity, Status

__all__ = ["OwaspFactor", "Triage", "explain"]

_EXTENT = re.compile(r"extent ([0-9.]+(?:e[-+]?\d+)?)%")
_LEVELS = (Severity.LOW, Severity.MODERATE, Severity.IMPORTANT, Severity.CRITICAL)
_EFFORT_WORDS = {
    Effort.LOW: "the attack needed low effort",
    Effort.MEDIUM: "the attack needed medium effort",
    Effort.HIGH: "the attack needed high effort",
}


@dataclass(frozen=True)
class OwaspFactor:
    """One mapped OWASP entry's risk factors and whether it raises the level (rule 5)."""

    id: str
    exploitability: str
    detectability: str
    raises: bool


@dataclass
class Triage:
    """The explanation of one finding's severity."""

    finding: Finding
    severity: str
    reconstructed: bool
    determined: dict[str, str] = field(default_factory=dict)
    row: str = ""
    row_levels: dict[str, str] = field(default_factory=dict)
    owasp: list[OwaspFactor] = field(default_factory=list)
    why_not_higher: list[str] = field(default_factory=list)
    why_not_lower: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _extent(rationale: list[str]) -> float | None:
    if rationale and "(extent 0)" in rationale[0]:
        return 0.0
    for line in rationale:
        match = _EXTENT.search(line)
        if match:
            return float(match.group(1)) / 100.0
    return None


def _candidates(f: Finding, extent: float, catalog: Catalog) -> list[Impact]:
    found = []
    for effect, effort, security in product(Effect, Effort, (False, True)):
        impact = Impact(effect, min(1.0, extent), effort, security)
        rating = rate(impact, owasp=f.catalog.owasp, catalog=catalog)
        if rating.severity is f.severity and rating.rationale == list(f.severity_rationale):
            found.append(impact)
    return found


def _band(extent: float, rules: SeverityRules) -> str:
    if extent >= rules.bands.strong:
        return "strong"
    return "partial" if extent >= rules.bands.partial else "weak"


def _owasp(f: Finding, catalog: Catalog, rules: SeverityRules) -> list[OwaspFactor]:
    cond = rules.owasp_raise
    out = []
    for oid in f.catalog.owasp:
        entry = catalog.get(oid)
        if isinstance(entry, OwaspEntry):
            e, d = entry.exploitability.rating, entry.detectability.rating
            out.append(
                OwaspFactor(
                    entry.id,
                    f"{entry.exploitability.score} {e}",
                    f"{entry.detectability.score} {d}",
                    e == cond.exploitability and d == cond.detectability,
                )
            )
    return out


def _changes(base: Impact, rules: SeverityRules) -> list[tuple[list[str], Impact]]:
    """Every impact that differs from ``base`` in one or two recorded inputs."""
    _, rule = rules.rule_for(base)
    efforts = list(Effort) if rule.effort_applies else [base.effort]
    has_security_row = f"{base.effect.value}_security_decision" in rules.effects
    securities = [False, True] if has_security_row else [base.security_decision]
    extents = [1.0, rules.bands.partial, rules.bands.partial / 2]
    out = []
    for effort, security, extent in product(efforts, securities, [base.extent, *extents]):
        words = []
        if security != base.security_decision:
            words.append(
                "the model made a security decision"
                if security
                else "the model made no security decision"
            )
        if effort != base.effort:
            words.append(_EFFORT_WORDS[effort])
        if _band(extent, rules) != _band(base.extent, rules):
            words.append(f"the result were {_band(extent, rules)} (extent {extent:.0%})")
        if words and len(words) <= 2:
            out.append((words, Impact(base.effect, extent, effort, security)))
    return out


def _sentence(level: Severity, words: list[str]) -> str:
    return f"It would be {level.value} if {' and '.join(words)}."


def _minimal(changes: list[tuple[list[str], Severity]], *, worse: bool) -> list[str]:
    """Sentences for the changes no smaller change matches: a double change is left out
    when one of its halves alone moves the level at least as far."""
    kept = []
    for words, level in changes:
        redundant = any(
            set(other) < set(words) and (other_level >= level if worse else other_level <= level)
            for other, other_level in changes
        )
        if not redundant:
            kept.append((len(words), -level.rank if worse else level.rank, words, level))
    kept.sort(key=lambda k: (k[0], k[1]))
    return list(dict.fromkeys(_sentence(level, words) for _, _, words, level in kept))


def explain(
    finding: Finding, *, catalog: Catalog | None = None, rules: SeverityRules | None = None
) -> Triage:
    """Explain ``finding``'s severity by the bug-bar rules.

    Returns
    -------
    Triage
        ``determined`` holds the inputs the stored rationale pins down (``effect``,
        ``band``, ``extent``, ``effort``, ``security_decision``; "not used" when the
        rule ignores it); ``why_not_higher`` and ``why_not_lower`` the single or double
        changes that would move the level.
    """
    catalog = catalog or load_catalog()
    rules = rules or load_rules()
    t = Triage(finding, finding.severity.value, reconstructed=False)
    try:
        t.owasp = _owasp(finding, catalog, rules)
    except BastionError as err:
        t.notes.append(f"The finding's OWASP ids cannot be read: {err}")
    if finding.status is not Status.VULNERABLE:
        t.notes.append(
            f"The finding's status is {finding.status.value.replace('_', ' ')}: only a "
            "vulnerable finding gets a severity above none (rule 1 of docs/severity.md)."
        )
        return t
    extent = _extent(list(finding.severity_rationale))
    matches: list[Impact] = []
    if extent is not None:
        try:
            matches = _candidates(finding, extent, catalog)
        except BastionError as err:
            t.notes.append(f"The bug bar cannot be re-applied: {err}")
    if not matches:
        t.notes.append(
            "No bug-bar inputs reproduce the stored rationale with the current rules "
            f"(severity.yaml version {rules.version}); it was rated by other rules or by "
            "hand. The stored rationale is shown as recorded."
        )
        return t
    t.reconstructed = True
    base = matches[0]
    key, rule = rules.rule_for(base)
    t.row = key
    t.row_levels = {
        "strong": rule.strong.value,
        "partial": rule.partial.value,
        "weak": rule.weak.value,
        "ceiling": rule.ceiling.value if rule.effort_applies else "none (effort not used)",
    }
    efforts = {m.effort for m in matches}
    securities = {m.security_decision for m in matches}
    t.determined = {
        "effect": base.effect.value,
        "extent": f"{base.extent:.3g}",
        "band": _band(base.extent, rules),
        "effort": base.effort.value if len(efforts) == 1 else "not used by this row",
        "security_decision": str(base.security_decision).lower()
        if len(securities) == 1
        else "not used by this effect",
    }
    current = finding.severity
    higher: list[tuple[list[str], Severity]] = []
    lower: list[tuple[list[str], Severity]] = []
    for words, impact in _changes(base, rules):
        level = rate(impact, owasp=finding.catalog.owasp, catalog=catalog).severity
        if level > current:
            higher.append((words, level))
        elif level < current:
            lower.append((words, level))
    next_up = next((lv for lv in _LEVELS if lv > current), None)
    if next_up is None:
        t.why_not_higher = ["Critical is the highest level."]
    elif higher:
        t.why_not_higher = _minimal(higher, worse=True)
    else:
        name = base.effect.value.replace("_", " ")
        capped = (
            f"{name} is capped at {rule.ceiling.value}"
            if rule.effort_applies
            else f"{name} reaches at most {rule.strong.value} and effort does not move it"
        )
        raise_note = (
            ""
            if any(o.raises for o in t.owasp)
            else "; none of its OWASP entries is rated easy to exploit and difficult to "
            "detect (rule 5)"
        )
        t.why_not_higher = [
            f"No change of effort, security decision or extent reaches {next_up.value}: "
            f"{capped} (rule 4){raise_note}."
        ]
    t.why_not_lower = _minimal(lower, worse=False)
    return t
