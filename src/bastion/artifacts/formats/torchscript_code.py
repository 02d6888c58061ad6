"""The code files of a TorchScript archive, parsed (never run) and checked.

TorchScript recompiles ``code/**/*.py`` with its own compiler when the archive is
loaded. That language has no ``eval``, ``exec``, ``open`` or ``import``; a code file that
uses them was not produced by ``torch.jit.save`` and would run as Python if anything
imported it. Inside TorchScript, a few operators still reach outside the model: file
access (``torch.save``, ``torch.load``, ``torch.from_file``, ``aten::save``) and custom
operator namespaces (``torch.ops.<ns>``) whose native code must be loaded separately.

Examples
--------
>>> from bastion.artifacts.context import ScanContext, Window
>>> ctx = ScanContext(file="m.pt")
>>> code = b"def forward(self, x):\\n    torch.save(x, '/tmp/x')\\n    return x\\n"
>>> scan_code(ctx, Window(code, 0, len(code)), ("m/code/__torch__.py",))
>>> [i.category.value for i in ctx.report.issues]
['file_or_network']
"""

from __future__ import annotations

import ast

from bastion.artifacts.context import ScanContext, Window
from bastion.artifacts.issues import Category

__all__ = ["scan_code"]

_PYTHON_ONLY = {
    "eval",
    "exec",
    "compile",
    "open",
    "__import__",
    "globals",
    "locals",
    "vars",
    "input",
    "breakpoint",
    "delattr",
    "memoryview",
}
_FILE_OPS = {
    "torch.save",
    "torch.load",
    "torch.from_file",
    "torch.ops.aten.save",
    "torch.ops.aten.from_file",
    "torch.ops.aten.load",
}
_BUILTIN_OP_NAMESPACES = {
    "aten",
    "prim",
    "quantized",
    "_quantized",
    "profiler",
    "_caffe2",
    "torchvision",
    "image",
    "fbgemm",
    "mkldnn",
    "_test",
    "onednn",
    "_c10d_functional",
    "c10d",
    "_dtensor",
    "torchaudio",
    "cuda",
    "_nested_tensor",
    "mkl",
    "sparse",
    "higher_order",
    "inductor",
}
_PYTHON_MODULES = {
    "os",
    "sys",
    "subprocess",
    "builtins",
    "socket",
    "shutil",
    "pickle",
    "importlib",
    "ctypes",
    "runpy",
    "marshal",
    "pty",
    "urllib",
    "requests",
}


def _dotted(node: ast.AST) -> str:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def scan_code(ctx: ScanContext, w: Window, member: tuple[str, ...]) -> None:
    """Parse one TorchScript code file and report what reaches outside the model."""
    if w.size > ctx.limits.max_header_bytes:
        ctx.issue(
            Category.UNPROVABLE,
            "a TorchScript code file is larger than max_header_bytes; could not be proven safe",
            member,
        )
        return
    try:
        tree = ast.parse(w.head(w.size).decode("utf-8"), filename=member[-1])
    except (SyntaxError, UnicodeDecodeError, ValueError, RecursionError, MemoryError) as err:
        ctx.issue(
            Category.UNPROVABLE,
            f"a TorchScript code file does not parse ({err}); could not be proven safe",
            member,
        )
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            ctx.issue(
                Category.CODE_EXECUTION,
                "an import statement in TorchScript code (not "
                "valid TorchScript: the file was not written by torch.jit.save)",
                member,
                offset=None,
                opcode=f"line {node.lineno}",
            )
            continue
        if not isinstance(node, ast.Call | ast.Name):
            continue
        name = _dotted(node.func) if isinstance(node, ast.Call) else _dotted(node)
        line = f"line {getattr(node, 'lineno', 0)}"
        root = name.split(".", 1)[0]
        if isinstance(node, ast.Call) and name in _PYTHON_ONLY:
            ctx.issue(
                Category.CODE_EXECUTION,
                f"TorchScript code calls {name}(), which only "
                "Python has: the file was not written by torch.jit.save",
                member,
                opcode=line,
                global_name=name,
            )
        elif isinstance(node, ast.Call) and name in _FILE_OPS:
            ctx.issue(
                Category.FILE_OR_NETWORK,
                f"TorchScript code calls {name}, which reads or writes files when the model runs",
                member,
                opcode=line,
                global_name=name,
            )
        elif isinstance(node, ast.Name) and root in _PYTHON_MODULES:
            ctx.issue(
                Category.CODE_EXECUTION,
                f"TorchScript code refers to the Python module "
                f"{root}, which TorchScript cannot use",
                member,
                opcode=line,
                global_name=root,
            )
        elif name.startswith("torch.ops.") and name.count(".") >= 3:
            ns = name.split(".")[2]
            if ns not in _BUILTIN_OP_NAMESPACES:
                ctx.issue(
                    Category.UNKNOWN_GLOBAL,
                    f"TorchScript code calls the custom operator "
                    f"namespace torch.ops.{ns}, whose native code is loaded from "
                    "outside the archive",
                    member,
                    opcode=line,
                    global_name=f"torch.ops.{ns}",
                )
