"""Loading TorchScript and ``torch.export`` archives without running what they carry.

A model file is attacker-controlled input. This module reads each archive once into
memory, inspects it, and only then hands the *same bytes* to torch.

TorchScript (``torch.jit.save``)
    :func:`torch.jit.load` goes straight to libtorch's C++ importer
    (``torch._C.import_ir_module_from_buffer``). Its unpickler for ``data.pkl`` and
    ``constants.pkl`` is not Python's :mod:`pickle`: it rebuilds tensors, primitive
    values, containers and TorchScript classes compiled from the archive's ``code/``
    folder, and cannot import or call arbitrary Python. The model's ``forward`` then
    runs in the TorchScript interpreter, which executes torch operators only. This is
    not a sandbox (torch's own documentation tells users to load only trusted
    archives, and the C++ parser is large), so the files should also pass Bastion's
    artifact scanner, but opening one does not hand control to Python code.

``torch.export`` (``.pt2``)
    :func:`torch.export.load` is **not** safe on untrusted files, as torch's source
    (``torch/export/pt2_archive/_package.py`` and ``torch/_export/serde/serialize.py``)
    shows: it ``torch.load``\\ s weights flagged ``use_pickle`` with
    ``weights_only=False``, :func:`pickle.loads` "opaque" constants, falls back to
    ``weights_only=False`` when sample inputs fail the safe loader, loads AOTInductor
    shared libraries, resolves graph targets by ``getattr`` on the ``torch``,
    ``operator`` and ``math`` modules (so a node can call ``torch.serialization.os.system``),
    feeds symbolic-shape strings to :func:`sympy.sympify` (which uses ``eval``), and
    ``exec``\\ s the archive's ``guards_code`` when the module is built. Before torch
    sees the bytes, :func:`check_export_archive` therefore refuses every archive with
    pickled payloads, custom or opaque objects, AOTInductor code or the legacy layout;
    requires every graph target to be a registered torch operator; accepts only plain
    arithmetic in shape expressions and guards; and blanks the sample inputs so nothing
    in the archive is unpickled at all.

Examples
--------
>>> import io, zipfile
>>> from bastion.targets.torch_archive import archive_names, is_torchscript_archive
>>> buf = io.BytesIO()
>>> with zipfile.ZipFile(buf, "w") as z:
...     z.writestr("model/code/__torch__.py", "")
...     z.writestr("model/data.pkl", b"")
...     z.writestr("model/constants.pkl", b"")
>>> names = archive_names(buf.getvalue())
>>> sorted(names), is_torchscript_archive(names)
(['code/__torch__.py', 'constants.pkl', 'data.pkl'], True)
"""

from __future__ import annotations

import ast
import io
import json
import logging
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import torch

from bastion.errors import TargetError

__all__ = [
    "archive_names",
    "check_export_archive",
    "is_export_archive",
    "is_torchscript_archive",
    "load_export_program",
    "load_torchscript_module",
]

log = logging.getLogger(__name__)

_SAMPLE_INPUTS = "data/sample_inputs/"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")

# Sympy constructors that appear in ``srepr`` of shape expressions and in range keys.
_SYMPY_CALLS = frozenset(
    {
        "Symbol", "Dummy", "Integer", "Float", "Rational", "Add", "Mul", "Pow", "Mod",
        "Max", "Min", "Abs", "floor", "ceiling", "Eq", "Ne", "Lt", "Le", "Gt", "Ge",
        "Equality", "Unequality", "StrictLessThan", "StrictGreaterThan", "LessThan",
        "GreaterThan", "And", "Or", "Not", "Piecewise", "ITE", "sqrt",
        "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt",
        "FloorToInt", "CeilDiv", "IntTrueDiv", "FloatTrueDiv", "LShift", "RShift",
        "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt",
        "RoundDecimal", "ToFloat", "FloatPow", "PowByNatural", "Identity",
    }
)  # fmt: skip
_SYMPY_CONSTANTS = frozenset({"oo", "zoo", "nan", "true", "false", "int_oo", "pi", "E"})
# Methods a guard may call on an input (``L['x'].size()[0]``) and helpers it may use.
_GUARD_METHODS = frozenset({"size", "stride", "storage_offset", "dim", "numel"})
_GUARD_TORCH = frozenset({"sym_max", "sym_min", "sym_float", "sym_int", "sym_not", "sym_ite"})
_GUARD_CALLS = frozenset(
    {"IsNonOverlappingAndDenseIndicator", "cast_symbool_to_symint_guardless"} | _SYMPY_CALLS
)
_ARITH = (
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.USub, ast.UAdd,
    ast.Not, ast.And, ast.Or, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE,
    ast.BitAnd, ast.BitOr, ast.LShift, ast.RShift,
)  # fmt: skip


