"""A corpus of malicious and benign model artifacts, generated (never committed).

Malicious samples are assembled opcode by opcode, so building them never runs or
imports their payloads. Each payload, if it ever ran, would create the ``canary`` file;
the tests assert that it never appears. Families follow issue 4: dangerous callables
beyond the usual denylists, container tricks, and parser-confusion tricks.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import pickle
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Sample", "benign_samples", "malicious_samples"]


@dataclass(frozen=True)
class Sample:
    """One generated artifact: its file name, family and bytes."""

    name: str
    family: str
    data: bytes


# -- a tiny pickle assembler ----------------------------------------------------------------
def u(text: str) -> bytes:
    """SHORT_BINUNICODE / BINUNICODE of ``text``."""
    b = text.encode()
    return (b"\x8c" + bytes([len(b)]) if len(b) < 256 else b"X" + struct.pack("<I", len(b))) + b


def by(data: bytes) -> bytes:
    """BINBYTES of ``data``."""
    return b"B" + struct.pack("<I", len(data)) + data


def g(module: str, name: str) -> bytes:
    """STACK_GLOBAL of ``module.name``."""
    return u(module) + u(name) + b"\x93"


def call(fn: bytes, *args: bytes) -> bytes:
    """``fn(*args)`` with MARK ... TUPLE REDUCE."""
    return fn + b"(" + b"".join(args) + b"tR"


def p4(body: bytes) -> bytes:
    """A protocol-4 program: PROTO 4, body, STOP."""
    return b"\x80\x04" + body + b"."


def p0_call(module: str, name: str, *args: str) -> bytes:
    """The classic protocol-0 ``cmodule\\nname\\n(S'arg'\\ntR.``."""
    quoted = b"".join(b"S" + repr(a).encode() + b"\n" for a in args)
    return b"c" + f"{module}\n{name}\n".encode() + b"(" + quoted + b"tR."


def _shell(canary: Path) -> str:
    return f"touch {canary}"


def _py(canary: Path) -> str:
    return f"open({str(canary)!r}, 'w').close()"


def _zip(members: list[tuple[str, bytes]], compress: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compress) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _npy_object(payload: bytes) -> bytes:
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header = header.ljust(118) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload


def _rename_local(data: bytes, old: bytes, new: bytes) -> bytes:
    """Change a member's name in its local header only (same length)."""
    i = data.index(b"PK\x03\x04" + data[4:26])  # first local header
    at = data.index(old, i)
    return data[:at] + new + data[at + len(old) :]


def malicious_samples(canary: Path) -> list[Sample]:
    """Every malicious sample; each would create ``canary`` (or worse) if loaded."""
    sh, py = _shell(canary), _py(canary)
    os_system = p4(call(g("os", "system"), u(sh)))
    s: list[Sample] = []

    def add(name: str, family: str, data: bytes) -> None:
        s.append(Sample(name, family, data))

    # dangerous callables (classic and beyond the usual denylists)
    add("os_system_p0.pkl", "callable", p0_call("os", "system", sh))
    add("posix_system_p4.pkl", "callable", p4(call(g("posix", "system"), u(sh))))
    add("builtin_exec.pkl", "callable", p4(call(g("builtins", "exec"), u(py))))
    add("builtin_eval_py2.pkl", "callable", b"\x80\x02" + p0_call("__builtin__", "eval", py)[0:])
    add("subprocess_popen.pkl", "callable", p4(call(g("subprocess", "Popen"), u(sh))))
    add(
        "pip_main.pkl",
        "callable",
        p4(call(g("pip", "main"), b"(" + u("install") + u("evil") + b"l")),
    )
    add("pydoc_pipepager.pkl", "callable", p4(call(g("pydoc", "pipepager"), u("x"), u(sh))))
    resolve = call(g("pkgutil", "resolve_name"), u("os:system"))
    add("pkgutil_resolve_name.pkl", "callable", p4(resolve + b"(" + u(sh) + b"tR"))
    add("timeit.pkl", "callable", p4(call(g("timeit", "timeit"), u(py), u("pass"), b"K\x01")))
    add("cprofile_run.pkl", "callable", p4(call(g("cProfile", "run"), u(py))))
    add("runpy.pkl", "callable", p4(call(g("runpy", "run_path"), u("/tmp/evil.py"))))
    code = call(g("marshal", "loads"), by(b"\xe3" + bytes(40)))
    fn = call(g("types", "FunctionType"), code, b"}")
    add("marshal_functiontype.pkl", "callable", p4(fn + b")R"))
    add("nested_pickle_loads.pkl", "callable", p4(call(g("pickle", "loads"), by(os_system))))
    add("underscore_pickle_loads.pkl", "callable", p4(call(g("_pickle", "loads"), by(os_system))))
    mc = call(g("operator", "methodcaller"), u("system"), u(sh))
    imp = call(g("builtins", "__import__"), u("os"))
    add("operator_methodcaller.pkl", "callable", p4(mc + b"(" + imp + b"tR"))
    add(
        "functools_partial.pkl",
        "callable",
        p4(call(g("functools", "partial"), g("os", "system"), u(sh)) + b")R"),
    )
    getattr_chain = call(g("builtins", "getattr"), imp, u("system"))
    add("getattr_import_chain.pkl", "callable", p4(getattr_chain + b"(" + u(sh) + b"tR"))
    add(
        "code_interact.pkl",
        "callable",
        p4(call(g("code", "InteractiveInterpreter")) + b"0" + call(g("bdb", "Bdb"))),
    )
    add(
        "torch_load_from_bytes.pkl",
        "callable",
        p4(call(g("torch.storage", "_load_from_bytes"), by(os_system))),
    )
    add("numpy_load.pkl", "callable", p4(call(g("numpy", "load"), u("/tmp/x.npy"), b"\x88")))
    add("ctypes_cdll.pkl", "callable", p4(call(g("ctypes", "CDLL"), u("/tmp/evil.so"))))
    add("shutil_rmtree.pkl", "file/network", p4(call(g("shutil", "rmtree"), u("/tmp/victim"))))
    add(
        "urllib_urlopen.pkl",
        "file/network",
        p4(call(g("urllib.request", "urlopen"), u("http://127.0.0.1:9/"))),
    )
    add(
        "builtins_open.pkl", "file/network", p4(call(g("builtins", "open"), u(str(canary)), u("w")))
    )
    add(
        "webbrowser_open.pkl",
        "callable",
        p4(call(g("webbrowser", "open"), u("http://127.0.0.1:9/"))),
    )
    add(
        "sklearn_function.pkl",
        "unknown",
        p4(call(g("sklearn.utils._testing", "assert_run_python_script_without_output"), u(py))),
    )
    add("main_class.pkl", "unknown", p4(call(g("__main__", "Evil"))))
    add(
        "dotted_name.pkl",
        "callable",
        p4(call(g("collections", "OrderedDict.__init__.__globals__"))),
    )
    add(
        "dotted_numpy.pkl",
        "callable",
        p4(call(g("numpy", "testing._private.utils.runstring"), u(py), b"}")),
    )
    # opcode variety: INST, OBJ, NEWOBJ, NEWOBJ_EX, BUILD, EXT, memo, protocol-0 strings
    add("inst_opcode.pkl", "opcodes", b"(S'" + sh.encode() + b"'\nios\nsystem\n.")
    add(
        "obj_opcode.pkl",
        "opcodes",
        b"\x80\x02(" + b"cos\nsystem\n" + b"X" + struct.pack("<I", len(sh)) + sh.encode() + b"o.",
    )
    add("newobj_popen.pkl", "opcodes", p4(g("subprocess", "Popen") + b"(" + u(sh) + b"t\x81"))
    add("newobj_ex.pkl", "opcodes", p4(g("subprocess", "Popen") + b"(" + u(sh) + b"t}\x92"))
    build = (
        g("collections", "OrderedDict") + b"N}" + u("__reduce__") + g("os", "system") + b"s\x86b"
    )
    add("build_monkeypatch.pkl", "opcodes", p4(build))
    add("ext_code.pkl", "opcodes", b"\x80\x02\x82\x01(" + u(sh) + b"tR.")
    memo = p4(
        u("os")
        + b"\x94"
        + u("system")
        + b"\x94"
        + b"h\x00h\x01\x93"
        + b"\x94"
        + b"h\x02("
        + u(sh)
        + b"tR"
    )
    add("memo_indirection.pkl", "opcodes", memo)
    add(
        "proto0_escaped_strings.pkl",
        "opcodes",
        b"S'o\\x73'\np0\nS'sys\\x74em'\np1\ng0\ng1\n\x93(S'" + sh.encode() + b"'\ntR.",
    )
    add(
        "stack_global_computed.pkl",
        "opcodes",
        p4(call(g("builtins", "str"), u("os")) + u("system") + b"\x93(" + u(sh) + b"tR"),
    )
    add(
        "reduce_of_result.pkl",
        "opcodes",
        p4(call(g("collections", "OrderedDict")) + b"(" + u(sh) + b"tR"),
    )
    add("unicode_opcode.pkl", "opcodes", b"Vos\nVsystem\n\x93(V" + sh.encode() + b"\ntR.")
    # container tricks
    add(
        "torch_zip_data_pkl.pt",
        "container",
        _zip([("archive/data.pkl", os_system), ("archive/version", b"3\n")]),
    )
    benign = pickle.dumps({"w": 1})
    add(
        "torch_zip_extra_member.pt",
        "container",
        _zip([("archive/data.pkl", benign), ("archive/extra.pkl", os_system)]),
    )
    add(
        "zip_deflated.pt",
        "container",
        _zip([("archive/data.pkl", os_system)], zipfile.ZIP_DEFLATED),
    )
    add("zip_in_zip.zip", "container", _zip([("inner.zip", _zip([("a/data.pkl", os_system)]))]))
    add("tar_member.tar", "container", _tar([("pickle", os_system), ("sys_info", benign)]))
    add(
        "legacy_torch_tar.tar",
        "container",
        _tar(
            [
                ("storages", pickle.dumps(0) + pickle.dumps([])),
                ("tensors", pickle.dumps(0)),
                ("pickle", os_system),
            ]
        ),
    )
    for ext, comp in (
        ("gz", gzip.compress),
        ("bz2", bz2.compress),
        ("xz", lzma.compress),
        ("zlib", zlib.compress),
    ):
        add(f"compressed.pkl.{ext}", "container", comp(os_system))
    add("lzma_alone.joblib", "container", lzma.compress(os_system, format=lzma.FORMAT_ALONE))
    add("npy_object_array.npy", "container", _npy_object(os_system))
    add("npz_object_member.npz", "container", _zip([("x.npy", _npy_object(os_system))]))
    add("npy_hidden_tail.npy", "container", _npy_tail(os_system))
    add("tar_gz.tar.gz", "container", gzip.compress(_tar([("model.pkl", os_system)])))
    # parser confusion
    add("concatenated.pkl", "confusion", pickle.dumps([1, 2]) + os_system)
    add(
        "concatenated_p0.pkl",
        "confusion",
        pickle.dumps([1, 2], protocol=0) + p0_call("os", "system", sh),
    )
    add("wrong_extension.safetensors", "confusion", os_system)
    add("wrong_extension.json", "confusion", p0_call("os", "system", sh))
    add("truncated.pkl", "confusion", os_system[:-1])
    add("unknown_opcode_after_payload.pkl", "confusion", os_system[:-1] + b"\xff")
    add("trailing_junk.pkl", "confusion", pickle.dumps({"a": 1}) + b"\x00junk")
    zip_name_mismatch = _rename_local(
        _zip([("archive/data.pkl", os_system)]), b"archive/data.pkl", b"archive/DATA.pkl"
    )
    add("zip_local_name_mismatch.pt", "confusion", zip_name_mismatch)
    add("zip_duplicate_names.pt", "confusion", _dup_zip(benign, os_system))
    add("zip_bad_crc.pt", "confusion", _bad_crc(_zip([("archive/data.pkl", os_system)])))
    add("pickle_then_zip.pt", "confusion", benign + _zip([("archive/data.pkl", os_system)]))
    add("zip_then_pickle.bin", "confusion", os_system + _zip([("a.txt", b"hello")]))
    add("frame_crossing.pkl", "confusion", _frame_crossing(sh))
    add("joblib_raw_region.joblib", "confusion", _joblib_region(p0_call("os", "system", sh)))
    for name, data in _model_formats(canary).items():
        add(name, "model format", data)
    return s


def _npy_tail(payload: bytes) -> bytes:
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }".ljust(118) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", 119) + header.encode() + bytes(8) + payload


