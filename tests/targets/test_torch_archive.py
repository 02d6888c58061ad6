"""torch.export archives are vetted before torch sees them.

Each test tampers with a genuine archive the way an attacker would and checks that
Bastion refuses it *without* running the payload (the payloads would create a marker
file).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from bastion.errors import TargetError
from bastion.targets.torch_archive import (
    _safe_guard,
    _safe_sympy,
    check_export_archive,
    load_export_program,
)
from bastion.targets.torch_target import TorchTarget

from .conftest import CLASSES3, IMAGE_SPEC


def rewrite(
    src: Path,
    dst: Path,
    edit: Callable[[str, bytes], bytes | None],
    extra: dict[str, bytes] | None = None,
) -> Path:
    """Copy a zip, passing every member through ``edit`` (None drops it)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        root = zin.namelist()[0].split("/", 1)[0]
        for info in zin.infolist():
            rel = info.filename.split("/", 1)[1]
            data = edit(rel, zin.read(info))
            if data is not None:
                zout.writestr(info.filename, data)
        for rel, data in (extra or {}).items():
            zout.writestr(f"{root}/{rel}", data)
    return dst


def edit_program(fn: Callable[[dict[str, Any]], None]) -> Callable[[str, bytes], bytes]:
    def edit(rel: str, data: bytes) -> bytes:
        if rel.startswith("models/") and rel.endswith(".json"):
            doc = json.loads(data)
            fn(doc)
            return json.dumps(doc).encode()
        return data

    return edit


def payload(marker: Path) -> str:
    return f"__import__('pathlib').Path({str(marker)!r}).touch()"


def test_a_genuine_archive_loads_with_blank_sample_inputs(export_file):
    path, _ = export_file
    safe = check_export_archive(path.read_bytes(), where=str(path))
    with zipfile.ZipFile(io.BytesIO(safe)) as zf:
        samples = [n for n in zf.namelist() if "/data/sample_inputs/" in n]
        assert samples and all(zf.read(n) == b"" for n in samples)
    program = load_export_program(path.read_bytes(), where=str(path))
    assert program.module()(torch.rand(3, 1, 4, 4)).shape == (3, 3)


def test_code_in_a_shape_expression_is_refused(export_file, tmp_path):
    path, _ = export_file
    marker = tmp_path / "pwned"

    def poison(doc: dict[str, Any]) -> None:
        values = doc["graph_module"]["graph"]["tensor_values"]
        first = next(iter(values.values()))
        first["sizes"][0] = {"as_expr": {"expr_str": payload(marker) + " or s0", "hint": None}}

    evil = rewrite(path, tmp_path / "evil.pt2", edit_program(poison))
    with pytest.raises(TargetError, match="shape expression"):
        TorchTarget.from_export(evil, input_spec=IMAGE_SPEC, classes=CLASSES3)
    assert not marker.exists()


def test_code_in_guards_is_refused(export_file, tmp_path):
    path, _ = export_file
    marker = tmp_path / "pwned"

    def poison(doc: dict[str, Any]) -> None:
        doc["guards_code"] = [payload(marker) + " is None"]

    evil = rewrite(path, tmp_path / "evil.pt2", edit_program(poison))
    with pytest.raises(TargetError, match="has the guard"):
        TorchTarget.from_export(evil, input_spec=IMAGE_SPEC, classes=CLASSES3)
    assert not marker.exists()


def test_a_graph_calling_arbitrary_python_is_refused(export_file, tmp_path):
    path, _ = export_file

    def poison(doc: dict[str, Any]) -> None:
        doc["graph_module"]["graph"]["nodes"][0]["target"] = "torch.serialization.os.system"

    evil = rewrite(path, tmp_path / "evil.pt2", edit_program(poison))
    with pytest.raises(TargetError, match="'torch.serialization.os.system', which is not a torch"):
        TorchTarget.from_export(evil, input_spec=IMAGE_SPEC, classes=CLASSES3)


def test_pickled_weights_are_refused(export_file, tmp_path):
    path, _ = export_file

    def edit(rel: str, data: bytes) -> bytes:
        if rel.endswith("_weights_config.json"):
            doc = json.loads(data)
            for entry in doc["config"].values():
                entry["use_pickle"] = True
            return json.dumps(doc).encode()
        return data

    evil = rewrite(path, tmp_path / "evil.pt2", edit)
    with pytest.raises(TargetError, match="as a pickle"):
        TorchTarget.from_export(evil, input_spec=IMAGE_SPEC, classes=CLASSES3)


def test_opaque_objects_aoti_code_and_legacy_layouts_are_refused(export_file, tmp_path):
    path, _ = export_file

    def opaque(rel: str, data: bytes) -> bytes:
        if rel.endswith("_constants_config.json"):
            return json.dumps(
                {"config": {"obj": {"path_name": "opaque_obj_0", "use_pickle": False}}}
            ).encode()
        return data

    cases = {
        "serialised Python object": rewrite(path, tmp_path / "a.pt2", opaque),
        "AOTInductor": rewrite(
            path, tmp_path / "b.pt2", lambda r, d: d, {"data/aotinductor/model/m.so": b"\x7fELF"}
        ),
        "legacy": rewrite(
            path, tmp_path / "c.pt2", lambda r, d: None if r == "archive_version" else d
        ),
    }
    for message, evil in cases.items():
        with pytest.raises(TargetError, match=message):
            check_export_archive(evil.read_bytes(), where=str(evil))


def test_guard_and_expression_grammars():
    assert _safe_guard("((4*L['x'].size()[0]) % (L['x'].size()[0] // 2)) == 0")
    assert _safe_guard("L['x'].size()[0] <= 1024 and math.isnan(1.0) == False")
    assert not _safe_guard("L['x'].__class__ == 1")
    assert not _safe_guard("open('/etc/passwd') == 1")
    assert not _safe_guard("torch.load('x') == 1")
    assert _safe_sympy("Mul(Integer(2), Symbol('s65', positive=True, integer=True))")
    assert _safe_sympy("2*s65 + 1")
    assert not _safe_sympy("Add('__import__(1)')")  # a string argument would be sympified
    assert not _safe_sympy("Symbol('__class__')")
    assert not _safe_sympy("s0.__class__")
    assert not _safe_sympy("eval('1')")
