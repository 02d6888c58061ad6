"""The common contract test: every registered plugin keeps Bastion's plugin contracts.

One test case per entry point, so a broken plugin fails on its own and names itself;
then one test over :func:`bastion.plugins.default_registry` as a whole, exactly as a
third-party package would run it.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

import pytest

from bastion.catalog import Catalog, load_catalog
from bastion.plugins import GROUPS, default_registry
from bastion.testing import (
    assert_plugin_contracts,
    check_guard,
    check_probe,
    check_remedy,
    check_target_adapter,
)


def _entry_points(kind: str) -> list[EntryPoint]:
    return sorted(entry_points(group=GROUPS[kind]), key=lambda ep: ep.name)


def _names(kind: str) -> set[str]:
    return {ep.name for ep in _entry_points(kind)}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _cases(kind: str) -> list[object]:
    found = _entry_points(kind)
    if not found:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no {kind} registered"))]
    return [pytest.param(ep, id=ep.name) for ep in found]


@pytest.mark.parametrize("ep", _cases("probes"))
def test_probe_contract(ep: EntryPoint, catalog: Catalog) -> None:
    cls = ep.load()
    problems = check_probe(cls, catalog, remedy_ids=_names("remedies"))
    assert problems == []
    assert cls.meta.id == ep.name, "register a probe under its own meta.id"


@pytest.mark.parametrize("ep", _cases("guards"))
def test_guard_contract(ep: EntryPoint, catalog: Catalog) -> None:
    cls = ep.load()
    assert check_guard(cls, catalog) == []
    assert cls.meta.id == ep.name, "register a guard under its own meta.id"


@pytest.mark.parametrize("ep", _cases("remedies"))
def test_remedy_contract(ep: EntryPoint, catalog: Catalog) -> None:
    cls = ep.load()
    assert check_remedy(cls, catalog, probe_ids=_names("probes")) == []
    assert cls.meta.id == ep.name, "register a remedy under its own meta.id"


@pytest.mark.parametrize("ep", _cases("targets"))
def test_target_adapter_contract(ep: EntryPoint) -> None:
    cls = ep.load()
    assert check_target_adapter(cls) == []
    assert cls.kind == ep.name, "register a target adapter under its own kind"


def test_default_registry_keeps_every_contract() -> None:
    registry = default_registry()
    assert set(registry.probes) == _names("probes")
    assert {"exposure.output_granularity", "exposure.query_limits", "robustness.noise"} <= set(
        registry.probes
    )
    assert_plugin_contracts(registry)
