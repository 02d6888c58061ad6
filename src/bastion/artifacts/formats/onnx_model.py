"""ONNX models: custom operator domains and external-data paths.

An ONNX file holds no Python, but two things in it reach outside the model:

* nodes in an operator **domain** that neither ONNX nor ONNX Runtime implements (and
  that no function inside the model defines) need a custom-operator library: native
  code loaded from elsewhere;
* tensors with **external data** name a file to read; a ``location`` that is absolute,
  climbs out with ``..`` or resolves (through links) outside the model's folder lets a
  model read any file the loading process can, e.g. into its outputs.

The protobuf is read with the ``onnx`` package when it is installed and the model is a
file on disk; otherwise with a minimal wire-format reader that walks only the fields
needed (graphs, nodes, attributes' subgraphs, functions, training info, tensors) and
skips tensor bytes.

Examples
--------
>>> from bastion.artifacts.formats.onnx_model import escapes_folder
>>> escapes_folder("weights.bin"), escapes_folder("../../etc/passwd"), escapes_folder("/etc/x")
(False, True, True)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from bastion.artifacts.context import ScanContext, Window
from bastion.artifacts.formats.protobuf import WireError, fields
from bastion.artifacts.issues import Category

__all__ = ["OnnxFacts", "escapes_folder", "scan_onnx"]

log = logging.getLogger(__name__)
STANDARD_DOMAINS = frozenset(
    {
        "",
        "ai.onnx",
        "ai.onnx.ml",
        "ai.onnx.training",
        "ai.onnx.preview.training",
        "com.microsoft",
        "com.microsoft.nchwc",
        "com.microsoft.experimental",
        "com.ms.internal.nhwc",
    }
)
_MAX_GRAPH_DEPTH = 32


@dataclass
class OnnxFacts:
    """What the model's protobuf says that matters for safety."""

    nodes: set[tuple[str, str]] = field(default_factory=set)  # (domain, op_type)
    functions: set[tuple[str, str]] = field(default_factory=set)
    locations: list[tuple[str, str]] = field(default_factory=list)  # (tensor, location)


def escapes_folder(location: str) -> bool:
    """True when an external-data location is absolute or climbs out with ``..``."""
    posix, win = PurePosixPath(location), PureWindowsPath(location)
    if posix.is_absolute() or win.is_absolute() or win.drive:
        return True
    depth = 0
    for part in win.parts:
        depth += -1 if part == ".." else 0 if part in (".", "") else 1
        if depth < 0:
            return True
    return False


# -- minimal wire-format walk ------------------------------------------------------------------
def _text(w: Window, span: tuple[int, int]) -> str:
    return w.head(span[1] - span[0], span[0]).decode("utf-8", "replace")


def _tensor(w: Window, span: tuple[int, int], facts: OnnxFacts) -> None:
    name, location, external = "", None, False
    for num, _, value in fields(w, *span):
        if num == 8 and isinstance(value, tuple):
            name = _text(w, value)
        elif num == 14 and value == 1:
            external = True
        elif num == 13 and isinstance(value, tuple):
            entry = {k: _text(w, v) for k, _, v in fields(w, *value) if isinstance(v, tuple)}
            if entry.get(1) == "location":
                location = entry.get(2)
    if external or location is not None:
        facts.locations.append((name, location or ""))


def _graph(w: Window, span: tuple[int, int], facts: OnnxFacts, depth: int) -> None:
    if depth > _MAX_GRAPH_DEPTH:
        raise WireError("subgraphs nested too deeply")
    for num, _, value in fields(w, *span):
        if not isinstance(value, tuple):
            continue
        if num == 1:
            _node(w, value, facts, depth)
        elif num == 5:
            _tensor(w, value, facts)
        elif num == 15:
            for sub, _, v in fields(w, *value):
                if sub in (1, 2) and isinstance(v, tuple):
                    _tensor(w, v, facts)


def _node(w: Window, span: tuple[int, int], facts: OnnxFacts, depth: int) -> None:
    domain, op = "", ""
    for num, _, value in fields(w, *span):
        if num == 7 and isinstance(value, tuple):
            domain = _text(w, value)
        elif num == 4 and isinstance(value, tuple):
            op = _text(w, value)
        elif num == 5 and isinstance(value, tuple):
            for sub, _, v in fields(w, *value):
                if not isinstance(v, tuple):
                    continue
                if sub in (6, 11):
                    _graph(w, v, facts, depth + 1)
                elif sub in (5, 10):
                    _tensor(w, v, facts)
    facts.nodes.add((domain, op))


