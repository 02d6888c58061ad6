"""Pickle streams: concatenated pickles, joblib's inline arrays, legacy ``torch.save``.

A stream is read pickle after pickle, the way a loader that calls ``pickle.load`` in
a loop would. Three loaders read bytes *between* pickles or opcodes, and the scanner
follows them exactly instead of mistaking data for opcodes (or opcodes for data):

* **joblib** writes each NumPy array as a ``NumpyArrayWrapper`` whose BUILD is followed
  by the raw array bytes (after an alignment padding) or, for object arrays, by a
  nested pickle. The size comes from the wrapper's symbolic shape and dtype. Because a
  plain ``pickle.load`` of the same file would read those bytes as opcodes, they are
  also tried as a pickle: a dangerous global found that way is reported.
* **legacy torch.save** (before the zip format): five pickles (magic number, protocol,
  system info, the object, storage keys) followed by each storage's raw bytes.
* Anything after the last STOP that is not another pickle is an anomaly, and is tried
  as a pickle for dangerous globals.

Examples
--------
>>> import pickle
>>> from bastion.artifacts.context import ScanContext, Window
>>> from bastion.artifacts.formats.pickles import scan_pickle
>>> ctx = ScanContext(file="two.pkl")
>>> data = pickle.dumps([1, 2]) + b"cbuiltins\\neval\\n(S'1'\\ntR."
>>> runs = scan_pickle(ctx, Window(data, 0, len(data)), (), depth=0)
>>> [(i.global_name, i.location.offset) for i in ctx.report.issues]
[('builtins:eval', 20)]
"""

from __future__ import annotations

import math
import struct
from dataclasses import replace
from typing import Any

from bastion.artifacts.allow_data import STORAGE_ELEMENT_SIZE
from bastion.artifacts.allowlist import Allowlist
from bastion.artifacts.context import ScanContext, Window
from bastion.artifacts.issues import Category
from bastion.artifacts.pickle_values import Global, Obj, PersistentRef
from bastion.artifacts.pickle_vm import PickleError, PickleMachine, PickleRun

__all__ = ["TORCH_LEGACY_MAGIC", "scan_one", "scan_pickle", "scan_unknown", "trial"]

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_WRAPPERS = {
    "joblib.numpy_pickle:NumpyArrayWrapper",
    "sklearn.externals.joblib.numpy_pickle:NumpyArrayWrapper",
}
_DANGEROUS = (Category.CODE_EXECUTION, Category.FILE_OR_NETWORK)
_TRIAL_OPCODES = 100_000


def _machine(
    ctx: ScanContext, w: Window, at: int, member: tuple[str, ...], depth: int, al: Allowlist
) -> PickleMachine:
    def on_nested(m: PickleMachine, data: bytes, offset: int, loader: str) -> None:
        inner = (*member, f"<argument of {loader} @ byte {at + offset}>")
        if depth + 1 > ctx.limits.max_depth:
            ctx.issue(Category.UNPROVABLE, "nesting deeper than max_depth", inner)
            return
        from bastion.artifacts.scanner import scan_window

        scan_window(ctx, Window(data, 0, len(data)), inner, depth + 1)

    return PickleMachine(
        w.buf,
        allowlist=al,
        limits=ctx.limits,
        start=w.start + at,
        end=w.end,
        on_build=_joblib_hook(ctx),
        on_nested=on_nested,
    )


def scan_one(
    ctx: ScanContext,
    w: Window,
    at: int,
    member: tuple[str, ...],
    depth: int,
    allowlist: Allowlist | None = None,
) -> PickleRun:
    """Scan the single pickle that starts at ``at``; its issues go to the report."""
    run = _machine(ctx, w, at, member, depth, allowlist or ctx.allowlist).run()
    ctx.absorb(run, member, shift=at)
    return run


