"""``FileReport.pickle_based`` and content sniffing of safetensors that start like pickles."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from bastion.artifacts import scan_bytes, scan_file
from bastion.artifacts.sniff import sniff

from .corpus import benign_files

PICKLE_BASED = {
    "state_dict.pt",
    "checkpoint.pt",
    "legacy_checkpoint.pt",
    "pipeline.pkl",
    "forest_p2.pkl",
    "pipeline.joblib",
    "forest.joblib.gz",
    "forest.joblib.xz",
    "knn.joblib.z",
    "objects.joblib",
}
NOT_PICKLE_BASED = {"torchscript.pt", "array.npy", "arrays.npz", "arrays_compressed.npz"}


def test_pickle_based_marks_what_pythons_unpickler_reads() -> None:
    files = benign_files()
    for name in sorted(PICKLE_BASED | NOT_PICKLE_BASED):
        report = scan_file(files[name])
        assert report.safe, name
        assert report.pickle_based is (name in PICKLE_BASED), name
        assert report.to_dict()["pickle_based"] is report.pickle_based


def test_numpy_object_arrays_are_pickle_based(tmp_path: Path) -> None:
    np.save(tmp_path / "o.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    np.save(tmp_path / "f.npy", np.ones(3))
    assert scan_file(tmp_path / "o.npy").pickle_based
    assert not scan_file(tmp_path / "f.npy").pickle_based


def _safetensors_with_header(length: int) -> bytes:
    """A valid safetensors file whose JSON header is exactly ``length`` bytes."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})
    return struct.pack("<Q", length) + header.ljust(length).encode() + bytes(8)


@pytest.mark.parametrize("length", [128, 384, 640, 1408])
def test_safetensors_headers_that_start_like_a_pickle(length: int, tmp_path: Path) -> None:
    """A header of 128 + 256k bytes starts with 80 0k, the PROTO opcode of a pickle."""
    data = _safetensors_with_header(length)
    assert data[:2] == bytes([0x80, (length >> 8) & 0xFF])
    assert sniff(data[:512], size=len(data)) == "safetensors"
    report = scan_bytes(data)
    assert report.safe and report.formats == ["safetensors"] and not report.pickle_based
    safetensors = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "w.safetensors"
    path.write_bytes(data)
    assert safetensors.load_file(str(path))["w"].shape == (2,)  # the real reader agrees


def test_a_real_pickle_is_still_a_pickle() -> None:
    evil = b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00cos\nsystem\n."
    assert sniff(evil, size=len(evil)) == "pickle"
    # PROTO 0 followed by a byte that no unpickler executes, but no safetensors header.
    assert sniff(b"\x80\x00\x00\x00\x00\x00\x00\x00x", size=9) == "pickle"
