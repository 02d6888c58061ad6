from __future__ import annotations

import pickle
import shutil

import numpy as np
import onnx
import pytest
import skops.io
import torch
from onnx import TensorProto, helper
from sklearn.linear_model import LogisticRegression

from bastion.errors import DataError, TargetError, UsageError
from bastion.targets import InputSpec
from bastion.targets.http_target import HttpTarget
from bastion.targets.loading import detect_format, infer_input_spec, load_target
from bastion.targets.onnx_target import OnnxTarget
from bastion.targets.sklearn_target import SklearnTarget
from bastion.targets.torch_target import TorchTarget

from .conftest import CLASSES3, IMAGE_SPEC


@pytest.fixture(scope="module")
def skops_file(tmp_path_factory, cancer):
    x, y, _ = cancer
    est = LogisticRegression(max_iter=5000).fit(x[:, :4], y)
    path = tmp_path_factory.mktemp("skops") / "model.bin"  # extension deliberately useless
    skops.io.dump(est, path)
    return path, est


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 2], [1, -1, 0.5, 0, -1, 1, 0, 0.5])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["logits"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 2])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path_factory.mktemp("onnx") / "model.dat"
    onnx.save(model, path)
    return path


TAB_SPEC = InputSpec(shape=(4,))


def test_formats_are_detected_from_content(torchscript_file, export_file, skops_file, onnx_file):
    assert detect_format(torchscript_file[0]) == "torchscript"
    assert detect_format(export_file[0]) == "torch.export"
    assert detect_format(skops_file[0]) == "skops"
    assert detect_format(onnx_file) == "onnx"
    assert detect_format("https://api.example.com/predict") == "http"


def test_torchscript_round_trip_through_load_target(torchscript_file, images, tmp_path):
    path, module = torchscript_file
    renamed = tmp_path / "weights.onnx"  # a misleading extension must not matter
    shutil.copy(path, renamed)
    t = load_target(renamed, input_spec=IMAGE_SPEC, classes=CLASSES3, query_budget=100)
    assert isinstance(t, TorchTarget) and t.format == "torchscript"
    with torch.no_grad():
        expected = torch.softmax(module(torch.from_numpy(images)), dim=1).numpy()
    np.testing.assert_allclose(t.predict_proba(images), expected, rtol=1e-5, atol=1e-7)
    assert t.queries_used == len(images)  # the load-time self-test is not charged


def test_export_skops_and_onnx_round_trips(export_file, skops_file, onnx_file, images, cancer):
    path, module = export_file
    t = load_target(path, input_spec=IMAGE_SPEC, classes=CLASSES3, options={"batch_size": 4})
    assert isinstance(t, TorchTarget) and t.format == "torch.export"
    with torch.no_grad():
        np.testing.assert_allclose(
            t.logits(images), module(torch.from_numpy(images)).numpy(), rtol=1e-5, atol=1e-6
        )
    skops_path, est = skops_file
    x = cancer[0][:20, :4]
    s = load_target(skops_path, input_spec=TAB_SPEC, classes=["m", "b"], name="cancer")
    assert isinstance(s, SklearnTarget) and s.name == "cancer"
    np.testing.assert_allclose(s.predict_proba(x), est.predict_proba(x))
    o = load_target(onnx_file, input_spec=TAB_SPEC, classes=["m", "b"])
    assert isinstance(o, OnnxTarget) and o.output_kind_ == "logits"


def test_urls_become_http_targets():
    t = load_target(
        "http://127.0.0.1:9/predict",
        input_spec=TAB_SPEC,
        classes=["a", "b"],
        options={"response_path": "outputs.p", "retries": 0},
    )
    assert isinstance(t, HttpTarget) and t.name == "127.0.0.1" and t.response_path == "outputs.p"
    with pytest.raises(UsageError, match="is a URL"):
        load_target("http://127.0.0.1:9/", kind="onnx", input_spec=TAB_SPEC, classes=["a", "b"])


def test_missing_file_and_folders(tmp_path):
    with pytest.raises(TargetError, match=r"^No model file at .*ghost\.pt; check the path\.$"):
        load_target(tmp_path / "ghost.pt", input_spec=TAB_SPEC, classes=["a", "b"])
    with pytest.raises(TargetError, match="is a folder"):
        load_target(tmp_path, input_spec=TAB_SPEC, classes=["a", "b"])


