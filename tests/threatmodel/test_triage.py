"""Triage: reconstructing a severity from its rationale, and finding the finding."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import product
from pathlib import Path

import pytest

from bastion.catalog.severity import Effect, Effort, Impact, rate
from bastion.errors import StoreError, UsageError
from bastion.findings import CatalogRefs, Finding, Severity, Status
from bastion.findings.run import RunRecord, RunStatus
from bastion.store import open_store
from bastion.threatmodel.triage import explain
from bastion.threatmodel.triage_lookup import from_file, from_store, select


def finding(
    impact: Impact,
    owasp: list[str],
    *,
    probe: str = "evasion.pgd",
    variant: str = "",
    status: Status = Status.VULNERABLE,
) -> Finding:
    rating = rate(impact, owasp=owasp)
    return Finding(
        probe_id=probe,
        title=f"{probe} finding",
        target="model",
        variant=variant,
        status=status,
        severity=rating.severity if status is Status.VULNERABLE else Severity.NONE,
        summary="s",
        severity_rationale=rating.rationale if status is Status.VULNERABLE else [],
        catalog=CatalogRefs(owasp=owasp),
    )


@pytest.mark.parametrize(
    ("effect", "effort", "security", "extent"),
    list(product(Effect, Effort, (False, True), (0.7, 0.2, 0.03)))[::5],
)
def test_every_rating_is_reconstructed(
    effect: Effect, effort: Effort, security: bool, extent: float
) -> None:
    f = finding(Impact(effect, extent, effort, security), ["ML01"])
    t = explain(f)
    assert t.reconstructed, t.notes
    assert t.determined["effect"] == effect.value
    assert float(t.determined["extent"]) == pytest.approx(extent, rel=1e-3)
    if t.determined["effort"] != "not used by this row":
        assert t.determined["effort"] == effort.value
    assert t.why_not_higher and t.severity == f.severity.value
    # every "it would be X" names a level on the right side of the current one
    for line in t.why_not_higher:
        if line.startswith("It would be "):
            assert Severity.parse(line.split()[3]) > f.severity, line
    for line in t.why_not_lower:
        assert Severity.parse(line.split()[3]) < f.severity, line


def test_important_and_not_critical_is_explained() -> None:
    f = finding(Impact(Effect.EVASION, 0.62, Effort.MEDIUM, True), ["ML01"])
    assert f.severity is Severity.IMPORTANT
    t = explain(f)
    assert t.row == "evasion_security_decision"
    assert t.row_levels["ceiling"] == "critical"
    assert "It would be critical if the attack needed low effort." in t.why_not_higher
    assert any(line.startswith("It would be moderate") for line in t.why_not_lower)
    assert [o.raises for o in t.owasp] == [False]


def test_capped_effect_says_why_it_cannot_rise() -> None:
    f = finding(Impact(Effect.MODEL_THEFT, 0.9, Effort.LOW), ["ML05"])
    t = explain(f)
    assert f.severity is Severity.IMPORTANT
    assert t.why_not_higher == [
        "No change of effort, security decision or extent reaches critical: model theft "
        "is capped at important (rule 4); none of its OWASP entries is rated easy to "
        "exploit and difficult to detect (rule 5)."
    ]


def test_owasp_raise_is_reported() -> None:
    f = finding(Impact(Effect.TAMPERING, 0.05, Effort.MEDIUM), ["ML07"])
    t = explain(f)
    assert f.severity is Severity.IMPORTANT
    assert [(o.id, o.raises) for o in t.owasp] == [("ML07", True)]


def test_not_vulnerable_and_foreign_rationales() -> None:
    clean = finding(Impact(Effect.EVASION, 0.5), ["ML01"], status=Status.NOT_VULNERABLE)
    t = explain(clean)
    assert not t.reconstructed and "only a vulnerable finding" in t.notes[0]
    odd = clean.model_copy(
        update={
            "status": Status.VULNERABLE,
            "severity": Severity.CRITICAL,
            "severity_rationale": ["Rated critical by the on-call lead."],
        }
    )
    t = explain(odd)
    assert not t.reconstructed and "No bug-bar inputs reproduce" in t.notes[0]


def _run(findings: list[Finding]) -> RunRecord:
    return RunRecord(
        run_id="abcdef012345",
        name="nightly",
        started_at=datetime(2025, 5, 1, tzinfo=UTC),
        status=RunStatus.COMPLETED,
        findings=findings,
    )


FINDINGS = [
    finding(Impact(Effect.EVASION, 0.6), ["ML01"], variant="linf"),
    finding(Impact(Effect.EVASION, 0.2), ["ML01"], variant="l2"),
    finding(Impact(Effect.INFORMATION_EXPOSURE, 1.0), ["ML05"], probe="exposure.scores"),
]


def test_select_by_key_fingerprint_prefix_and_probe() -> None:
    a, b, c = FINDINGS
    assert select(FINDINGS, a.key, "run") is a
    assert select(FINDINGS, b.fingerprint, "run") is b
    assert select(FINDINGS, b.fingerprint[:8].upper(), "run") is b
    assert select(FINDINGS, "exposure.scores", "run") is c
    with pytest.raises(UsageError, match="matches 2 findings"):
        select(FINDINGS, "evasion.pgd", "run")
    with pytest.raises(UsageError, match="No finding 'nope' in run; give a key"):
        select(FINDINGS, "nope", "run")


def test_from_file_reads_a_finding_or_a_report(tmp_path: Path) -> None:
    single = tmp_path / "finding.json"
    single.write_text(FINDINGS[2].model_dump_json())
    assert from_file(single)[0] == FINDINGS[2]
    report = tmp_path / "bastion-report.json"
    report.write_text(_run(FINDINGS).model_dump_json())
    with pytest.raises(UsageError, match="holds 3 findings; pick one with --finding"):
        from_file(report)
    assert from_file(report, FINDINGS[0].fingerprint)[0] == FINDINGS[0]
    (tmp_path / "bad.json").write_text('{"probe_id": 3}')
    with pytest.raises(UsageError, match="neither a Bastion finding nor a report"):
        from_file(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(UsageError, match="is not JSON"):
        from_file(tmp_path / "broken.json")


def test_from_store_uses_the_latest_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as store:
        store.save_run(_run(FINDINGS))
    found, where = from_store(FINDINGS[2].fingerprint[:6], store_url=url, run=None)
    assert found == FINDINGS[2] and "run abcdef012345 (nightly)" in where
    assert from_store(FINDINGS[0].key, store_url=url, run="abcdef")[0] == FINDINGS[0]
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    open_store(empty).close()
    with pytest.raises(StoreError, match="holds no runs yet"):
        from_store("x", store_url=empty, run=None)