def _dup_zip(first: bytes, second: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", first)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zf.writestr("archive/data.pkl", second)
    return buf.getvalue()


def _bad_crc(data: bytes) -> bytes:
    at = data.index(b"PK\x01\x02")  # central directory entry: CRC at +16
    crc = struct.unpack("<I", data[at + 16 : at + 20])[0] ^ 0xFFFFFFFF
    data = data[: at + 16] + struct.pack("<I", crc) + data[at + 20 :]
    return data[:14] + struct.pack("<I", crc) + data[18:]  # local header CRC too


def _frame_crossing(sh: str) -> bytes:
    body = g("os", "system") + b"(" + u(sh) + b"tR."
    return b"\x80\x04\x95" + struct.pack("<Q", 3) + body


def _joblib_region(payload: bytes) -> bytes:
    """A joblib array whose padding byte (MARK, 40) and raw bytes are a pickle that a
    plain pickle.load would run, while joblib.load reads them as data."""
    assert len(payload) > 40
    data = payload[40:]
    dtype = (
        call(g("numpy", "dtype"), u("u1"), b"\x89\x88")
        + b"(K\x03"
        + u("|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    state = (
        b"}("
        + u("subclass")
        + g("numpy", "ndarray")
        + u("shape")
        + b"K"
        + bytes([len(data)])
        + b"\x85"
        + u("order")
        + u("C")
        + u("dtype")
        + dtype
        + u("allow_mmap")
        + b"\x88"
        + u("numpy_array_alignment_bytes")
        + b"K\x10u"
    )
    wrapper = g("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81" + state + b"b"
    return b"\x80\x04" + wrapper + b"(" + payload + b"."


def _model_formats(canary: Path) -> dict[str, bytes]:
    lam = {
        "class_name": "Lambda",
        "module": "keras.layers",
        "config": {"function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAA"}}},
    }
    keras_cfg = {"class_name": "Sequential", "module": "keras", "config": {"layers": [lam]}}
    foreign = {
        "class_name": "Functional",
        "module": "keras",
        "config": {"layers": [{"class_name": "system", "module": "os", "config": {}}]},
    }
    ts_code = b"def forward(self, x):\n    import os\n    eval('1')\n    return x\n"
    onnx = _onnx_external("../../../etc/passwd")
    st_head = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    overlap = json.dumps(
        {
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
        }
    ).encode()
    gguf = _gguf(
        {"tokenizer.chat_template": "{{ cycler.__init__.__globals__.os.popen('id').read() }}"}
    )
    return {
        "keras_lambda.keras": _zip(
            [("config.json", json.dumps(keras_cfg).encode()), ("metadata.json", b"{}")]
        ),
        "keras_foreign_module.keras": _zip(
            [("config.json", json.dumps(foreign).encode()), ("metadata.json", b"{}")]
        ),
        "torchscript_code.pt": _zip(
            [
                ("m/data.pkl", pickle.dumps(1)),
                ("m/constants.pkl", pickle.dumps(())),
                ("m/code/__torch__.py", ts_code),
            ]
        ),
        "onnx_external_escape.onnx": onnx,
        "onnx_custom_domain.onnx": _onnx_custom("evil.ops"),
        "safetensors_hidden_tail.safetensors": struct.pack("<Q", len(st_head))
        + st_head
        + bytes(4)
        + b"\x80\x04hidden",
        "safetensors_overlap.safetensors": struct.pack("<Q", len(overlap)) + overlap + bytes(12),
        "gguf_jinja.gguf": gguf,
    }


def _pb(num: int, wire: int, value: bytes | int) -> bytes:
    def varint(n: int) -> bytes:
        out = b""
        while True:
            byte, n = n & 0x7F, n >> 7
            out += bytes([byte | (0x80 if n else 0)])
            if not n:
                return out

    key = varint(num << 3 | wire)
    if wire == 0:
        assert isinstance(value, int)
        return key + varint(value)
    assert isinstance(value, bytes)
    return key + varint(len(value)) + value


def _onnx_external(location: str) -> bytes:
    entry = _pb(1, 2, b"location") + _pb(2, 2, location.encode())
    tensor = _pb(1, 0, 1) + _pb(2, 0, 1) + _pb(8, 2, b"w") + _pb(13, 2, entry) + _pb(14, 0, 1)
    graph = _pb(1, 2, _pb(4, 2, b"Identity")) + _pb(5, 2, tensor)
    return _pb(1, 0, 8) + _pb(7, 2, graph) + _pb(8, 2, _pb(2, 0, 17))


def _onnx_custom(domain: str) -> bytes:
    node = _pb(4, 2, b"Pwn") + _pb(7, 2, domain.encode())
    return _pb(1, 0, 8) + _pb(7, 2, _pb(1, 2, node)) + _pb(8, 2, _pb(2, 0, 17))


def _gguf(kv: dict[str, str]) -> bytes:
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv))
    for key, value in kv.items():
        k, v = key.encode(), value.encode()
        out += struct.pack("<Q", len(k)) + k + struct.pack("<I", 8) + struct.pack("<Q", len(v)) + v
    return out


