"""The generated corpus: every malicious artifact is flagged, no benign one is, nothing runs."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from bastion.artifacts import Category, RestrictedUnpickler, scan_bytes, scan_paths
from bastion.findings import Severity

from .corpus import benign_files, call, g, malicious_samples, p4, u

# The weakest category each family may be reported with.
_FLOOR = {
    "callable": Severity.IMPORTANT,
    "file/network": Severity.IMPORTANT,
    "unknown": Severity.IMPORTANT,
    "opcodes": Severity.MODERATE,
    "container": Severity.IMPORTANT,
    "confusion": Severity.MODERATE,
    "model format": Severity.MODERATE,
}


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("canary") / "CANARY"


def test_the_corpus_covers_the_attack_families(canary: Path) -> None:
    samples = malicious_samples(canary)
    assert len(samples) >= 70
    assert {s.family for s in samples} == set(_FLOOR)


def test_every_malicious_sample_is_flagged_and_nothing_runs(canary: Path, tmp_path: Path) -> None:
    samples = malicious_samples(canary)
    for sample in samples:
        (tmp_path / sample.name).write_bytes(sample.data)
    report = scan_paths([tmp_path])
    by_name = {Path(f.path).name: f for f in report.files}
    missed = [s.name for s in samples if by_name[s.name].safe]
    assert missed == []
    weak = [s.name for s in samples if by_name[s.name].worst < _FLOOR[s.family]]
    assert weak == []
    assert report.exit_code == 1
    assert not canary.exists()


def test_no_benign_artifact_is_flagged() -> None:
    files = benign_files()
    report = scan_paths(sorted(files.values()))
    flagged = {Path(f.path).name: [i.message for i in f.issues] for f in report.files if not f.safe}
    assert flagged == {}
    assert len(report.files) == len(files) and report.exit_code == 0


def test_benign_artifacts_are_recognised_by_content() -> None:
    formats = {name: scan_paths([p]).files[0].formats for name, p in benign_files().items()}
    assert formats["state_dict.pt"][:2] == ["zip", "torch"]
    assert "torch-legacy" in formats["legacy_checkpoint.pt"]
    assert "torchscript" in formats["torchscript.pt"]
    assert formats["forest.joblib.gz"][:2] == ["gzip", "pickle"]
    assert formats["forest.joblib.xz"][:2] == ["xz", "pickle"]
    assert formats["knn.joblib.z"][:2] == ["zlib", "pickle"]
    assert formats.get("weights.safetensors", ["safetensors"]) == ["safetensors"]
    assert formats["arrays.npz"][:3] == ["zip", "npz", "npy"]


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_the_real_unpickler_refuses_what_the_scanner_flags(canary: Path, protocol: int) -> None:
    """Scanning and loading agree: each flagged plain pickle is refused by the loader."""
    plain = [
        s
        for s in malicious_samples(canary)
        if s.family in ("callable", "file/network", "unknown")
        and scan_bytes(s.data).formats == ["pickle"]
    ]
    assert len(plain) > 20
    for sample in plain:
        with pytest.raises((pickle.UnpicklingError, ValueError)):
            RestrictedUnpickler(__import__("io").BytesIO(sample.data)).load()
    benign = pickle.dumps({"a": [1, 2.5, "x", b"y", (None, True)]}, protocol=protocol)
    assert RestrictedUnpickler(__import__("io").BytesIO(benign)).load() == pickle.loads(benign)
    assert not canary.exists()


def test_issues_name_the_global_the_member_and_the_offset(canary: Path) -> None:
    by_name = {s.name: s for s in malicious_samples(canary)}
    report = scan_bytes(by_name["torch_zip_extra_member.pt"].data, name="m.pt")
    [issue] = [i for i in report.issues if i.global_name == "os:system"]
    assert issue.category is Category.CODE_EXECUTION
    assert issue.location.member == ("archive/extra.pkl",)
    program = p4(call(g("os", "system"), u(f"touch {canary}")))
    assert issue.location.offset == program.index(b"\x93")  # the STACK_GLOBAL opcode
    assert issue.location.opcode == "STACK_GLOBAL"
    nested = scan_bytes(by_name["nested_pickle_loads.pkl"].data)
    inner = next(i for i in nested.issues if i.global_name == "os:system")
    assert inner.location.member[0].startswith("<argument of pickle:loads")
