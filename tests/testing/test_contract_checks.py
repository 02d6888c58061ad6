"""The contract checks catch deliberately broken plugins, and pass good ones."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
from pydantic import ConfigDict, Field

from bastion.catalog import Catalog, load_catalog
from bastion.data import Dataset
from bastion.findings import CatalogRefs, Finding
from bastion.guards.base import Decision, Guard, GuardMeta, GuardRequest
from bastion.plugins import Registry
from bastion.probes import Probe, ProbeContext, ProbeMeta, ProbeParams
from bastion.probes.robustness.noise import NoiseRobustnessProbe
from bastion.remedies.base import Remedy, RemedyMeta, RemedyResult
from bastion.targets import Capability, FakeTarget, Target
from bastion.testing import (
    assert_plugin_contracts,
    check_guard,
    check_probe,
    check_remedy,
    check_target_adapter,
    plugin_contract_problems,
)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _has(problems: list[str], fragment: str) -> bool:
    return any(fragment in p for p in problems)


# -- probes --------------------------------------------------------------------------------


class GoodParams(ProbeParams):
    eps: float = Field(0.1, gt=0, le=1)


class GoodProbe(Probe):
    """Measures nothing in particular (Goodfellow et al., 2015)."""

    meta: ClassVar[ProbeMeta] = ProbeMeta(
        id="test.good",
        title="A good probe",
        catalog=CatalogRefs(owasp=["ML01"], atlas_mitigations=["AML.M0003"]),
        remedies=("AML.M0003",),
    )
    Params: ClassVar[type[ProbeParams]] = GoodParams

    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        return []


class LaxParams(ProbeParams):
    model_config = ConfigDict(extra="allow")
    eps: float = -1.0


class LaxProbe(Probe):
    meta: ClassVar[ProbeMeta] = ProbeMeta(
        id="Bad_ID",
        title="",
        catalog=CatalogRefs(owasp=["ML99", "FM1"], cwe=["CWE-9999"]),
        remedies=("AML.M9999", "remedy.missing"),
    )
    Params: ClassVar[type[ProbeParams]] = LaxParams

    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        return []


class StrictButBrokenDefaults(ProbeParams):
    eps: float = Field(-1.0, gt=0)


class UncitedProbe(Probe):
    """Does something, but says neither where it comes from nor that it is harmless."""

    meta: ClassVar[ProbeMeta] = ProbeMeta(id="test.uncited", title="t", catalog=CatalogRefs())
    Params: ClassVar[type[ProbeParams]] = StrictButBrokenDefaults

    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        return []


class AbstractProbe(Probe):
    """Not an attack."""

    meta: ClassVar[ProbeMeta] = ProbeMeta(
        id="test.abstract", title="t", catalog=CatalogRefs(owasp=["ML01"])
    )


class NotAProbe:
    pass


def test_good_probe_and_shipped_probes_pass(catalog: Catalog) -> None:
    assert check_probe(GoodProbe, catalog) == []
    assert check_probe(GoodProbe, catalog, remedy_ids=set()) == []
    assert check_probe(NoiseRobustnessProbe, catalog) == []


def test_broken_probe_metadata_and_params_are_caught(catalog: Catalog) -> None:
    problems = check_probe(LaxProbe, catalog, remedy_ids={"remedy.real"})
    assert _has(problems, "'Bad_ID' must be dotted lower case")
    assert _has(problems, "no title")
    assert _has(problems, "['ML99', 'CWE-9999'] that are not in the catalog")
    assert _has(problems, "FM1 in owasp (it is failure_mode)")
    assert _has(problems, "'AML.M9999'")
    assert _has(problems, "'remedy.missing'")
    assert _has(problems, "accepts an unknown parameter")
    assert _has(problems, "has no docstring")


def test_uncited_probe_with_bad_defaults_is_caught(catalog: Catalog) -> None:
    problems = check_probe(UncitedProbe, catalog)
    assert _has(problems, "names no catalog id")
    assert _has(problems, "default parameters do not validate")
    assert _has(problems, "cites no paper or reference")
    assert not _has(problems, "unknown parameter")


def test_abstract_probe_and_non_probe_are_caught(catalog: Catalog) -> None:
    assert _has(check_probe(AbstractProbe, catalog), "is abstract")
    assert check_probe(NotAProbe, catalog) == [
        "NotAProbe is not a subclass of bastion.probes.Probe."
    ]


def test_inherited_docstring_does_not_count(catalog: Catalog) -> None:
    class Child(GoodProbe):
        meta: ClassVar[ProbeMeta] = ProbeMeta(
            id="test.child", title="t", catalog=CatalogRefs(owasp=["ML01"])
        )

    assert _has(check_probe(Child, catalog), "has no docstring")


# -- guards --------------------------------------------------------------------------------


class GoodGuard(Guard):
    """Refuses empty batches."""

    meta: ClassVar[GuardMeta] = GuardMeta(
        id="guard.non_empty", title="Non-empty", catalog=CatalogRefs(owasp=["ML01"]), order=10
    )

    def before(self, request: GuardRequest) -> Decision:
        return Decision.deny("empty") if len(request.inputs) == 0 else Decision.allow()


class IdleGuard(Guard):
    meta: ClassVar[GuardMeta] = GuardMeta(
        id="guard idle",
        title="x",
        catalog=CatalogRefs(),
        order="first",  # type: ignore[arg-type]
    )


def test_guard_checks(catalog: Catalog) -> None:
    assert check_guard(GoodGuard, catalog) == []
    problems = check_guard(IdleGuard, catalog)
    assert _has(problems, "must be dotted lower case")
    assert _has(problems, "names no catalog id")
    assert _has(problems, "order must be an integer")
    assert _has(problems, "overrides neither before() nor after()")
    assert _has(problems, "has no docstring")
    assert _has(check_guard(Guard, catalog), "no GuardMeta")
    assert _has(check_guard(GoodProbe, catalog), "not a subclass of bastion.guards.Guard")


# -- remedies ------------------------------------------------------------------------------


class GoodRemedy(Remedy):
    """Rounds scores (Tramèr et al., 2016)."""

    meta: ClassVar[RemedyMeta] = RemedyMeta(
        id="remedy.round_scores",
        title="Round scores",
        catalog=CatalogRefs(atlas_mitigations=["AML.M0002"]),
        verified_by=("exposure.output_granularity",),
    )

    def apply(self, target: Target, data: Dataset, context: ProbeContext) -> RemedyResult:
        return RemedyResult(target=target, changes={})


class UnverifiedRemedy(GoodRemedy):
    meta: ClassVar[RemedyMeta] = RemedyMeta(
        id="remedy.unverified",
        title="Unverified",
        catalog=CatalogRefs(atlas_mitigations=["AML.M0000X"]),
        verified_by=("robustness.nonexistent",),
    )


class EmptyVerifiedRemedy(GoodRemedy):
    """Claims to work without saying how to check."""

    meta: ClassVar[RemedyMeta] = RemedyMeta(
        id="remedy.empty", title="Empty", catalog=CatalogRefs(), verified_by=()
    )


def test_remedy_checks(catalog: Catalog) -> None:
    probes = {"exposure.output_granularity", "robustness.noise"}
    assert check_remedy(GoodRemedy, catalog, probe_ids=probes) == []
    assert check_remedy(GoodRemedy, catalog) == []  # default registry has that probe
    problems = check_remedy(UnverifiedRemedy, catalog, probe_ids=probes)
    assert _has(problems, "['robustness.nonexistent'], which are not registered probes")
    assert _has(problems, "AML.M0000X")
    assert _has(problems, "has no docstring")
    assert _has(check_remedy(EmptyVerifiedRemedy, catalog, probe_ids=probes), "names no probe")


# -- target adapters -----------------------------------------------------------------------


class ClaimsLogits(Target):
    """Says it has logits but has no logits() method."""

    kind = "claims_logits"
    provides: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LABELS, Capability.PROBABILITIES, Capability.LOGITS, Capability.ENDPOINT}
    )

    def _predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.zeros((len(x), 2))


class NoLabels(Target):
    kind = "Bad Kind"
    provides: ClassVar[frozenset[Capability]] = frozenset({Capability.PROBABILITIES})


def test_target_adapter_checks() -> None:
    assert check_target_adapter(FakeTarget) == []
    problems = check_target_adapter(ClaimsLogits)
    assert _has(problems, "declares logits but has no logits() method")
    assert _has(problems, "declares endpoint but has no send_raw() method")
    problems = check_target_adapter(NoLabels)
    assert _has(problems, "kind 'Bad Kind' must be a lower-case word")
    assert _has(problems, "is abstract; implement _predict_proba")
    assert _has(problems, "must provide labels")
    assert _has(problems, "has no docstring")
    assert _has(check_target_adapter(Target), "declares no kind of its own")
    assert _has(check_target_adapter(int), "not a subclass of bastion.targets.Target")


# -- registry-wide -------------------------------------------------------------------------


def test_assert_plugin_contracts_passes_good_and_fails_broken_registries() -> None:
    good = Registry(
        probes={"test.good": GoodProbe},
        guards={"guard.non_empty": GoodGuard},
        remedies={"remedy.round_scores": GoodRemedy},
        targets={"fake": FakeTarget},
    )
    with pytest.raises(AssertionError, match="verified by"):
        assert_plugin_contracts(good)  # GoodRemedy names a probe this registry lacks
    good = good.with_plugins(probes={"exposure.output_granularity": NoiseRobustnessProbe})
    problems = plugin_contract_problems(good)
    assert list(problems) == ["probes:exposure.output_granularity"]
    assert _has(problems["probes:exposure.output_granularity"], "whose id is 'robustness.noise'")

    broken: dict[str, Any] = {"Bad_ID": LaxProbe}
    bad = Registry(probes=broken, targets={"wrong_name": FakeTarget})
    with pytest.raises(AssertionError) as info:
        assert_plugin_contracts(bad)
    message = str(info.value)
    assert "2 plugin(s) break" in message
    assert "- probes:Bad_ID" in message and "- targets:wrong_name" in message
    assert "accepts an unknown parameter" in message
    assert "whose kind is 'fake'" in message
