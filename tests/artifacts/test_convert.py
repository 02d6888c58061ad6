"""``convert_artifact``: pickle models to safetensors / skops, never running the input."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bastion.artifacts.convert import (
    ConversionRefused,
    collect_tensors,
    convert_artifact,
    default_output,
)
from bastion.errors import UsageError


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


class CanaryPayload:
    """Unpickling this runs a shell command that creates the canary file."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.canary}",))


# -- torch -> safetensors ------------------------------------------------------------------
def test_state_dict_round_trip_gives_equal_tensors_and_outputs(tmp_path: Path) -> None:
    net = _net()
    torch.save(net.state_dict(), tmp_path / "model.pt")
    result = convert_artifact(tmp_path / "model.pt", to="safetensors")
    assert result.output == tmp_path / "model.safetensors"
    assert result.sha256 == hashlib.sha256(result.output.read_bytes()).hexdigest()
    assert result.dropped == () and result.tensors == 4
    loaded = load_file(result.output)
    for name, tensor in net.state_dict().items():
        assert torch.equal(loaded[name], tensor) and loaded[name].dtype == tensor.dtype
    fresh = _net()
    for p in fresh.parameters():
        torch.nn.init.zeros_(p)
    fresh.load_state_dict(loaded, strict=True)
    x = torch.randn(5, 4)
    assert torch.equal(fresh(x), net(x))


def test_checkpoint_drops_and_reports_non_tensor_entries(tmp_path: Path) -> None:
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(2, 4)).sum().backward()
    opt.step()
    checkpoint = {
        "epoch": 3,
        "model_state_dict": net.state_dict(),
        "optimizer_state_dict": opt.state_dict(),
        "note": "best",
    }
    torch.save(checkpoint, tmp_path / "ckpt.pt")
    result = convert_artifact(tmp_path / "ckpt.pt", output=tmp_path / "all.safetensors")
    assert result.to == "safetensors"
    assert {"epoch (int)", "note (str)"} <= set(result.dropped)
    assert any(d.startswith("optimizer_state_dict.param_groups.0.lr") for d in result.dropped)
    keys = set(load_file(result.output))
    assert "model_state_dict.0.weight" in keys
    assert "optimizer_state_dict.state.0.momentum_buffer" in keys

    only_model = convert_artifact(tmp_path / "ckpt.pt", select="model_state_dict")
    assert set(load_file(only_model.output)) == set(net.state_dict())
    with pytest.raises(UsageError, match="no entry 'weights'"):
        convert_artifact(tmp_path / "ckpt.pt", select="weights", output=tmp_path / "x.st")


def test_tied_weights_are_written_as_copies(tmp_path: Path) -> None:
    shared = torch.randn(3, 3)
    torch.save({"encoder.w": shared, "decoder.w": shared}, tmp_path / "tied.pt")
    result = convert_artifact(tmp_path / "tied.pt")
    assert any("shared storage" in note for note in result.notes)
    loaded = load_file(result.output)
    assert torch.equal(loaded["encoder.w"], shared) and torch.equal(loaded["decoder.w"], shared)


def test_collect_tensors_flattens_and_drops_unsupported() -> None:
    sparse = torch.eye(3).to_sparse()
    tensors, dropped = collect_tensors(
        {"a": [torch.zeros(1), {"b": torch.ones(2)}], "s": sparse, "n": None}
    )
    assert sorted(tensors) == ["a.0", "a.1.b"]
    assert sorted(dropped) == ["n (NoneType)", "s (torch.sparse_coo layout tensor)"]


def test_nothing_to_convert_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "counts.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(UsageError, match="no tensors"):
        convert_artifact(tmp_path / "counts.pkl", to="safetensors")


# -- scikit-learn -> skops -----------------------------------------------------------------
@pytest.fixture(scope="module")
def pipeline_and_data() -> tuple[Any, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(x, y)
    return model, x


@pytest.mark.parametrize("writer", ["pickle", "joblib", "joblib-compressed"])
def test_sklearn_pipeline_to_skops_predicts_the_same(
    tmp_path: Path, pipeline_and_data: tuple[Any, np.ndarray], writer: str
) -> None:
    import skops.io as sio

    model, x = pipeline_and_data
    source = tmp_path / ("model.pkl" if writer == "pickle" else "model.joblib")
    if writer == "pickle":
        source.write_bytes(pickle.dumps(model))
    else:
        joblib.dump(model, source, compress=3 if writer == "joblib-compressed" else 0)
    result = convert_artifact(source)
    assert result.to == "skops" and result.output == source.with_suffix(".skops")
    restored = sio.load(result.output, trusted=list(result.trusted_types))
    np.testing.assert_array_equal(restored.predict(x), model.predict(x))
    np.testing.assert_allclose(restored.predict_proba(x), model.predict_proba(x), rtol=0, atol=0)


# -- refusal: a malicious file is never loaded ------------------------------------------------
@pytest.mark.parametrize("container", ["pickle", "torch"])
def test_malicious_file_is_refused_and_the_canary_never_appears(
    tmp_path: Path, container: str
) -> None:
    canary = tmp_path / "canary"
    source = tmp_path / "evil.pt"
    if container == "pickle":
        source.write_bytes(pickle.dumps({"w": [1.0], "x": CanaryPayload(canary)}))
    else:
        torch.save({"w": torch.ones(2), "x": CanaryPayload(canary)}, source)
    with pytest.raises(ConversionRefused, match="did not scan clean") as caught:
        convert_artifact(source, to="safetensors")
    assert caught.value.exit_code == 1
    assert not canary.exists()
    assert not default_output(source, "safetensors").exists()
    assert list(tmp_path.iterdir()) == [source]  # no temporary file left either


def test_existing_output_needs_force(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(1)}, tmp_path / "m.pt")
    (tmp_path / "m.safetensors").write_bytes(b"old")
    with pytest.raises(UsageError, match="already exists"):
        convert_artifact(tmp_path / "m.pt")
    assert convert_artifact(tmp_path / "m.pt", overwrite=True).tensors == 1
    with pytest.raises(UsageError, match="overwrite the input"):
        convert_artifact(tmp_path / "m.pt", output=tmp_path / "m.pt", overwrite=True)


def test_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a file"):
        convert_artifact(tmp_path / "none.pt")
