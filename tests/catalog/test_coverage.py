"""Coverage is computed live from whatever plugin registry it is given."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.catalog import Catalog, Kind, load_catalog
from bastion.catalog.coverage import CoverageRow, coverage, dangling_references, summarize
from bastion.findings import CatalogRefs, Finding
from bastion.guards.base import Guard, GuardMeta
from bastion.plugins import Registry
from bastion.probes.base import Probe, ProbeMeta
from bastion.remedies.base import Remedy, RemedyMeta, RemedyResult


class FakeEvasionProbe(Probe):
    meta = ProbeMeta(
        id="fake.evasion",
        title="Fake evasion probe",
        catalog=CatalogRefs(
            owasp=["ml01"],  # case must not matter
            failure_modes=["FM1"],
            atlas_techniques=["AML.T0043", "AML.T0015"],
            cwe=["CWE-1039"],
        ),
    )

    def run(self, target: Any, data: Any, context: Any) -> list[Finding]:
        return []


class FakeMembershipProbe(Probe):
    meta = ProbeMeta(
        id="fake.membership",
        title="Fake membership probe",
        catalog=CatalogRefs(owasp=["ML04", "ML01"], atlas_techniques=["AML.T0024.000"]),
    )

    def run(self, target: Any, data: Any, context: Any) -> list[Finding]:
        return []


class FakeBudgetGuard(Guard):
    meta = GuardMeta(
        id="fake.budget",
        title="Fake budget guard",
        catalog=CatalogRefs(atlas_mitigations=["AML.M0004"], atlas_techniques=["AML.T0034"]),
    )


class FakeHardeningRemedy(Remedy):
    meta = RemedyMeta(
        id="fake.hardening",
        title="Fake hardening",
        catalog=CatalogRefs(owasp=["ML01"], atlas_mitigations=["AML.M0003", "AML.M9999"]),
        verified_by=("fake.evasion",),
    )

    def apply(self, target: Any, data: Any, context: Any) -> RemedyResult:
        raise NotImplementedError


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return load_catalog()


@pytest.fixture
def registry() -> Registry:
    return Registry(
        probes={"fake.evasion": FakeEvasionProbe},
        guards={"fake.budget": FakeBudgetGuard},
        remedies={"fake.hardening": FakeHardeningRemedy},
    )


def _row(rows: list[CoverageRow], entry_id: str) -> CoverageRow:
    return next(r for r in rows if r.id == entry_id)


def test_one_row_per_entry_in_catalog_order(cat: Catalog, registry: Registry) -> None:
    rows = coverage(cat, registry)
    assert [r.id for r in rows] == [e.id for e in cat.entries()]
    assert all(r.name == cat.get(r.id).name and r.kind is cat.get(r.id).kind for r in rows)


def test_direct_references_are_found(cat: Catalog, registry: Registry) -> None:
    rows = coverage(cat, registry)
    ml01 = _row(rows, "ML01")
    assert (ml01.probes, ml01.guards, ml01.remedies) == (["fake.evasion"], [], ["fake.hardening"])
    assert _row(rows, "AML.M0004").guards == ["fake.budget"]
    assert _row(rows, "AML.T0034").guards == ["fake.budget"]
    assert _row(rows, "CWE-1039").probes == ["fake.evasion"]
    assert _row(rows, "AML.M0003").remedies == ["fake.hardening"]


def test_related_but_unreferenced_entries_are_not_covered(cat: Catalog, registry: Registry) -> None:
    rows = coverage(cat, registry)
    # AML.T0043.000 is a sub-technique of AML.T0043 but no plugin names it directly
    assert not _row(rows, "AML.T0043.000").covered
    assert not _row(rows, "ML02").covered


def test_coverage_is_computed_live(cat: Catalog, registry: Registry) -> None:
    assert _row(coverage(cat, registry), "ML04").probes == []
    bigger = registry.with_plugins(probes={"fake.membership": FakeMembershipProbe})
    rows = coverage(cat, bigger)
    assert _row(rows, "ML04").probes == ["fake.membership"]
    assert _row(rows, "ML01").probes == ["fake.evasion", "fake.membership"]


def test_kind_filter(cat: Catalog, registry: Registry) -> None:
    rows = coverage(cat, registry, kind="atlas_mitigation")
    assert {r.kind for r in rows} == {Kind.ATLAS_MITIGATION}
    assert len(rows) == 20


def test_empty_registry_covers_nothing(cat: Catalog) -> None:
    rows = coverage(cat, Registry())
    assert not any(r.covered for r in rows)
    summary = summarize(rows)
    assert (summary.entries, summary.with_any) == (len(cat), 0)


def test_summary(cat: Catalog, registry: Registry) -> None:
    summary = summarize(coverage(cat, registry))
    # probe: ML01, FM1, AML.T0043, AML.T0015, CWE-1039; guard: AML.M0004, AML.T0034;
    # remedy: ML01, AML.M0003
    assert (summary.with_probe, summary.with_guard, summary.with_remedy) == (5, 2, 2)
    assert summary.with_any == 8
    assert summary.sentence() == (
        f"5 of {len(cat)} entries have a probe, 2 have a guard, 2 have a remedy; "
        f"{len(cat) - 8} have none."
    )


def test_row_to_dict(cat: Catalog, registry: Registry) -> None:
    data = _row(coverage(cat, registry), "ML01").to_dict()
    assert data == {
        "id": "ML01",
        "name": "Adversarial Attack",
        "kind": "owasp",
        "probes": ["fake.evasion"],
        "guards": [],
        "remedies": ["fake.hardening"],
    }


def test_dangling_references(cat: Catalog, registry: Registry) -> None:
    assert dangling_references(cat, registry) == {"remedy:fake.hardening": ["AML.M9999"]}