def test_pickles_and_checkpoints_are_refused_without_loading(tmp_path):
    class Boom:
        def __reduce__(self):  # would run on unpickling
            return (print, ("unpickled!",))

    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(TargetError, match="Python pickle.*never loads.*skops"):
        load_target(pkl, input_spec=TAB_SPEC, classes=["a", "b"])
    ckpt = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(4, 2).state_dict(), ckpt)
    with pytest.raises(TargetError, match="torch.save checkpoint.*never unpickles"):
        load_target(ckpt, input_spec=TAB_SPEC, classes=["a", "b"])


def test_unknown_and_corrupt_content(tmp_path):
    text = tmp_path / "model.onnx"
    text.write_text("definitely not a model\n")
    with pytest.raises(TargetError, match="not one Bastion recognises; it loads TorchScript"):
        load_target(text, input_spec=TAB_SPEC, classes=["a", "b"])
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(TargetError, match="damaged"):
        load_target(broken, input_spec=TAB_SPEC, classes=["a", "b"])
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(b"\x08\x08\x12\x05hello\x3a\xff\xff\xff")
    with pytest.raises(TargetError, match="could not be loaded as an ONNX model"):
        load_target(truncated, input_spec=TAB_SPEC, classes=["a", "b"])


def test_forced_kind_must_match_the_content(skops_file):
    path, _ = skops_file
    with pytest.raises(TargetError, match="not a TorchScript or torch.export archive"):
        load_target(path, kind="torch", input_spec=TAB_SPEC, classes=["a", "b"])
    with pytest.raises(TargetError, match="could not be loaded as an ONNX model"):
        load_target(path, kind="onnx", input_spec=TAB_SPEC, classes=["a", "b"])
    with pytest.raises(UsageError, match="Unknown target kind 'keras'"):
        load_target(path, kind="keras", input_spec=TAB_SPEC, classes=["a", "b"])


def test_options_are_checked(skops_file, torchscript_file):
    path, _ = skops_file
    with pytest.raises(UsageError, match="no option.*'device'.*options are trusted"):
        load_target(path, input_spec=TAB_SPEC, classes=["a", "b"], options={"device": "cpu"})
    with pytest.raises(UsageError, match="not inside 'options'"):
        load_target(path, input_spec=TAB_SPEC, classes=["a", "b"], options={"name": "x"})
    t = load_target(
        torchscript_file[0],
        input_spec=IMAGE_SPEC,
        classes=CLASSES3,
        options={"device": "cpu", "embedding_layer": "embedding"},
    )
    assert t.describe()["embedding_layer"] == "embedding"


def test_shape_mismatch_is_caught_at_load_time(torchscript_file, skops_file):
    with pytest.raises(TargetError, match="input spec"):
        load_target(torchscript_file[0], input_spec=InputSpec(shape=(30,)), classes=CLASSES3)
    with pytest.raises(TargetError, match="features"):
        load_target(skops_file[0], input_spec=InputSpec(shape=(7,)), classes=["a", "b"])


def test_infer_input_spec():
    img = np.random.default_rng(0).random((4, 1, 8, 8))
    spec = infer_input_spec(img)
    assert spec.shape == (1, 8, 8) and (spec.lower, spec.upper) == (0.0, 1.0)
    assert spec.dtype == "float32"
    pixels = np.random.default_rng(0).integers(0, 256, size=(4, 3, 4, 4)).astype(np.float64)
    assert infer_input_spec(pixels).upper == 255.0
    tab = np.array([[1.0, -5.0], [2.0, 5.0]])
    spec = infer_input_spec(tab, feature_names=["a", "b"])
    assert (
        spec.lower == [1.0, -5.0] and spec.upper == [2.0, 5.0] and spec.feature_names == ["a", "b"]
    )
    with pytest.raises(DataError, match="one name per feature"):
        infer_input_spec(tab, feature_names=["a"])
    with pytest.raises(DataError, match="at least one row"):
        infer_input_spec(np.zeros(3))
    with pytest.raises(DataError, match="finite"):
        infer_input_spec(np.array([[np.nan, 1.0]]))
