"""lz4 frames (joblib's ``compress="lz4"``): decompressed within the limits, then scanned."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from bastion.artifacts import Category, Limits, safe_load, scan_bytes, scan_paths

lz4_frame = pytest.importorskip(
    "lz4.frame", reason="the lz4 package is not installed (pip install lz4; the dev extra has it)"
)
EVIL = b"cbuiltins\nexec\n(S'x = 1'\ntR."


def test_a_real_joblib_lz4_dump_scans_clean_and_loads(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    from sklearn.tree import DecisionTreeClassifier

    x = np.random.default_rng(0).random((40, 3))
    model = DecisionTreeClassifier(random_state=0).fit(x, x[:, 0] > 0.5)
    path = tmp_path / "tree.joblib"
    joblib.dump(model, path, compress="lz4")
    assert path.read_bytes()[:4] == b"\x04\x22\x4d\x18"  # an lz4 frame, as sniffed
    report = scan_paths([path]).files[0]
    assert report.safe and report.formats[:2] == ["lz4", "pickle"] and report.pickle_based
    loaded = safe_load(path, expected_sha256=report.sha256)
    assert np.array_equal(loaded.predict(x), model.predict(x))


def test_code_in_an_lz4_frame_is_found() -> None:
    report = scan_bytes(lz4_frame.compress(EVIL))
    assert [(i.category, i.global_name) for i in report.issues] == [
        (Category.CODE_EXECUTION, "builtins:exec")
    ]


def test_a_second_frame_is_read_as_joblib_would() -> None:
    data = lz4_frame.compress(b"\x80\x04N.") + lz4_frame.compress(EVIL)
    assert any(i.global_name == "builtins:exec" for i in scan_bytes(data).issues)


def test_truncated_trailing_and_bomb_frames_fail_closed() -> None:
    frame = lz4_frame.compress(b"\x80\x04N.")
    truncated = scan_bytes(frame[:-6])
    assert [i.category for i in truncated.issues][:1] == [Category.UNPROVABLE]
    trailing = scan_bytes(frame + b"junk")
    assert [i.category for i in trailing.issues] == [Category.CONTAINER_ANOMALY]
    bomb = lz4_frame.compress(b"\x80\x04" + b"N0" * (4 << 20) + b".")
    limits = Limits(ratio_floor_bytes=1 << 20, max_ratio=20)
    report = scan_bytes(bomb, limits=limits)
    assert [i.category for i in report.issues] == [Category.UNPROVABLE]
    assert "max_ratio" in report.issues[0].message
    capped = scan_bytes(bomb, limits=Limits(max_decompressed_bytes=1 << 20))
    assert "max_decompressed_bytes" in capped.issues[0].message


def test_without_the_lz4_package_the_file_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    data = lz4_frame.compress(b"\x80\x04N.")
    monkeypatch.setitem(sys.modules, "lz4", None)
    monkeypatch.setitem(sys.modules, "lz4.frame", None)
    report = scan_bytes(data)
    assert [i.category for i in report.issues] == [Category.UNPROVABLE]
    assert "install the 'lz4' package" in report.issues[0].message