def archive_names(data: bytes, *, where: str = "The file") -> set[str]:
    """Record names of a torch zip archive, without its single top-level folder.

    Raises
    ------
    TargetError
        If ``data`` is not a zip archive.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            raw = zf.namelist()
    except (zipfile.BadZipFile, ValueError) as err:
        raise TargetError(
            f"{where} is not a valid zip archive ({err}); re-save the model."
        ) from err
    return {name.split("/", 1)[1] for name in raw if "/" in name and not name.endswith("/")}


def is_torchscript_archive(names: set[str]) -> bool:
    """True for the layout :func:`torch.jit.save` writes (``code/`` + ``constants.pkl``)."""
    has_code = any(n.startswith("code/") for n in names)
    return "data.pkl" in names and ("constants.pkl" in names or has_code)


def is_export_archive(names: set[str]) -> bool:
    """True for the layout :func:`torch.export.save` writes (``archive_format`` + models)."""
    has_models = any(n.startswith("models/") and n.endswith(".json") for n in names)
    return "archive_format" in names or ("archive_version" in names and has_models)


# -- TorchScript --------------------------------------------------------------------
def load_torchscript_module(data: bytes, *, where: str, device: torch.device) -> torch.nn.Module:
    """Load a TorchScript archive from bytes (libtorch's C++ importer, no Python pickle).

    Raises
    ------
    TargetError
        If the bytes are not a TorchScript archive or libtorch cannot import them.
    """
    names = archive_names(data, where=where) if data[:2] == b"PK" else set()
    if not is_torchscript_archive(names):
        raise TargetError(
            f"{where} is not a TorchScript archive (no code/ and constants.pkl records); "
            "save the model with torch.jit.save or load it with the matching adapter."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(  # type: ignore[no-untyped-call]
                io.BytesIO(data), map_location=device
            )
    except Exception as err:  # libtorch raises RuntimeError and friends
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TargetError(
            f"{where} could not be read as a TorchScript archive ({reason}); re-save it with "
            "torch.jit.save."
        ) from err
    if not isinstance(module, torch.nn.Module):
        raise TargetError(
            f"{where} holds a TorchScript {type(module).__name__}, not a module; save the "
            "scripted nn.Module with torch.jit.save."
        )
    return module


# -- torch.export --------------------------------------------------------------------
def _refuse(where: str, what: str) -> TargetError:
    return TargetError(
        f"{where} is a torch.export archive that {what}, which torch would execute or "
        "unpickle while loading; Bastion refuses it — re-export the model with "
        "torch.export.save from plain tensors and registered operators."
    )


def _walk(obj: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield str(k), v
            yield from _walk(v, str(k))
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v, key)


def _operation_ok(node: ast.AST, ok: Callable[[ast.AST], bool]) -> bool:
    """An arithmetic, boolean or comparison node whose operands all pass ``ok``."""
    if isinstance(node, ast.BinOp):
        return isinstance(node.op, _ARITH) and ok(node.left) and ok(node.right)
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, _ARITH) and ok(node.operand)
    if isinstance(node, ast.BoolOp):
        return isinstance(node.op, _ARITH) and all(ok(v) for v in node.values)
    if isinstance(node, ast.Compare):
        return (
            all(isinstance(o, _ARITH) for o in node.ops)
            and ok(node.left)
            and all(ok(c) for c in node.comparators)
        )
    return False


def _safe_sympy(expr: str) -> bool:
    """True when ``expr`` is a plain sympy shape expression that ``sympify`` may parse."""
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        return False

    def ok(node: ast.AST) -> bool:
        if isinstance(node, ast.Expression):
            return ok(node.body)
        if isinstance(node, ast.Constant):
            return isinstance(node.value, int | float | bool)
        if isinstance(node, ast.Name):
            return node.id in _SYMPY_CONSTANTS or bool(re.fullmatch(r"[a-z]+\d*", node.id))
        if isinstance(node, ast.BinOp | ast.UnaryOp | ast.BoolOp | ast.Compare):
            return _operation_ok(node, ok)
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in _SYMPY_CALLS):
                return False
            for i, arg in enumerate(node.args):
                # A string is safe only as a symbol's name or a float's digits; any other
                # string argument would be sympified, i.e. eval'ed.
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    if node.func.id in {"Symbol", "Dummy"} and i == 0:
                        if not _IDENT.match(arg.value) or "__" in arg.value:
                            return False
                    elif node.func.id == "Float" and i == 0:
                        if not _NUMBER.match(arg.value):
                            return False
                    else:
                        return False
                elif not ok(arg):
                    return False
            return all(
                kw.arg is not None
                and _IDENT.match(kw.arg) is not None
                and isinstance(kw.value, ast.Constant)
                and isinstance(kw.value.value, bool | int)
                for kw in node.keywords
            )
        return False

    return ok(tree)


def _safe_guard(expr: str) -> bool:
    """True when ``expr`` only compares input sizes with plain arithmetic."""
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        return False

    def ok(node: ast.AST) -> bool:
        if isinstance(node, ast.Expression):
            return ok(node.body)
        if isinstance(node, ast.Constant):
            return isinstance(node.value, int | float | bool | str) or node.value is None
        if isinstance(node, ast.Name):
            return node.id in {"L", "inf"} | _SYMPY_CONSTANTS
        if isinstance(node, ast.Subscript):
            return ok(node.value) and isinstance(node.slice, ast.Constant)
        if isinstance(node, ast.Attribute):
            # math.inf, math.nan and friends as values
            return (
                isinstance(node.value, ast.Name)
                and node.value.id == "math"
                and node.attr in {"inf", "nan", "pi", "e"}
            )
        if isinstance(node, ast.BinOp | ast.UnaryOp | ast.BoolOp | ast.Compare):
            return _operation_ok(node, ok)
        if isinstance(node, ast.Call):
            if node.keywords:
                return False
            func = node.func
            if isinstance(func, ast.Name):
                allowed = func.id in _GUARD_CALLS
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                allowed = (func.value.id == "math" and not func.attr.startswith("_")) or (
                    func.value.id == "torch" and func.attr in _GUARD_TORCH
                )
            elif isinstance(func, ast.Attribute):
                allowed = func.attr in _GUARD_METHODS and ok(func.value)
            else:
                allowed = False
            return allowed and all(ok(a) for a in node.args)
        return False

    return ok(tree)


def _resolves_to_operator(target: str) -> bool:
    """True when a graph target names a registered torch operator or a symbolic op."""
    import operator as _operator

    if target.startswith("_operator."):
        name = target.split(".", 1)[1]
        return name in {
            "getitem", "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg",
            "eq", "ne", "lt", "le", "gt", "ge", "and_", "or_", "not_", "pos", "abs",
        } and hasattr(_operator, name)  # fmt: skip
    if target.startswith("math."):
        return target.split(".", 1)[1] in {"ceil", "floor", "trunc", "sqrt"}
    if target in {f"torch.{n}" for n in _GUARD_TORCH} | {"torch.sym_sum", "torch.sym_sqrt"}:
        return True
    if not target.startswith("torch.ops."):
        return False
    parts = target.split(".")
    if len(parts) not in (4, 5) or not all(_IDENT.match(p) and "__" not in p for p in parts):
        return False
    if parts[2] in {"load_library", "import_module"}:
        return False
    obj: Any = torch
    try:
        for name in parts[1:]:
            obj = getattr(obj, name)
    except (AttributeError, RuntimeError):
        return False
    return isinstance(obj, torch._ops.OpOverload | torch._ops.HigherOrderOperator)


def check_export_archive(data: bytes, *, where: str) -> bytes:
    """Vet a ``torch.export`` archive and return bytes that are safe to hand to torch.

    The returned archive is the input with its sample inputs blanked (torch would
    unpickle them); everything else is unchanged.

    Raises
    ------
    TargetError
        Naming the first unsafe part found, or when the archive is malformed.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError) as err:
        raise TargetError(
            f"{where} is not a valid torch.export archive ({err}); re-save it with "
            "torch.export.save."
        ) from err
    roots = {i.filename.split("/", 1)[0] for i in infos}
    if len(roots) != 1:
        raise TargetError(f"{where} is not a torch.export archive (no single root folder).")
    root = roots.pop()
    names = {i.filename.split("/", 1)[1] for i in infos if "/" in i.filename}
    if "archive_version" not in names:
        raise _refuse(where, "uses the legacy pre-2.6 layout (pickled state dict)")
    if any(n.startswith("data/aotinductor/") for n in names):
        raise _refuse(where, "contains AOTInductor compiled code (shared libraries)")

    def read_json(name: str) -> Any:
        try:
            return json.loads(zf.read(f"{root}/{name}"))
        except (KeyError, ValueError, UnicodeDecodeError) as err:
            raise TargetError(
                f"{where} is a damaged torch.export archive ({name} is missing or not JSON); "
                "re-save it with torch.export.save."
            ) from err

    models = sorted(n[len("models/") : -len(".json")] for n in names if n.startswith("models/"))
    if not models:
        raise TargetError(f"{where} holds no exported program (models/*.json).")
    for model in models:
        for legacy in (f"data/weights/{model}.pt", f"data/constants/{model}.pt"):
            if legacy in names:
                raise _refuse(where, f"stores {legacy} as a pickle")
        for kind in ("weights", "constants"):
            config = read_json(f"data/{kind}/{model}_{kind}_config.json")
            for fqn, payload in dict(config.get("config", {})).items():
                path = str(payload.get("path_name", ""))
                if payload.get("use_pickle", False):
                    raise _refuse(where, f"stores the {kind[:-1]} {fqn!r} as a pickle")
                if path.startswith(("custom_obj_", "opaque_obj_")):
                    raise _refuse(where, f"stores {fqn!r} as a serialised Python object")
        program = read_json(f"models/{model}.json")
        for key, value in _walk(program):
            if key in {"target", "as_operator"} and isinstance(value, str):
                if not _resolves_to_operator(value):
                    raise _refuse(where, f"calls {value!r}, which is not a torch operator")
            elif key == "expr_str" and isinstance(value, str) and not _safe_sympy(value):
                raise _refuse(where, f"has the shape expression {value[:80]!r}")
        for key in dict(program.get("range_constraints", {})):
            if not _safe_sympy(str(key)):
                raise _refuse(where, f"has the shape expression {str(key)[:80]!r}")
        for guard in program.get("guards_code", []) or []:
            if not (isinstance(guard, str) and _safe_guard(guard)):
                raise _refuse(where, f"has the guard {str(guard)[:80]!r}")

    # Rewrite with blank sample inputs: torch.load would otherwise unpickle them, and
    # fall back to weights_only=False when the safe loader refuses.
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in infos:
            rel = info.filename.split("/", 1)[1] if "/" in info.filename else ""
            payload = b"" if rel.startswith(_SAMPLE_INPUTS) else zf.read(info)
            dst.writestr(info.filename, payload)
    return out.getvalue()


def load_export_program(data: bytes, *, where: str) -> torch.export.ExportedProgram:
    """Vet a ``.pt2`` archive with :func:`check_export_archive`, then load it.

    Raises
    ------
    TargetError
        If the archive is unsafe, damaged, or written by an incompatible torch.
    """
    safe = check_export_archive(data, where=where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.load(io.BytesIO(safe))
    except TargetError:
        raise
    except Exception as err:  # torch raises a mix of RuntimeError, KeyError, AssertionError
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TargetError(
            f"{where} could not be loaded as a torch.export program ({reason[:200]}); "
            "re-save it with torch.export.save from this torch version."
        ) from err
    return program
