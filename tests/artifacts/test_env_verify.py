"""``verify_environment`` on a throwaway site-packages folder, tampered in every way."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from bastion.artifacts.env_record import environment_root, load_distributions
from bastion.artifacts.env_verify import EnvReport, verify_environment
from bastion.errors import UsageError


def _record_line(site: Path, rel: str, algorithm: str = "sha256") -> str:
    data = (site / rel).read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.new(algorithm, data).digest()).rstrip(b"=")
    return f"{rel},{algorithm}={digest.decode()},{len(data)}"


def make_dist(
    site: Path,
    name: str,
    files: dict[str, bytes],
    *,
    version: str = "1.0",
    unhashed: tuple[str, ...] = (),
    raw_lines: tuple[str, ...] = (),
) -> Path:
    """Write files and a dist-info folder whose RECORD hashes them, as pip would."""
    for rel, data in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("pip\n")
    rels = [*files, f"{info.name}/METADATA", f"{info.name}/INSTALLER"]
    lines = [_record_line(site, rel) for rel in rels if rel not in unhashed]
    lines += [f"{rel},," for rel in unhashed]
    lines += [*raw_lines, f"{info.name}/RECORD,,"]
    (info / "RECORD").write_text("\n".join(lines) + "\n")
    return info


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A venv-shaped tree: <prefix>/lib/python3.11/site-packages and <prefix>/bin."""
    site = tmp_path / "env" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (tmp_path / "env" / "bin").mkdir()
    (tmp_path / "env" / "bin" / "fakenum-cli").write_text("#!python\nimport fakenum\n")
    make_dist(
        site,
        "fakenum",
        {
            "fakenum/__init__.py": b"from .core import dot\n",
            "fakenum/core.py": b"def dot(a, b):\n    return sum(x * y for x, y in zip(a, b))\n",
            "fakenum/data/table.bin": bytes(range(256)),
            "fakenum/__pycache__/core.cpython-311.pyc": b"\x00fake bytecode",
        },
        unhashed=("fakenum/__pycache__/core.cpython-311.pyc",),
        raw_lines=(_record_line(site, "../../../bin/fakenum-cli"),),
    )
    make_dist(site, "other-lib", {"other_lib.py": b"VALUE = 1\n"})
    return site


def _issues(report: EnvReport, name: str = "fakenum") -> set[tuple[str, str]]:
    dist = next(d for d in report.distributions if d.name == name)
    return {(issue.kind, issue.path) for issue in dist.issues}


def test_clean_environment_passes(site: Path) -> None:
    report = verify_environment([site])
    assert not report.tampered, report.to_dict()
    assert sorted(d.name for d in report.distributions) == ["fakenum", "other-lib"]
    fakenum = next(d for d in report.distributions if d.name == "fakenum")
    assert fakenum.files_checked == 6  # 3 package files (not the pyc), 2 metadata, 1 script
    assert fakenum.status == "ok"


def test_modified_module_is_found(site: Path) -> None:
    core = site / "fakenum" / "core.py"
    core.write_bytes(core.read_bytes().replace(b"x * y", b"x * y * 1.0001"))
    report = verify_environment([site])
    assert report.tampered and ("modified", "fakenum/core.py") in _issues(report)


def test_same_size_modification_is_found_by_hash(site: Path) -> None:
    table = site / "fakenum" / "data" / "table.bin"
    data = bytearray(table.read_bytes())
    data[100] ^= 0xFF
    table.write_bytes(bytes(data))
    report = verify_environment([site])
    dist = next(d for d in report.distributions if d.name == "fakenum")
    issue = next(i for i in dist.issues if i.path == "fakenum/data/table.bin")
    assert issue.kind == "modified" and "sha256 differs" in issue.detail


def test_modified_script_outside_site_packages_is_found(site: Path) -> None:
    script = site.parents[2] / "bin" / "fakenum-cli"
    script.write_text("#!python\nimport os; os.system('curl evil')\n")
    assert ("modified", "../../../bin/fakenum-cli") in _issues(verify_environment([site]))


def test_missing_file_is_found(site: Path) -> None:
    (site / "fakenum" / "data" / "table.bin").unlink()
    assert ("missing", "fakenum/data/table.bin") in _issues(verify_environment([site]))


def test_unrecorded_files_in_package_folders_are_found(site: Path) -> None:
    (site / "fakenum" / "backdoor.py").write_text("import socket")
    (site / "fakenum" / "sourceless.pyc").write_bytes(b"\x00")
    (site / "fakenum" / "__pycache__" / "ghost.cpython-311.pyc").write_bytes(b"\x00")
    (site / "fakenum_1.0.dist-info").mkdir(exist_ok=True)
    issues = _issues(verify_environment([site]))
    assert {
        ("unrecorded", "fakenum/backdoor.py"),
        ("unrecorded", "fakenum/sourceless.pyc"),
        ("unrecorded", "fakenum/__pycache__/ghost.cpython-311.pyc"),
    } <= issues


