"""Model formats: torch zips, TorchScript, Keras/HDF5, ONNX, safetensors, GGUF, NumPy, joblib."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile

import numpy as np
import pytest

from bastion.artifacts import Category, scan_bytes, scan_file

from .corpus import _gguf, _zip, benign_files, call, g, p4, u

EVIL = p4(call(g("os", "system"), u("id")))


def _messages(report) -> str:
    return " | ".join(i.message for i in report.issues)


def test_torch_storage_records_are_checked_not_parsed() -> None:
    data = benign_files()["state_dict.pt"].read_bytes()
    report = scan_bytes(data)
    assert report.safe and any("CRC-checked" in n for n in report.notes)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = [(i.filename, zf.read(i)) for i in zf.infolist()]
    first_record = next(n for n, _ in members if "/data/" in n)
    missing = _zip([(n, b) for n, b in members if n != first_record])
    assert "lacks" in _messages(scan_bytes(missing))
    short = _zip([(n, b[:2] if n == first_record else b) for n, b in members])
    assert "declares" in _messages(scan_bytes(short))


def test_torchscript_code_is_parsed_and_checked() -> None:
    assert scan_file(benign_files()["torchscript.pt"]).safe
    code = b"def forward(self, x):\n    torch.save(x, '/tmp/out')\n    return torch.ops.evilns.run(x)\n"
    data = _zip(
        [
            ("m/data.pkl", pickle.dumps(1)),
            ("m/constants.pkl", pickle.dumps(())),
            ("m/code/__torch__.py", code),
        ]
    )
    categories = {i.category for i in scan_bytes(data).issues}
    assert categories == {Category.FILE_OR_NETWORK, Category.UNKNOWN_GLOBAL}
    broken = _zip(
        [
            ("m/data.pkl", pickle.dumps(1)),
            ("m/constants.pkl", pickle.dumps(())),
            ("m/code/x.py", b"def (:"),
        ]
    )
    assert "does not parse" in _messages(scan_bytes(broken))


def test_legacy_torch_storages_are_skipped_exactly() -> None:
    data = benign_files()["legacy_checkpoint.pt"].read_bytes()
    assert scan_bytes(data).safe
    report = scan_bytes(data + EVIL)
    assert any(i.global_name == "os:system" for i in report.issues)
    assert "follow the last legacy torch storage" in _messages(report)


_KERAS_OK = {
    "class_name": "Sequential",
    "module": "keras",
    "registered_name": None,
    "config": {
        "layers": [
            {
                "class_name": "Dense",
                "module": "keras.layers",
                "registered_name": None,
                "config": {"units": 2, "activation": "relu"},
            }
        ]
    },
}


def test_keras_configs() -> None:
    ok = _zip([("config.json", json.dumps(_KERAS_OK).encode()), ("metadata.json", b"{}")])
    assert scan_bytes(ok).safe
    custom = json.loads(json.dumps(_KERAS_OK))
    custom["config"]["layers"][0]["registered_name"] = "MyPackage>MyLayer"
    report = scan_bytes(
        _zip([("config.json", json.dumps(custom).encode()), ("metadata.json", b"{}")])
    )
    assert [i.category for i in report.issues] == [Category.UNKNOWN_GLOBAL]


def test_hdf5_model_config_and_external_links(tmp_path) -> None:
    h5py = pytest.importorskip("h5py")
    ok, lam, linked = tmp_path / "ok.h5", tmp_path / "lambda.h5", tmp_path / "linked.h5"
    layer = {
        "class_name": "Lambda",
        "config": {"function": ["4wEAAAAA", None, None], "function_type": "lambda"},
    }
    for path, config in (
        (ok, _KERAS_OK),
        (lam, {"class_name": "Sequential", "config": {"layers": [layer]}}),
    ):
        with h5py.File(path, "w") as f:
            f.attrs["model_config"] = json.dumps(config)
            f.create_dataset("model_weights/dense/kernel", data=np.ones((2, 2)))
    with h5py.File(linked, "w") as f:
        f["w"] = h5py.ExternalLink("/etc/passwd", "/")
    assert scan_file(ok).safe
    assert scan_file(lam).issues[0].category is Category.CODE_EXECUTION
    assert scan_file(linked).issues[0].category is Category.FILE_OR_NETWORK


def _onnx_model(tmp_path, location: str | None, domain: str = "", local_function: bool = False):
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
    if location is not None:
        weight.data_location = TensorProto.EXTERNAL
        entry = weight.external_data.add()
        entry.key, entry.value = "location", location
        del weight.float_data[:]
    node = helper.make_node("Add" if not domain else "Custom", ["x", "w"], ["y"], domain=domain)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [weight],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    functions = []
    if local_function:
        inner = helper.make_node("Add", ["a", "b"], ["c"])
        functions = [
            helper.make_function(
                domain, "Custom", ["a", "b"], ["c"], [inner], [helper.make_opsetid("", 17)]
            )
        ]
    model = helper.make_model(graph, opset_imports=opsets, functions=functions)
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_onnx_external_data_and_custom_domains(tmp_path) -> None:
    inside = _onnx_model(tmp_path, "weights.bin")
    (tmp_path / "weights.bin").write_bytes(bytes(8))
    assert scan_file(inside).safe
    assert scan_bytes(inside.read_bytes()).safe  # the wire reader agrees
    for location in ("../secret.bin", "/etc/passwd"):
        escape = _onnx_model(tmp_path, location)
        for report in (scan_file(escape), scan_bytes(escape.read_bytes())):
            assert report.issues[0].category is Category.FILE_OR_NETWORK
    (tmp_path / "weights.bin").unlink()
    assert "missing" in _messages(scan_file(_onnx_model(tmp_path, "weights.bin")))
    custom = _onnx_model(tmp_path, None, domain="evil.ops")
    assert scan_file(custom).issues[0].global_name == "evil.ops:Custom"
    assert scan_file(_onnx_model(tmp_path, None, domain="my.fn", local_function=True)).safe


def _safetensors(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize(
    "header, data, words",
    [
        ({"a": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, bytes(4), "unknown dtype"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}}, bytes(8), "outside"),
        ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8), "need"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8), "unused"),
        ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(4), "malformed"),
        ({"__metadata__": {"k": 1}}, b"", "strings"),
    ],
)
def test_safetensors_header_validation(header: dict, data: bytes, words: str) -> None:
    assert words in _messages(scan_bytes(_safetensors(header, data)))


def test_safetensors_duplicate_keys() -> None:
    raw = b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}'
    assert "duplicate" in _messages(scan_bytes(struct.pack("<Q", len(raw)) + raw + b"\x00"))
    if "weights.safetensors" in benign_files():  # written by the safetensors package
        assert scan_file(benign_files()["weights.safetensors"]).safe


def test_gguf_header_sanity() -> None:
    assert scan_bytes(_gguf({"general.name": "tiny"})).safe
    assert "could not be proven safe" in _messages(scan_bytes(_gguf({"general.name": "tiny"})[:-3]))
    bad_version = b"GGUF" + struct.pack("<IQQ", 9, 0, 0)
    assert "version" in _messages(scan_bytes(bad_version))
    dims = (
        b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + struct.pack("<Q", 1) + b"t" + struct.pack("<I", 9)
    )
    assert "dimensions" in _messages(scan_bytes(dims))


def test_npy_sizes_and_object_arrays() -> None:
    buf = io.BytesIO()
    np.save(buf, np.arange(10.0))
    data = buf.getvalue()
    assert scan_bytes(data).safe
    assert "truncated" in _messages(scan_bytes(data[:-8]))
    obj = io.BytesIO()
    np.save(obj, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    report = scan_bytes(obj.getvalue())
    assert report.safe and "npy-object" in report.formats


def test_joblib_object_arrays_are_nested_pickles(tmp_path) -> None:
    import joblib

    path = tmp_path / "o.joblib"
    joblib.dump({"o": np.array([1, None], dtype=object), "f": np.ones(3)}, path)
    clean = path.read_bytes()
    assert scan_bytes(clean).safe
    nested = clean.index(b"\x80", 2)  # the object array's own pickle, after the wrapper
    evil = clean[:nested] + EVIL[:-1] + b"0" + clean[nested:]  # os.system, POP, the real one
    report = scan_bytes(evil)
    assert any(i.global_name == "os:system" for i in report.issues)
