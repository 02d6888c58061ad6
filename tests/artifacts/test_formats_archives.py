"""Archives and compressed streams: zip read like PyTorch, tar, 7z, polyglots."""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
import zipfile

import pytest

from bastion.artifacts import Category, scan_bytes

from .corpus import _zip, call, g, p4, u

EVIL = p4(call(g("os", "system"), u("id")))
OK = pickle.dumps({"w": [1, 2]})


def _categories(report) -> set[Category]:
    return {i.category for i in report.issues}


def test_every_central_directory_entry_is_scanned_even_duplicates() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", OK)
        with pytest.warns(UserWarning):
            zf.writestr("archive/data.pkl", EVIL)
        zf.writestr("archive/DATA.PKL", OK)
    report = scan_bytes(buf.getvalue())
    assert [i.global_name for i in report.issues if i.global_name] == ["os:system"]
    assert sum("two members are named" in i.message for i in report.issues) == 2


def test_zip_quirks_that_pytorch_tolerates_are_read_through_and_reported() -> None:
    data = _zip([("archive/data.pkl", EVIL)])
    at = data.index(b"archive/data.pkl")  # the local header's name
    mismatch = data[:at] + b"archive/xxxx.pkl" + data[at + 16 :]
    report = scan_bytes(mismatch)
    assert any("local header names" in i.message for i in report.issues)
    assert any(i.global_name == "os:system" for i in report.issues)  # still scanned
    crc_at = data.index(b"PK\x01\x02") + 16
    bad_crc = data[:crc_at] + b"\x00\x00\x00\x00" + data[crc_at + 4 :]
    report = scan_bytes(bad_crc)
    assert any("CRC-32" in i.message for i in report.issues)
    assert any(i.global_name == "os:system" for i in report.issues)


def test_zip_structural_attacks() -> None:
    flagged = bytearray(_zip([("a.pkl", OK)]))
    central = flagged.index(b"PK\x01\x02")
    flagged[central + 8] |= 1  # encrypted flag in the central directory
    assert any("encrypted" in i.message for i in scan_bytes(bytes(flagged)).issues)
    traversal = scan_bytes(_zip([("../../etc/cron.d/x", b"hello")]))
    assert Category.FILE_OR_NETWORK in _categories(traversal)
    truncated = _zip([("a.pkl", OK * 50)])[:-200]
    assert Category.UNPROVABLE in _categories(scan_bytes(truncated))


def test_overlapping_members_are_reported() -> None:
    data = bytearray(_zip([("a.pkl", OK), ("b.pkl", OK)]))
    second = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 4)
    data[second + 42 : second + 46] = struct.pack("<I", 0)  # b.pkl's header offset -> a.pkl's
    report = scan_bytes(bytes(data))
    assert any("overlap" in i.message for i in report.issues)


def test_tar_members_links_and_traversal() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, payload in (("model/weights.pkl", EVIL), ("../escape.txt", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        link = tarfile.TarInfo("model/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    report = scan_bytes(buf.getvalue())
    assert report.formats[0] == "tar"
    assert any(
        i.global_name == "os:system" and i.location.member == ("model/weights.pkl",)
        for i in report.issues
    )
    assert sum(i.category is Category.FILE_OR_NETWORK for i in report.issues) == 2


def test_7z_members_are_scanned_in_memory(tmp_path) -> None:
    py7zr = pytest.importorskip("py7zr")
    path = tmp_path / "m.7z"
    with py7zr.SevenZipFile(path, "w") as archive:
        archive.writestr(EVIL, "model.pkl")
        archive.writestr(OK, "ok.pkl")
    report = scan_bytes(path.read_bytes())
    assert report.formats[0] == "7z"
    assert [i.location.member for i in report.issues if i.global_name] == [("model.pkl",)]


def test_a_zip_appended_to_a_pickle_is_a_polyglot() -> None:
    report = scan_bytes(OK + _zip([("archive/data.pkl", EVIL)]))
    assert any("polyglot" in i.message for i in report.issues)
    assert any(i.global_name == "os:system" for i in report.issues)


def test_garbage_that_looks_like_zlib_is_still_read_as_a_pickle() -> None:
    sneaky = b"(S'id'\nios\nsystem\n."  # '(' 'S' is also a valid zlib header
    report = scan_bytes(sneaky)
    assert report.formats == ["pickle"] and report.issues[0].global_name == "os:system"