def test_bytecode_caches_of_recorded_sources_are_accepted(site: Path) -> None:
    cache = site / "fakenum" / "__pycache__"
    (cache / "__init__.cpython-311.pyc").write_bytes(b"\x00")
    (cache / "core.cpython-312.opt-1.pyc").write_bytes(b"\x00")
    assert not verify_environment([site]).tampered


def test_startup_hook_planted_at_top_level_is_found(site: Path) -> None:
    (site / "zzz-telemetry.pth").write_text("import os; os.system('id')\n")
    (site / "sitecustomize.py").write_text("print('hi')\n")
    report = verify_environment([site])
    assert report.tampered
    assert {(i.kind, i.path) for i in report.unowned} == {
        ("unrecorded", "sitecustomize.py"),
        ("unrecorded", "zzz-telemetry.pth"),
    }


def test_virtualenv_hook_is_listed_but_not_tampering(site: Path) -> None:
    (site / "_virtualenv.pth").write_text("import _virtualenv\n")
    report = verify_environment([site])
    assert not report.tampered
    assert [(i.kind, i.path) for i in report.unowned] == [("unverifiable", "_virtualenv.pth")]


def test_file_replaced_by_link_is_modified(site: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "evil_core.py"
    elsewhere.write_text("def dot(a, b): return 0\n")
    (site / "fakenum" / "core.py").unlink()
    (site / "fakenum" / "core.py").symlink_to(elsewhere)
    assert ("modified", "fakenum/core.py") in _issues(verify_environment([site]))


def test_weak_or_escaping_records_are_unverifiable_not_read(site: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    (site / "weak.py").write_text("x = 1\n")
    make_dist(
        site,
        "weak",
        {},
        raw_lines=(
            _record_line(site, "weak.py", "md5"),
            "../../../../outside.txt,sha256=AAAA,6",
        ),
    )
    report = verify_environment([site])
    assert not report.tampered
    weak = next(d for d in report.distributions if d.name == "weak")
    details = {i.path: (i.kind, i.detail) for i in weak.issues}
    assert details["weak.py"] == ("unverifiable", "RECORD uses md5, which proves nothing")
    assert details["../../../../outside.txt"][0] == "unverifiable"
    assert "outside the environment" in details["../../../../outside.txt"][1]


def test_distribution_without_record_is_unverifiable(site: Path) -> None:
    egg = site / "legacy_pkg-0.1.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.0\nName: legacy-pkg\nVersion: 0.1\n")
    report = verify_environment([site])
    legacy = next(d for d in report.distributions if d.name == "legacy-pkg")
    assert legacy.status == "unverifiable" and not report.tampered


def test_shared_namespace_folder_is_not_flagged(site: Path) -> None:
    make_dist(site, "ns-a", {"nspkg/a/__init__.py": b"A = 1\n"})
    make_dist(site, "ns-b", {"nspkg/b/__init__.py": b"B = 1\n"})
    report = verify_environment([site], packages=["ns-a"])
    assert not report.tampered, report.to_dict()


def test_package_filter_uses_normalised_names(site: Path) -> None:
    (site / "other_lib.py").write_text("VALUE = 2\n")
    report = verify_environment([site], packages=["FakeNum"])
    assert [d.name for d in report.distributions] == ["fakenum"] and not report.tampered
    assert verify_environment([site], packages=["Other_Lib"]).tampered


def test_unknown_package_is_a_usage_error(site: Path) -> None:
    with pytest.raises(UsageError, match="No installed distribution is named nope"):
        verify_environment([site], packages=["nope"])


def test_site_folder_must_exist(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a folder"):
        verify_environment([tmp_path / "missing"])


def test_environment_root_and_progress_callbacks(site: Path) -> None:
    assert environment_root(site) == site.parents[2]
    totals: list[int] = []
    ticks: list[int] = []
    verify_environment([site], on_total=totals.append, progress=ticks.append, workers=2)
    assert totals == [len(ticks)] and totals[0] > 0
    selected, everything = load_distributions([site], ["fakenum"])
    assert len(selected) == 1 and len(everything) == 2


def test_startup_hooks_can_be_checked_with_a_package_filter(site: Path) -> None:
    (site / "zzz-telemetry.pth").write_text("import os; os.system('id')\n")
    assert verify_environment([site], packages=["fakenum"]).unowned == ()
    report = verify_environment([site], packages=["fakenum"], startup_hooks=True)
    assert report.tampered and [(i.kind, i.path) for i in report.unowned] == [
        ("unrecorded", "zzz-telemetry.pth")
    ]
    assert verify_environment([site], startup_hooks=False).unowned == ()
