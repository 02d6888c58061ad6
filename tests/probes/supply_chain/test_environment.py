"""The ``supply_chain.environment`` probe on a throwaway site-packages folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.catalog import load_catalog
from bastion.catalog.coverage import coverage
from bastion.errors import UsageError
from bastion.findings import Finding, Severity, Status
from bastion.plugins import Registry
from bastion.probes import ProbeContext
from bastion.probes.base import Cost
from bastion.probes.supply_chain.environment import DEFAULT_DISTRIBUTIONS, EnvironmentProbe
from bastion.targets import FakeTarget
from bastion.testing import check_probe
from tests.artifacts.test_env_verify import make_dist

ID = "supply_chain.environment"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A venv-shaped site-packages with a fake numeric library and a second package."""
    site = tmp_path / "env" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    make_dist(
        site,
        "fakenum",
        {
            "fakenum/__init__.py": b"from .core import dot\n",
            "fakenum/core.py": b"def dot(a, b):\n    return sum(x * y for x, y in zip(a, b))\n",
        },
    )
    make_dist(site, "other-lib", {"other_lib.py": b"VALUE = 1\n"})
    return site


def _run(site: Path, **params: object) -> Finding:
    params = {"distributions": ["fakenum"], "reuse_seconds": 0, **params}
    probe = EnvironmentProbe(site_dirs=[str(site)], **params)
    [finding] = probe.run(FakeTarget.linear(n_features=2, n_classes=2), None, ProbeContext())
    return finding


def _metrics(finding: Finding) -> dict[str, object]:
    return {m.name: m.value for m in finding.metrics}


def test_contract_catalog_and_cost() -> None:
    catalog = load_catalog()
    assert check_probe(EnvironmentProbe, catalog) == []
    assert EnvironmentProbe.meta.needs == frozenset()
    assert EnvironmentProbe.meta.cost is Cost.EXPENSIVE  # seconds with torch installed
    registry = Registry().with_plugins(probes={ID: EnvironmentProbe})
    rows = {r.id: r.probes for r in coverage(catalog, registry)}
    for entry in ("ML06", "FM11", "AML.T0010.001"):
        assert rows[entry] == [ID], entry
    assert "torch" in DEFAULT_DISTRIBUTIONS and "bastion-ml" in DEFAULT_DISTRIBUTIONS


def test_a_clean_environment_is_not_vulnerable(site: Path) -> None:
    finding = _run(site)
    assert finding.status is Status.NOT_VULNERABLE, finding.summary
    assert "fakenum" in finding.summary and "other-lib" not in finding.summary
    metrics = _metrics(finding)
    assert metrics["files_checked"] == 4 and metrics["modified"] == 0  # 2 files + 2 metadata
    assert metrics["reused"] is False


def test_a_modified_library_file_is_an_important_finding(site: Path) -> None:
    core = site / "fakenum" / "core.py"
    core.write_bytes(core.read_bytes().replace(b"x * y", b"x * y * 1.0001"))
    finding = _run(site)
    assert finding.status is Status.VULNERABLE and finding.severity is Severity.IMPORTANT
    assert "fakenum: modified fakenum/core.py" in finding.summary
    assert "ML06" in finding.catalog.owasp and "FM11" in finding.catalog.failure_modes
    assert _metrics(finding)["modified"] == 1
    table = finding.evidence[0].data or {}
    [dist] = table["with_issues"]
    assert dist["name"] == "fakenum" and dist["issues"][0]["path"] == "fakenum/core.py"


def test_an_unrecorded_file_in_a_package_folder_is_found(site: Path) -> None:
    (site / "fakenum" / "backdoor.py").write_text("import socket\n")
    finding = _run(site)
    assert finding.severity is Severity.IMPORTANT
    assert "unrecorded fakenum/backdoor.py" in finding.summary


def test_a_planted_startup_hook_is_found(site: Path) -> None:
    (site / "zzz-telemetry.pth").write_text("import os; os.system('id')\n")
    finding = _run(site)
    assert finding.status is Status.VULNERABLE and finding.severity is Severity.IMPORTANT
    assert "start-up hook: unrecorded zzz-telemetry.pth" in finding.summary
    assert _run(site, startup_hooks=False).status is Status.NOT_VULNERABLE


def test_names_not_installed_are_listed_and_none_installed_is_inconclusive(site: Path) -> None:
    finding = _run(site, distributions=["fakenum", "not-a-package"])
    assert finding.status is Status.NOT_VULNERABLE
    assert (finding.evidence[0].data or {})["not_installed"] == ["not-a-package"]
    default = _run(site, distributions=list(DEFAULT_DISTRIBUTIONS))
    assert default.status is Status.INCONCLUSIVE and "Nothing could be verified" in default.summary
    everything = _run(site, distributions="all")
    assert everything.status is Status.NOT_VULNERABLE and "other-lib" in everything.summary


def test_a_recent_check_is_reused_and_reuse_can_be_turned_off(site: Path) -> None:
    first = _run(site, reuse_seconds=600)
    again = _run(site, reuse_seconds=600)
    assert _metrics(first)["reused"] is False and _metrics(again)["reused"] is True
    (site / "fakenum" / "core.py").write_bytes(b"def dot(a, b):\n    return 0\n")
    assert _run(site, reuse_seconds=600).status is Status.NOT_VULNERABLE  # the reused check
    assert _run(site, reuse_seconds=0).status is Status.VULNERABLE


def test_bad_parameters_are_usage_errors(site: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="reuse_seconds"):
        _run(site, reuse_seconds=-1)
    with pytest.raises(UsageError, match="distributions"):
        _run(site, distributions="some")
    with pytest.raises(UsageError, match="not a folder"):
        _run(tmp_path / "nowhere")
