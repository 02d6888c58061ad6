"""safe_load: scan first, then load through the same allowlist; pin by hash."""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path

import numpy as np
import pytest

from bastion.artifacts import (
    DEFAULT_ALLOWLIST,
    RefusedGlobalError,
    UnsafeArtifactError,
    restricted_unpickler,
    safe_load,
)
from bastion.errors import TargetError, UsageError

from .corpus import Sample, benign_files, call, g, malicious_samples, p4, u


def test_benign_artifacts_load_like_their_own_loaders() -> None:
    import joblib
    import torch

    files = benign_files()
    sd = safe_load(files["state_dict.pt"])
    ref = torch.load(files["state_dict.pt"], weights_only=True)
    assert all(torch.equal(sd[k], ref[k]) for k in ref)
    legacy = safe_load(files["legacy_checkpoint.pt"])
    assert legacy["epoch"] == 3 and legacy["dtype"] is torch.float16
    forest = safe_load(files["forest.joblib.gz"])
    x = np.random.default_rng(1).random((5, 4))
    np.testing.assert_array_equal(
        forest.predict(x), joblib.load(files["forest.joblib.gz"]).predict(x)
    )
    assert type(safe_load(files["pipeline.pkl"])).__name__ == "Pipeline"
    assert safe_load(files["objects.joblib"])["o"].dtype == object
    assert set(safe_load(files["arrays.npz"])) == {"a", "b"}
    assert safe_load(files["array.npy"]).shape == (3, 4)


def test_unsafe_artifacts_are_refused_before_loading(tmp_path: Path) -> None:
    canary = tmp_path / "CANARY"
    for sample in malicious_samples(canary):
        path = tmp_path / sample.name
        path.write_bytes(sample.data)
        with pytest.raises((UnsafeArtifactError, UsageError)):
            safe_load(path)
    assert not canary.exists()


def test_a_pinned_hash_must_match(tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps([1, 2]))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert safe_load(path, expected_sha256=digest.upper()) == [1, 2]
    with pytest.raises(TargetError, match="pinned"):
        safe_load(path, expected_sha256="0" * 64)


def test_reviewed_exceptions_are_needed_to_load_custom_classes(tmp_path: Path) -> None:
    path = tmp_path / "sample.pkl"
    path.write_bytes(pickle.dumps(Sample("x", "y", b"z")))
    with pytest.raises(UnsafeArtifactError) as err:
        safe_load(path)
    assert "tests.artifacts.corpus:Sample" in str(err.value.report.issues[0].global_name)
    assert safe_load(path, allow=["tests.artifacts.corpus:Sample"]) == Sample("x", "y", b"z")


def test_the_restricted_unpickler_names_what_it_refuses() -> None:
    data = p4(call(g("os", "system"), u("id")))
    with pytest.raises(RefusedGlobalError, match="os:system") as err:
        restricted_unpickler(DEFAULT_ALLOWLIST)(io.BytesIO(data)).load()
    assert err.value.global_name == "os:system"
    py2 = b"\x80\x02c__builtin__\nset\n]\x85R."
    assert restricted_unpickler(DEFAULT_ALLOWLIST)(io.BytesIO(py2)).load() == set()


def test_non_pickle_formats_are_sent_to_their_own_loaders(tmp_path: Path) -> None:
    header = b'{"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}'
    path = tmp_path / "w.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\x00")
    with pytest.raises(UsageError, match="safetensors"):
        safe_load(path)
    with pytest.raises(UsageError):
        safe_load(Path("/nonexistent/model.pkl"))
