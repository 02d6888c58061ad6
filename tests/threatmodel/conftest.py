"""Shared fixtures: the catalog, the example systems and a registry with stand-in plugins."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from bastion.catalog import Catalog, load_catalog
from bastion.data.dataset import Dataset
from bastion.findings import CatalogRefs, Finding
from bastion.guards.base import Guard, GuardMeta
from bastion.plugins import Registry
from bastion.probes.base import Probe, ProbeMeta
from bastion.probes.context import ProbeContext
from bastion.remedies.base import Remedy, RemedyMeta, RemedyResult
from bastion.targets.base import Target
from bastion.threatmodel.loading import SystemFile, load_description

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = ROOT / "examples" / "systems"
EXAMPLES = sorted(p.stem for p in SYSTEMS.glob("*.yaml"))


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="session")
def systems() -> dict[str, SystemFile]:
    return {name: load_description(SYSTEMS / f"{name}.yaml") for name in EXAMPLES}


class _StubProbe(Probe):
    """A probe that only carries metadata; the analysis never runs probes."""

    meta: ClassVar[ProbeMeta]

    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        raise AssertionError("the threat model must not run probes")


def stub_probe(probe_id: str, **refs: list[str]) -> type[Probe]:
    """A probe class whose metadata names ``refs`` (CatalogRefs fields)."""
    meta = ProbeMeta(id=probe_id, title=f"Stub {probe_id}", catalog=CatalogRefs(**refs))
    return type(f"Stub_{probe_id.replace('.', '_')}", (_StubProbe,), {"meta": meta})


class _StubGuard(Guard):
    meta: ClassVar[GuardMeta]


class _StubRemedy(Remedy):
    meta: ClassVar[RemedyMeta]

    def apply(self, target: Target, data: Dataset, context: ProbeContext) -> RemedyResult:
        raise AssertionError("the threat model must not run remedies")


@pytest.fixture
def stub_registry() -> Registry:
    """Stand-in plugins: one probe per family of ids, a guard and a remedy by mitigation."""
    guard_meta = GuardMeta(
        id="guard.budget", title="Budget", catalog=CatalogRefs(atlas_mitigations=["AML.M0004"])
    )
    remedy_meta = RemedyMeta(
        id="remedy.adv_training",
        title="Adversarial training",
        catalog=CatalogRefs(owasp=["ML01"], atlas_mitigations=["AML.M0003"]),
        verified_by=("stub.evasion",),
    )
    guard = type("StubBudgetGuard", (_StubGuard,), {"meta": guard_meta})
    remedy = type("StubAdvTraining", (_StubRemedy,), {"meta": remedy_meta})
    return Registry(
        probes={
            "stub.evasion": stub_probe("stub.evasion", owasp=["ML01"], failure_modes=["FM1"]),
            "stub.poisoning": stub_probe("stub.poisoning", owasp=["ML02"]),
            "stub.reward": stub_probe("stub.reward", failure_modes=["FM12"]),
            "stub.mitigation_only": stub_probe(
                "stub.mitigation_only", atlas_mitigations=["AML.M0004"]
            ),
        },
        guards={"guard.budget": guard},
        remedies={"remedy.adv_training": remedy},
    )
