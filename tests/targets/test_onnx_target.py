from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from bastion.errors import MissingCapabilityError, QueryBudgetExceeded, TargetError
from bastion.targets import Capability, InputSpec
from bastion.targets.onnx_target import OnnxTarget

W = np.array([[2.0, -1.0, 0.0], [-1.0, 2.0, 0.5]], dtype=np.float32)  # 2 features, 3 classes
SPEC = InputSpec(shape=(2,), lower=0.0, upper=1.0)
CLASSES = ["a", "b", "c"]
X = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.9]], dtype=np.float32)


def logits_of(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) @ W.astype(np.float64)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def save(path: Path, nodes, outputs, *, batch: str | int = "n", extra_inputs=()) -> Path:
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 2]), *extra_inputs]
    weight = helper.make_tensor("w", TensorProto.FLOAT, list(W.shape), W.flatten().tolist())
    graph = helper.make_graph(nodes, "g", inputs, outputs, [weight])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 2)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def tensor_out(name: str, batch: str | int = "n", width: int | None = 3):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, width])


def test_logits_output_is_detected_and_softmaxed(tmp_path):
    path = save(
        tmp_path / "m.onnx", [helper.make_node("MatMul", ["x", "w"], ["out"])], [tensor_out("out")]
    )
    t = OnnxTarget(path, input_spec=SPEC, classes=CLASSES)
    assert t.output_kind_ == "logits"
    assert t.capabilities == {Capability.LABELS, Capability.PROBABILITIES, Capability.LOGITS}
    np.testing.assert_allclose(t.logits(X), logits_of(X), rtol=1e-6)
    np.testing.assert_allclose(t.predict_proba(X), softmax(logits_of(X)), rtol=1e-5)
    assert t.queries_used == 2 * len(X)


def test_probability_output_is_detected_by_running_it(tmp_path):
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["z"]),
        helper.make_node("Softmax", ["z"], ["y"], axis=1),
    ]
    path = save(tmp_path / "m.onnx", nodes, [tensor_out("y")])
    t = OnnxTarget(path, input_spec=SPEC, classes=CLASSES)
    assert t.output_kind_ == "probabilities"
    assert Capability.LOGITS not in t.capabilities
    np.testing.assert_allclose(t.predict_proba(X), softmax(logits_of(X)), rtol=1e-5)
    with pytest.raises(MissingCapabilityError):
        t.logits(X)


def skl2onnx_like(path: Path, *, string_labels: bool) -> Path:
    """Outputs like skl2onnx's default: a label tensor and a ZipMap of probabilities."""
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["z"]),
        helper.make_node("Softmax", ["z"], ["p"], axis=1),
        helper.make_node("ArgMax", ["p"], ["label_idx"], axis=1, keepdims=0),
    ]
    if string_labels:
        zip_attr = {"classlabels_strings": CLASSES}
        nodes.append(
            helper.make_node(
                "LabelEncoder", ["label_idx"], ["output_label"], domain="ai.onnx.ml",
                keys_int64s=[0, 1, 2], values_strings=CLASSES,
            )
        )  # fmt: skip
        key_type, label_type = TensorProto.STRING, TensorProto.STRING
    else:
        zip_attr = {"classlabels_int64s": [0, 1, 2]}
        nodes.append(helper.make_node("Identity", ["label_idx"], ["output_label"]))
        key_type, label_type = TensorProto.INT64, TensorProto.INT64
    nodes.append(
        helper.make_node("ZipMap", ["p"], ["output_probability"], domain="ai.onnx.ml", **zip_attr)
    )
    zip_type = helper.make_sequence_type_proto(
        helper.make_map_type_proto(key_type, helper.make_tensor_type_proto(TensorProto.FLOAT, []))
    )
    outputs = [
        helper.make_tensor_value_info("output_label", label_type, ["n"]),
        helper.make_value_info("output_probability", zip_type),
    ]
    return save(path, nodes, outputs)


@pytest.mark.parametrize("string_labels", [False, True])
def test_zipmap_outputs_become_arrays(tmp_path, string_labels):
    path = skl2onnx_like(tmp_path / "m.onnx", string_labels=string_labels)
    t = OnnxTarget(path, input_spec=SPEC, classes=CLASSES)
    assert t.output_name_ == "output_probability" and t.output_kind_ == "probabilities"
    np.testing.assert_allclose(t.predict_proba(X), softmax(logits_of(X)), rtol=1e-5)
    labels = OnnxTarget(path, input_spec=SPEC, classes=CLASSES, output="labels")
    assert labels.output_name_ == "output_label"
    assert labels.capabilities == {Capability.LABELS}
    np.testing.assert_array_equal(labels.predict(X), logits_of(X).argmax(axis=1))