def benign_samples(folder: Path) -> dict[str, Callable[[Path], None]]:
    """Writers of benign artifacts (torch, scikit-learn, joblib, NumPy, safetensors)."""
    import warnings

    import joblib
    import numpy as np
    import torch
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    warnings.filterwarnings("ignore")
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 4)), np.arange(40) % 2
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.Adam(net.parameters())
    net(torch.randn(2, 4)).sum().backward()
    opt.step()
    ckpt = {
        "model": net.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": 3,
        "dtype": torch.float16,
    }
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y)
    knn = KNeighborsClassifier(algorithm="kd_tree").fit(x, y)

    def st(p: Path) -> None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(p))

    writers: dict[str, Callable[[Path], None]] = {
        "state_dict.pt": lambda p: torch.save(net.state_dict(), p),
        "checkpoint.pt": lambda p: torch.save(ckpt, p),
        "legacy_checkpoint.pt": lambda p: torch.save(ckpt, p, _use_new_zipfile_serialization=False),
        "torchscript.pt": lambda p: torch.jit.save(torch.jit.script(net), str(p)),
        "pipeline.pkl": lambda p: p.write_bytes(pickle.dumps(pipe)),
        "forest_p2.pkl": lambda p: p.write_bytes(pickle.dumps(forest, protocol=2)),
        "knn.pkl": lambda p: p.write_bytes(pickle.dumps(knn)),
        "pipeline.joblib": lambda p: joblib.dump(pipe, p),
        "forest.joblib.gz": lambda p: joblib.dump(forest, p, compress=("gzip", 3)),
        "forest.joblib.xz": lambda p: joblib.dump(forest, p, compress=("xz", 3)),
        "knn.joblib.z": lambda p: joblib.dump(knn, p, compress=3),
        "objects.joblib": lambda p: joblib.dump({"o": np.array([1, "a", None], dtype=object)}, p),
        "array.npy": lambda p: np.save(p, rng.random((3, 4))),
        "arrays.npz": lambda p: np.savez(p, a=np.arange(3), b=np.eye(2)),
        "arrays_compressed.npz": lambda p: np.savez_compressed(p, a=np.arange(300)),
    }
    try:
        import safetensors  # noqa: F401  (optional: the dev extra installs it)

        writers["weights.safetensors"] = st
    except ImportError:
        pass
    return writers


_CACHE: dict[str, Path] = {}


def benign_files() -> dict[str, Path]:
    """The benign artifacts, written once per test process into a temporary folder."""
    import atexit
    import shutil
    import tempfile

    if not _CACHE:
        folder = Path(tempfile.mkdtemp(prefix="bastion-benign-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        for name, write in benign_samples(folder).items():
            write(folder / name)
            _CACHE[name] = folder / name
    return dict(_CACHE)