def scan_pickle(
    ctx: ScanContext,
    w: Window,
    member: tuple[str, ...],
    *,
    depth: int,
    allowlist: Allowlist | None = None,
    python: bool = True,
) -> list[PickleRun]:
    """Scan every pickle in ``w``; return their runs (for persistent ids and values).

    ``python=False`` marks a stream that Python's unpickler never reads (TorchScript's
    own pickles), so it does not make the file :attr:`~.FileReport.pickle_based`.
    """
    if python:
        ctx.report.pickle_based = True
    al = allowlist or ctx.allowlist
    runs: list[PickleRun] = []
    pos = 0
    while pos < w.size:
        if len(runs) >= ctx.limits.max_pickles_per_stream:
            ctx.issue(
                Category.UNPROVABLE,
                f"more than {ctx.limits.max_pickles_per_stream} concatenated pickles (limit "
                "max_pickles_per_stream); the rest could not be proven safe",
                member,
                offset=pos,
            )
            return runs
        run = _machine(ctx, w, pos, member, depth, al).run()
        ctx.absorb(run, member, shift=pos)
        runs.append(run)
        if not run.stopped:
            return runs
        pos += run.end
        if len(runs) == 1 and run.value == TORCH_LEGACY_MAGIC:
            ctx.format("torch-legacy")
            _legacy_torch(ctx, w, pos, member, depth, al, runs)
            return runs
        if pos < w.size and not _pickle_start(w, pos) and not _complete(ctx, w, pos):
            rest = w.size - pos
            ctx.issue(
                Category.CONTAINER_ANOMALY,
                f"{rest} byte(s) follow the pickle's STOP and do not start another pickle; "
                "a loader that reads on would interpret them",
                member,
                offset=pos,
                opcode="STOP",
            )
            trial(ctx, w, pos, member, "the bytes after STOP, read as a pickle")
            return runs
        if pos < w.size:
            ctx.note(f"{' > '.join(member) or 'the file'} holds concatenated pickles")
    return runs


def _complete(ctx: ScanContext, w: Window, pos: int) -> bool:
    """True when the bytes at ``pos`` read as one whole pickle (protocol 0/1 included)."""
    run = trial(ctx, w, pos, (), "", report=False)
    return run.stopped and run.error is None and run.opcodes >= 2


def _pickle_start(w: Window, pos: int) -> bool:
    head = w.head(2, pos)
    return len(head) == 2 and head[0] == 0x80 and head[1] <= 5


def trial(
    ctx: ScanContext,
    w: Window,
    at: int,
    member: tuple[str, ...],
    what: str,
    *,
    report: bool = True,
) -> PickleRun:
    """Read ``w`` from ``at`` as a pickle, tolerantly, and report only the globals a
    loader would import and that are dangerous or called."""
    limits = replace(ctx.limits, max_opcodes=min(ctx.limits.max_opcodes, _TRIAL_OPCODES))
    m = PickleMachine(
        w.buf,
        allowlist=ctx.allowlist,
        limits=limits,
        start=w.start + at,
        end=w.end,
        tolerant=True,
    )
    run = m.run()
    for p in run.issues if report else ():
        if p.global_name and (p.category in _DANGEROUS or p.global_name in m.called):
            ctx.issue(
                p.category,
                f"{what}: {p.message}",
                member,
                offset=None if p.offset is None else p.offset + at,
                opcode=p.opcode,
                global_name=p.global_name,
            )
    return run


def scan_unknown(ctx: ScanContext, w: Window, member: tuple[str, ...], depth: int) -> None:
    """Data of no known format: a complete protocol 0/1 pickle is scanned as one;
    otherwise only the dangerous globals a loader would import before failing count."""
    if _complete(ctx, w, 0):
        ctx.format("pickle")
        scan_pickle(ctx, w, member, depth=depth)
        return
    trial(ctx, w, 0, member, "read as a pickle")
    if not member:
        ctx.note("not a format Bastion recognises, and not a pickle; no code found")


# -- joblib -------------------------------------------------------------------------------
def _dtype_info(dtype: Any) -> tuple[int, bool]:
    """(itemsize, has_object) of a symbolic ``numpy.dtype(...)`` call with its state."""
    if not isinstance(dtype, Obj) or str(dtype.callee) != "numpy:dtype":
        raise PickleError("the joblib array's dtype is not a numpy.dtype")
    args, state = dtype.args, dtype.state
    if not isinstance(args, tuple) or not args or not isinstance(args[0], str):
        raise PickleError("the joblib array's dtype has no type string")
    typestr = args[0].lstrip("<>|=")
    flags = state[7] if isinstance(state, tuple) and len(state) > 7 else 0
    elsize = state[5] if isinstance(state, tuple) and len(state) > 5 else -1
    if not isinstance(flags, int) or not isinstance(elsize, int):
        raise PickleError("the joblib array's dtype state is malformed")
    digits = "".join(c for c in typestr if c.isdigit())
    itemsize = elsize if elsize > 0 else int(digits) if digits else -1
    if itemsize <= 0:
        raise PickleError(f"the size of the joblib dtype {args[0]!r} cannot be determined")
    return itemsize, typestr.startswith("O") or bool(flags & 1)