def test_label_only_model(tmp_path):
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["z"]),
        helper.make_node("ArgMax", ["z"], ["label"], axis=1, keepdims=0),
    ]
    outputs = [helper.make_tensor_value_info("label", TensorProto.INT64, ["n"])]
    t = OnnxTarget(save(tmp_path / "m.onnx", nodes, outputs), input_spec=SPEC, classes=CLASSES)
    assert t.output_kind_ == "labels" and t.capabilities == {Capability.LABELS}
    assert t.predict(X).tolist() == logits_of(X).argmax(axis=1).tolist()
    with pytest.raises(MissingCapabilityError):
        t.predict_proba(X)


def test_output_chosen_by_name_or_index(tmp_path):
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    path = save(tmp_path / "m.onnx", nodes, [tensor_out("logits"), tensor_out("probs")])
    assert OnnxTarget(path, input_spec=SPEC, classes=CLASSES).output_name_ == "probs"
    by_index = OnnxTarget(path, input_spec=SPEC, classes=CLASSES, output_name=0)
    assert (by_index.output_name_, by_index.output_kind_) == ("logits", "logits")
    forced = OnnxTarget(path, input_spec=SPEC, classes=CLASSES, output="logits")
    assert forced.output_name_ == "logits"
    with pytest.raises(TargetError, match="no output 'scores'"):
        OnnxTarget(path, input_spec=SPEC, classes=CLASSES, output_name="scores")


def test_fixed_batch_of_one_runs_row_by_row(tmp_path):
    path = save(
        tmp_path / "m.onnx",
        [helper.make_node("MatMul", ["x", "w"], ["out"])],
        [tensor_out("out", batch=1)],
        batch=1,
    )
    t = OnnxTarget(path, input_spec=SPEC, classes=CLASSES, output="logits")
    np.testing.assert_allclose(t.logits(X), logits_of(X), rtol=1e-6)


def test_input_shape_and_name_problems(tmp_path):
    path = save(
        tmp_path / "m.onnx", [helper.make_node("MatMul", ["x", "w"], ["out"])], [tensor_out("out")]
    )
    with pytest.raises(TargetError, match=r"takes input of shape \['n', 2\].*\(3,\)"):
        OnnxTarget(path, input_spec=InputSpec(shape=(3,)), classes=CLASSES)
    with pytest.raises(TargetError, match="no input 'pixels'"):
        OnnxTarget(path, input_spec=SPEC, classes=CLASSES, input_name="pixels")
    two = save(
        tmp_path / "two.onnx",
        [
            helper.make_node("MatMul", ["x", "w"], ["out"]),
            helper.make_node("Identity", ["y"], ["y2"]),
        ],
        [tensor_out("out"), helper.make_tensor_value_info("y2", TensorProto.FLOAT, ["n"])],
        extra_inputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])],
    )
    with pytest.raises(TargetError, match=r"has inputs \['x', 'y'\]"):
        OnnxTarget(two, input_spec=SPEC, classes=CLASSES)


def test_wrong_class_count_is_reported(tmp_path):
    path = save(
        tmp_path / "m.onnx", [helper.make_node("MatMul", ["x", "w"], ["out"])], [tensor_out("out")]
    )
    with pytest.raises(TargetError, match="3 columns but 2 classes"):
        OnnxTarget(path, input_spec=SPEC, classes=["a", "b"], output="logits")


def test_corrupt_and_missing_files(tmp_path):
    with pytest.raises(TargetError, match="No model file at"):
        OnnxTarget(tmp_path / "none.onnx", input_spec=SPEC, classes=CLASSES)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not protobuf" * 3)
    with pytest.raises(TargetError, match="could not be loaded as an ONNX model"):
        OnnxTarget(bad, input_spec=SPEC, classes=CLASSES)


def test_budget_is_charged_before_running(tmp_path):
    path = save(
        tmp_path / "m.onnx", [helper.make_node("MatMul", ["x", "w"], ["out"])], [tensor_out("out")]
    )
    t = OnnxTarget(path, input_spec=SPEC, classes=CLASSES, query_budget=5)
    t.predict(X)
    with pytest.raises(QueryBudgetExceeded):
        t.predict_proba(X[:2])
    assert t.queries_used == 4
