"""Manifests: listing, sharded hashing, canonical JSON, determinism, comparison."""

from __future__ import annotations

import hashlib
import json
import os
import tracemalloc
from pathlib import Path

import pytest

from bastion.artifacts.manifest import (
    FileRecord,
    Manifest,
    build_manifest,
    check_relative_path,
    compare,
)
from bastion.artifacts.tree_hash import hash_tree, list_tree
from bastion.canonical import canonical_json, parse_strict
from bastion.errors import UsageError


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "layers" / "deep").mkdir(parents=True)
    (root / "config.json").write_text('{"hidden": 8}')
    (root / "layers" / "0.bin").write_bytes(bytes(range(256)) * 40)
    (root / "layers" / "deep" / "1.bin").write_bytes(os.urandom(5000))
    (root / "empty").write_bytes(b"")
    return root


# -- canonical JSON ------------------------------------------------------------------------
def test_canonical_json_sorts_keys_by_utf16_code_units_as_rfc8785() -> None:
    # RFC 8785 section 3.2.3: U+1F600 (surrogates D83D DE00) sorts before U+FB33.
    keys = ["\ufb33", "\U0001f600", "\u20ac", "1", "\r", "\u00f6", "\u0080"]
    encoded = canonical_json({k: 0 for k in keys}).decode("utf-8")
    order = [json.loads(f'"{part.split(":")[0][1:-1]}"') for part in encoded[1:-1].split(",")]
    assert order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_canonical_json_is_compact_and_escapes_only_what_json_requires() -> None:
    assert canonical_json({"b": [1, None, False], "a": 'x\n"é'}) == (
        '{"a":"x\\n\\"é","b":[1,null,false]}'.encode()
    )


@pytest.mark.parametrize("value", [2**53, float("nan"), {1: "int key"}, b"bytes", "\ud800"])
def test_canonical_json_refuses_values_outside_the_exact_subset(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        canonical_json(value)


@pytest.mark.parametrize("text", ['{"a":1,"a":2}', '{"a":1.0}', '{"a":NaN}', "[Infinity]"])
def test_parse_strict_refuses_ambiguous_json(text: str) -> None:
    with pytest.raises(ValueError):
        parse_strict(text)


# -- listing and hashing -----------------------------------------------------------------
def test_listing_uses_relative_posix_paths_sorted(model: Path) -> None:
    listing = list_tree(model)
    assert [f.path for f in listing.files] == [
        "config.json",
        "empty",
        "layers/0.bin",
        "layers/deep/1.bin",
    ]
    assert listing.kind == "directory"


def test_digests_equal_plain_sha256(model: Path) -> None:
    digests = {d.path: d.sha256 for d in hash_tree(model, list_tree(model), workers=3)}
    for rel, digest in digests.items():
        assert digest == hashlib.sha256((model / rel).read_bytes()).hexdigest()


def test_large_file_is_hashed_in_shards_with_bounded_memory(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    size = 48 * 1024 * 1024 + 12345  # sparse: instant to create, read as zeros
    with big.open("wb") as handle:
        handle.truncate(size)
        handle.seek(20 * 1024 * 1024)
        handle.write(b"marker in the second shard")
    shard, chunk = 16 * 1024 * 1024, 256 * 1024
    tracemalloc.start()
    try:
        digest = hash_tree(
            tmp_path, list_tree(tmp_path), shard_size=shard, chunk_size=chunk, workers=2
        )[0]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.sha256 is None and len(digest.shards) == 4
    data = big.read_bytes()
    expected = [hashlib.sha256(data[i : i + shard]).hexdigest() for i in range(0, size, shard)]
    assert list(digest.shards) == expected
    assert peak < 8 * chunk, f"peak traced memory {peak} bytes for a {size}-byte file"


def test_one_changed_byte_in_one_shard_is_found(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / "w.bin").write_bytes(b"\x00" * 10_000)
    before = build_manifest(root, shard_size=4096)
    with (root / "w.bin").open("r+b") as handle:
        handle.seek(5000)
        handle.write(b"\x01")
    after = build_manifest(root, shard_size=4096)
    assert [a == b for a, b in zip(before.files[0].shards, after.files[0].shards, strict=True)] == [
        True,
        False,
        True,
    ]
    assert compare(before, after).modified == ("w.bin",)


def test_manifest_is_deterministic_across_worker_counts_and_runs(model: Path) -> None:
    one = canonical_json(build_manifest(model, workers=1, shard_size=3000).to_payload())
    many = canonical_json(build_manifest(model, workers=4, shard_size=3000).to_payload())
    assert one == many
    assert b"2026" not in one  # nothing time-dependent


def test_compare_names_modified_added_and_missing(model: Path) -> None:
    before = build_manifest(model)
    (model / "config.json").write_text('{"hidden": 9}')
    (model / "layers" / "deep" / "1.bin").unlink()
    (model / "layers" / "payload.py").write_text("import os")
    diff = compare(before, build_manifest(model))
    assert diff.modified == ("config.json",)
    assert diff.added == ("layers/payload.py",)
    assert diff.missing == ("layers/deep/1.bin",)
    assert not diff.ok


def test_payload_round_trips_through_validation(model: Path) -> None:
    manifest = build_manifest(model, shard_size=3000, exclude=["empty"])
    again = Manifest.from_payload(json.loads(json.dumps(manifest.to_payload())))
    assert again == manifest
    assert "empty" not in [f.path for f in again.files] and again.excluded == ("empty",)


@pytest.mark.parametrize("bad", ["../up", "/abs", "a//b", "a/./b", "a\\b", "", "a/.."])
def test_paths_that_could_leave_the_folder_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        check_relative_path(bad)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p["files"][0].update(path="../../etc/passwd"),
        lambda p: p["files"][0].update(sha256="ABC"),
        lambda p: p["files"][0].update(size=-1),
        lambda p: p.update(extra=1),
        lambda p: p["files"].append(dict(p["files"][0])),
        lambda p: p.update(shard_size=0),
    ],
)
def test_from_payload_rejects_malformed_entries(model: Path, mutate: object) -> None:
    payload = build_manifest(model).to_payload()
    mutate(payload)  # type: ignore[operator]
    with pytest.raises(ValueError):
        Manifest.from_payload(payload)


