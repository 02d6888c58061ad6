from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from bastion.errors import (
    DataError,
    MissingCapabilityError,
    QueryBudgetExceeded,
    TargetError,
    UsageError,
)
from bastion.targets import Capability, InputSpec, SupportsEmbeddings, SupportsGradients
from bastion.targets.torch_target import TorchTarget, resolve_device
from bastion.targets.torch_training import TrainOptions

from .conftest import CLASSES3, IMAGE_SPEC, small_cnn


def make(module: torch.nn.Module, **kw: object) -> TorchTarget:
    return TorchTarget(module, input_spec=IMAGE_SPEC, classes=CLASSES3, **kw)  # type: ignore[arg-type]


def test_capabilities_grow_with_embedding_layer_and_training(cnn):
    base = {Capability.LABELS, Capability.PROBABILITIES, Capability.LOGITS, Capability.GRADIENTS}
    assert make(cnn).capabilities == base
    assert make(cnn, embedding_layer="embedding").capabilities == base | {Capability.EMBEDDINGS}
    assert make(cnn, module_factory=small_cnn).capabilities == base | {Capability.TRAINING}
    assert isinstance(make(cnn), SupportsGradients)
    assert isinstance(make(cnn, embedding_layer="embedding"), SupportsEmbeddings)


def test_scores_are_softmax_of_logits_and_match_the_module(cnn, images):
    t = make(cnn, batch_size=3)
    proba = t.predict_proba(images)
    logits = t.logits(images)
    with torch.no_grad():
        expected = cnn(torch.from_numpy(images)).double().numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(proba.argmax(axis=1), t.predict(images))
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(proba, shifted / shifted.sum(axis=1, keepdims=True), atol=1e-9)
    assert cnn.training is False


def test_forward_keeps_gradients_on_the_device_and_charges_rows(cnn, images):
    t = make(cnn)
    x = torch.from_numpy(images).requires_grad_(True)
    out = t.forward(x)
    assert out.device == t.device and out.shape == (10, 3)
    out[:, 0].sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert t.queries_used == 10


def test_every_entry_point_charges_the_budget(cnn, images):
    t = make(cnn, embedding_layer="embedding", query_budget=40)
    t.predict(images)
    t.predict_proba(images)
    t.logits(images)
    t.embeddings(images[:5])
    t.forward(torch.from_numpy(images[:5]))
    assert t.queries_used == 40
    with pytest.raises(QueryBudgetExceeded):
        t.forward(torch.from_numpy(images[:1]))
    with pytest.raises(QueryBudgetExceeded):
        t.logits(images[:1])
    assert t.queries_used == 40


def test_forward_rejects_numpy_and_wrong_row_shapes(cnn, images):
    t = make(cnn)
    with pytest.raises(UsageError, match="torch.Tensor"):
        t.forward(images)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"\(1, 4, 4\)"):
        t.forward(torch.zeros(2, 16))
    assert t.queries_used == 0


def test_model_input_shape_mismatch_is_a_target_error(cnn):
    spec = InputSpec(shape=(1, 5, 5), lower=0.0, upper=1.0)
    t = TorchTarget(cnn, input_spec=spec, classes=CLASSES3)
    with pytest.raises(TargetError, match=r"failed on a batch of shape \(2, 1, 5, 5\)"):
        t.verify()
    with pytest.raises(TargetError, match="input spec"):
        t.predict(np.zeros((1, 1, 5, 5), dtype=np.float32))


def test_wrong_number_of_classes_is_reported(cnn, images):
    t = TorchTarget(cnn, input_spec=IMAGE_SPEC, classes=["a", "b"])
    with pytest.raises(TargetError, match=r"expected \(2, 2\)"):
        t.verify()
    with pytest.raises(TargetError, match="2 declared classes"):
        t.logits(images)


def test_embeddings_come_from_the_named_layer(cnn, images):
    t = make(cnn, embedding_layer="embedding")
    emb = t.embeddings(images)
    with torch.no_grad():
        expected = cnn.embedding(cnn.features(torch.from_numpy(images))).numpy()
    assert emb.shape == (10, 8)
    np.testing.assert_allclose(emb, expected, rtol=1e-5)