def _joblib_hook(ctx: ScanContext) -> Any:
    def on_build(m: PickleMachine, obj: Obj) -> bool:
        if obj.type_name not in _WRAPPERS or not (obj.cls and obj.cls.allowed):
            return False
        state = obj.state
        if not isinstance(state, dict):
            raise PickleError("a joblib NumpyArrayWrapper has no state dict")
        shape = state.get("shape")
        if not isinstance(shape, tuple) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise PickleError("a joblib NumpyArrayWrapper has no valid shape")
        itemsize, has_object = _dtype_info(state.get("dtype"))
        if m.frame_end is not None:
            if m.pos < m.frame_end:  # joblib reads the file, the unpickler its frame buffer
                raise PickleError(
                    "a joblib array starts inside a pickle FRAME, where joblib and the "
                    "unpickler read different bytes",
                    category=Category.CONTAINER_ANOMALY,
                )
            m.frame_end = None
        m.stack.pop()
        if has_object:  # a nested pickle follows, read by a fresh (plain) unpickler
            inner = PickleMachine(
                m.buf, allowlist=m.allowlist, limits=m.limits, start=m.pos, end=m.end
            )
            run = inner.run()
            m.absorb(run, m.pos - m.start)
            if not run.stopped:
                raise PickleError("the nested pickle of a joblib object array is incomplete")
            m.pos += run.end
        else:
            after_build = m.pos
            if state.get("numpy_array_alignment_bytes") is not None:
                m.skip(m.read(1)[0], "joblib alignment padding")
            m.skip(math.prod(shape) * itemsize, "joblib array data")
            _plain_reading(ctx, m, after_build)
        m.stack.append(Obj(obj.callee, (), obj.offset, "joblib array", cls=obj.cls))
        return True

    return on_build


def _plain_reading(ctx: ScanContext, m: PickleMachine, region: int) -> None:
    """What ``pickle.load`` (not ``joblib.load``) would do with the array bytes."""
    limits = replace(m.limits, max_opcodes=min(m.limits.max_opcodes, _TRIAL_OPCODES))
    t = PickleMachine(
        m.buf, allowlist=m.allowlist, limits=limits, start=region, end=m.end, tolerant=True
    )
    run = t.run()
    for p in run.issues:
        if p.global_name and (p.category in _DANGEROUS or p.global_name in t.called):
            m.result.issues.append(
                replace(
                    p,
                    message="joblib array bytes that a plain pickle.load would read as "
                    f"opcodes: {p.message}",
                    offset=None if p.offset is None else p.offset + region - m.start,
                )
            )


# -- legacy torch.save ------------------------------------------------------------------------
def _legacy_torch(
    ctx: ScanContext,
    w: Window,
    pos: int,
    member: tuple[str, ...],
    depth: int,
    al: Allowlist,
    runs: list[PickleRun],
) -> None:
    for _ in range(4):  # protocol version, sys info, the object, the storage keys
        if pos >= w.size:
            ctx.issue(Category.UNPROVABLE, "a legacy torch file ends early", member, offset=pos)
            return
        run = _machine(ctx, w, pos, member, depth, al).run()
        ctx.absorb(run, member, shift=pos)
        runs.append(run)
        if not run.stopped:
            return
        pos += run.end
    sizes = _storage_sizes(runs[3].persistent)
    keys = runs[4].value
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        ctx.issue(
            Category.UNPROVABLE, "legacy torch storage keys are malformed", member, offset=pos
        )
        return
    for key in keys:
        if key not in sizes:
            ctx.issue(
                Category.UNPROVABLE,
                f"legacy torch storage {key!r} has no declaration",
                member,
                offset=pos,
            )
            return
        head = w.head(8, pos)
        if len(head) < 8:
            ctx.issue(
                Category.UNPROVABLE, "a legacy torch storage is truncated", member, offset=pos
            )
            return
        numel = struct.unpack("<q", head)[0]
        pos += 8 + numel * sizes[key]
        if numel < 0 or pos > w.size:
            ctx.issue(
                Category.UNPROVABLE,
                f"legacy torch storage {key!r} is truncated",
                member,
                offset=pos,
            )
            return
    ctx.note("legacy torch storages were hashed, not parsed")
    if pos < w.size:
        ctx.issue(
            Category.CONTAINER_ANOMALY,
            f"{w.size - pos} byte(s) follow the last legacy torch storage",
            member,
            offset=pos,
        )
        trial(ctx, w, pos, member, "the bytes after the storages, read as a pickle")


def _storage_sizes(refs: list[PersistentRef]) -> dict[str, int]:
    """Element size of each storage key declared by ``('storage', type, key, ...)`` ids."""
    sizes: dict[str, int] = {}
    for ref in refs:
        pid = ref.pid
        if isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage":
            kind, key = pid[1], pid[2]
            if isinstance(kind, Global) and isinstance(key, str):
                sizes[key] = STORAGE_ELEMENT_SIZE.get(kind.name, 1)
    return sizes