def test_record_content_comparison() -> None:
    a = FileRecord("x", 3, "a" * 64)
    assert a.same_content(FileRecord("x", 3, "a" * 64))
    assert not a.same_content(FileRecord("x", 3, "b" * 64))
    assert not a.same_content(FileRecord("x", 4, "a" * 64))


# -- links and special files ---------------------------------------------------------------
def test_internal_link_is_recorded_not_followed(model: Path) -> None:
    (model / "alias.bin").symlink_to("layers/0.bin")
    manifest = build_manifest(model)
    assert [(link.path, link.target) for link in manifest.links] == [("alias.bin", "layers/0.bin")]
    assert "alias.bin" not in [f.path for f in manifest.files]


def test_link_leaving_the_folder_is_refused_when_signing(model: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    (model / "escape").symlink_to(secret)
    with pytest.raises(UsageError, match="points outside"):
        build_manifest(model)


def test_link_leaving_the_folder_is_reported_when_verifying(model: Path, tmp_path: Path) -> None:
    before = build_manifest(model)
    (model / "layers" / "0.bin").unlink()
    (model / "layers" / "0.bin").symlink_to(tmp_path / "elsewhere.bin")
    after = build_manifest(model, strict=False)
    assert compare(before, after).modified == ("layers/0.bin",)


def test_fifo_is_refused(model: Path) -> None:
    os.mkfifo(model / "pipe")
    with pytest.raises(UsageError, match="FIFO"):
        list_tree(model)


def test_single_file_root(model: Path) -> None:
    manifest = build_manifest(model / "config.json")
    assert manifest.root_kind == "file"
    assert [f.path for f in manifest.files] == ["config.json"]


def test_missing_root_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        build_manifest(tmp_path / "nope")