def _walk_wire(w: Window) -> OnnxFacts:
    facts = OnnxFacts()
    for num, _, value in fields(w, 0, w.size):
        if not isinstance(value, tuple):
            continue
        if num == 7:
            _graph(w, value, facts, 0)
        elif num == 20:
            for sub, _, v in fields(w, *value):
                if sub in (1, 2) and isinstance(v, tuple):
                    _graph(w, v, facts, 1)
        elif num == 25:
            name = domain = ""
            for sub, _, v in fields(w, *value):
                if isinstance(v, tuple) and sub == 1:
                    name = _text(w, v)
                elif isinstance(v, tuple) and sub == 10:
                    domain = _text(w, v)
                elif isinstance(v, tuple) and sub == 7:
                    _node(w, v, facts, 1)
            facts.functions.add((domain, name))
    return facts


# -- onnx package walk --------------------------------------------------------------------
def _walk_onnx(path: Path) -> OnnxFacts:
    import onnx

    model = onnx.load_model(str(path), load_external_data=False)
    facts = OnnxFacts()

    def tensor(t: Any) -> None:
        if t.data_location == 1 or len(t.external_data):
            where = {e.key: e.value for e in t.external_data}.get("location", "")
            facts.locations.append((t.name, where))

    def graph(g: Any) -> None:
        for t in g.initializer:
            tensor(t)
        for s in g.sparse_initializer:
            tensor(s.values)
            tensor(s.indices)
        for n in g.node:
            node(n)

    def node(n: Any) -> None:
        facts.nodes.add((n.domain, n.op_type))
        for a in n.attribute:
            if a.HasField("g"):
                graph(a.g)
            for sub in a.graphs:
                graph(sub)
            if a.HasField("t"):
                tensor(a.t)
            for t in a.tensors:
                tensor(t)

    graph(model.graph)
    for info in model.training_info:
        graph(info.initialization)
        graph(info.algorithm)
    for fn in model.functions:
        facts.functions.add((fn.domain, fn.name))
        for n in fn.node:
            node(n)
    return facts


def scan_onnx(ctx: ScanContext, w: Window, member: tuple[str, ...]) -> None:
    """Report custom operator domains and escaping external data (module notes)."""
    facts: OnnxFacts | None = None
    if not member and ctx.path is not None:
        try:
            facts = _walk_onnx(ctx.path)
            ctx.note("ONNX protobuf parsed with the onnx package")
        except ImportError:
            facts = None
        except Exception as err:  # onnx raises its own DecodeError types; fall back
            log.info("onnx could not parse %s (%s); using the wire reader", ctx.path, err)
    if facts is None:
        try:
            facts = _walk_wire(w)
        except WireError as err:
            ctx.issue(
                Category.UNPROVABLE,
                f"the ONNX protobuf cannot be read ({err}); could not be proven safe",
                member,
            )
            return
    for domain, op in sorted(facts.nodes):
        if domain not in STANDARD_DOMAINS and (domain, op) not in facts.functions:
            ctx.issue(
                Category.UNKNOWN_GLOBAL,
                f"operator {op!r} of the custom domain {domain!r} "
                "needs a custom-operator library (native code from outside the model)",
                member,
                global_name=f"{domain}:{op}",
            )
    folder = ctx.path.parent if ctx.path is not None and not member else None
    for tensor, location in facts.locations:
        if not location or escapes_folder(location):
            ctx.issue(
                Category.FILE_OR_NETWORK,
                f"tensor {tensor!r} reads external data from "
                f"{location!r}, outside the model's folder",
                member,
                global_name=location or "<no location>",
            )
            continue
        if folder is not None:
            target = folder / location
            try:
                inside = target.resolve().is_relative_to(folder.resolve())
            except OSError:
                inside = False
            if not inside:
                ctx.issue(
                    Category.FILE_OR_NETWORK,
                    f"tensor {tensor!r} reads {location!r}, "
                    "which resolves outside the model's folder",
                    member,
                    global_name=location,
                )
            elif not target.is_file():
                ctx.issue(
                    Category.CONTAINER_ANOMALY,
                    f"tensor {tensor!r} names the missing external data file {location!r}",
                    member,
                )