def test_unknown_embedding_layer_lists_known_ones(cnn):
    with pytest.raises(TargetError, match="no submodule 'penultimate'.*embedding"):
        make(cnn, embedding_layer="penultimate")
    with pytest.raises(MissingCapabilityError):
        make(cnn).embeddings(np.zeros((1, 1, 4, 4), dtype=np.float32))


def test_train_copy_with_factory_is_deterministic_and_independent(cnn, images):
    rng = np.random.default_rng(1)
    x = rng.random((60, 1, 4, 4)).astype(np.float32)
    y = (x.reshape(60, -1).mean(axis=1) > 0.5).astype(np.int64)
    options = TrainOptions(epochs=3, batch_size=16, lr=1e-2)
    t = make(cnn, module_factory=small_cnn, train_options=options, query_budget=5)
    before = torch.get_rng_state()
    a = t.train_copy(x, y, seed=3)
    b = t.train_copy(x, y, seed=3)
    c = t.train_copy(x, y, seed=4)
    assert torch.equal(before, torch.get_rng_state())  # global RNG untouched
    assert isinstance(a, TorchTarget) and a.module is not cnn
    assert Capability.TRAINING in a.capabilities and a.budget.limit is None
    np.testing.assert_allclose(a.logits(images), b.logits(images))
    assert not np.allclose(a.logits(images), c.logits(images))
    assert t.queries_used == 0


def test_train_copy_uses_a_custom_trainer(cnn):
    calls = []

    def trainer(x: np.ndarray, y: np.ndarray, seed: int) -> torch.nn.Module:
        calls.append((x.shape, y.tolist(), seed))
        return small_cnn()

    t = make(cnn, trainer=trainer)
    copy = t.train_copy(np.zeros((2, 1, 4, 4), np.float32), np.array([0, 2]), seed=7)
    assert calls == [((2, 1, 4, 4), [0, 2], 7)] and copy.name.endswith("copy-7")
    with pytest.raises(DataError, match=r"0\.\.2"):
        t.train_copy(np.zeros((1, 1, 4, 4), np.float32), np.array([5]), seed=0)
    with pytest.raises(MissingCapabilityError, match="training"):
        make(cnn).train_copy(np.zeros((1, 1, 4, 4), np.float32), np.array([0]), seed=0)


def test_device_names_are_validated():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(UsageError, match="'device'"):
        resolve_device("quantum")
    if not torch.cuda.is_available():
        with pytest.raises(TargetError, match="CUDA is not available"):
            resolve_device("cuda")


def test_non_module_is_refused():
    with pytest.raises(UsageError, match="torch.nn.Module"):
        TorchTarget("model.pt", input_spec=IMAGE_SPEC, classes=CLASSES3)  # type: ignore[arg-type]


def test_module_returning_a_tuple_is_reported(images):
    class Pair(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            flat = x.flatten(1)[:, :3]
            return flat, flat

    t = make(Pair())
    with pytest.raises(TargetError, match="returned tuple"):
        t.predict(images)


# -- files ------------------------------------------------------------------------------
def test_torchscript_round_trip_gives_the_same_logits_and_embeddings(torchscript_file, images):
    path, module = torchscript_file
    t = TorchTarget.from_torchscript(
        path, input_spec=IMAGE_SPEC, classes=CLASSES3, embedding_layer="embedding"
    )
    ref = make(module, embedding_layer="embedding")
    np.testing.assert_allclose(t.logits(images), ref.logits(images), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(t.embeddings(images), ref.embeddings(images), rtol=1e-5)
    assert t.describe()["format"] == "torchscript" and t.name == "model.pt"
    x = torch.from_numpy(images).requires_grad_(True)
    t.forward(x).sum().backward()
    assert x.grad is not None
    assert Capability.TRAINING not in t.capabilities


def test_torchscript_of_a_non_sequential_model_refuses_embeddings(tmp_path):
    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Linear(16, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x.flatten(1))

    path = tmp_path / "net.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(Net()), str(path))
    with pytest.raises(TargetError, match="not a Sequential"):
        TorchTarget.from_torchscript(
            path, input_spec=IMAGE_SPEC, classes=CLASSES3, embedding_layer="body"
        )


def test_export_round_trip_with_gradients_and_embeddings(export_file, images):
    path, module = export_file
    t = TorchTarget.from_export(path, input_spec=IMAGE_SPEC, classes=CLASSES3)
    ref = make(module, embedding_layer="embedding")
    np.testing.assert_allclose(t.logits(images), ref.logits(images), rtol=1e-5, atol=1e-6)
    x = torch.from_numpy(images).requires_grad_(True)
    t.forward(x).sum().backward()
    assert x.grad is not None and t.describe()["format"] == "torch.export"
    e = TorchTarget.from_export(
        path, input_spec=IMAGE_SPEC, classes=CLASSES3, embedding_layer="embedding"
    )
    np.testing.assert_allclose(e.embeddings(images), ref.embeddings(images), rtol=1e-5)


@pytest.mark.parametrize("loader", ["from_torchscript", "from_export"])
def test_missing_and_corrupt_files_are_target_errors(tmp_path, loader):
    load = getattr(TorchTarget, loader)
    with pytest.raises(TargetError, match="No model file at .*nope.pt; check the path"):
        load(tmp_path / "nope.pt", input_spec=IMAGE_SPEC, classes=CLASSES3)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(TargetError, match="bad.pt"):
        load(bad, input_spec=IMAGE_SPEC, classes=CLASSES3)


def test_torchscript_loader_refuses_an_export_archive(export_file):
    path, _ = export_file
    with pytest.raises(TargetError, match="not a TorchScript archive"):
        TorchTarget.from_torchscript(path, input_spec=IMAGE_SPEC, classes=CLASSES3)


# -- the one-chunk fast path against chunked evaluation ----------------------------------
def _reference_batched(t: TorchTarget, arr: np.ndarray, fn) -> np.ndarray:  # type: ignore[no-untyped-def]
    """``TorchTarget._batched`` as it was before the one-chunk fast path."""
    parts = []
    with torch.no_grad():
        for start in range(0, len(arr), t.batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(arr[start : start + t.batch_size]))
            parts.append(fn(chunk.to(t.device)).detach().to("cpu", torch.float64).numpy())
    return np.concatenate(parts, axis=0)


@pytest.mark.parametrize("batch_size", [3, 256])
def test_batched_matches_the_reference(cnn, images, batch_size):
    t = make(cnn, batch_size=batch_size, embedding_layer="embedding")
    for n in (1, 3, 10):
        x = images[:n]
        proba = _reference_batched(t, x, lambda z: torch.softmax(t._run(z).double(), dim=1))
        for got, want in [
            (t.predict_proba(x), proba),
            (t.logits(x), _reference_batched(t, x, t._run)),
        ]:
            assert got.dtype == np.float64 and got.flags.c_contiguous
            np.testing.assert_array_equal(got, want)
    assert t.queries_used == 2 * 14


class _Buffered(torch.nn.Module):
    """Returns the same float64 buffer every call, transposed (a non-contiguous view)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("out", torch.zeros(3, 1, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.out.fill_(float(x.sum()))
        return self.out[:, : len(x)].T


def test_results_never_share_memory_with_module_outputs():
    t = make(_Buffered())
    x = np.full((1, 1, 4, 4), 0.5, dtype=np.float32)
    first = t.logits(x)
    assert first.flags.c_contiguous and first.tolist() == [[8.0, 8.0, 8.0]]
    t.logits(np.zeros_like(x))  # the module overwrites its buffer
    assert first.tolist() == [[8.0, 8.0, 8.0]]


def test_capability_table_matches_each_combination(cnn):
    base = {Capability.LABELS, Capability.PROBABILITIES, Capability.LOGITS, Capability.GRADIENTS}
    t = make(cnn, embedding_layer="embedding", module_factory=small_cnn)
    assert t.capabilities == base | {Capability.EMBEDDINGS, Capability.TRAINING}
    t.module_factory = None
    assert t.capabilities == base | {Capability.EMBEDDINGS}
    t.trainer = lambda x, y, seed: small_cnn()
    assert Capability.TRAINING in t.capabilities
