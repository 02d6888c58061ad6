"""A symbolic pickle interpreter (protocols 0-5) that never imports or calls anything.

It walks every opcode the way :mod:`pickle`'s unpickler does -- same stack, mark stack
and memo, same Python 2 name mapping for protocols below 3, MEMOIZE indexed by the memo's
size, POP that pops a mark on an empty stack -- but each value is symbolic
(:mod:`~bastion.artifacts.pickle_values`). So it knows what every callable *really*
is: through the memo, through strings built by protocol-0 opcodes (``S'o\\x73'``),
through STACK_GLOBAL operands, through nested calls. Every global is checked against
the :class:`~bastion.artifacts.allowlist.Allowlist` at the moment the loader would
import it; every call site must call a global; BUILD on a global (monkey-patching) is
refused; anything the interpreter cannot resolve is an issue, never a pass.

Format hooks, given by the caller, model loaders that read bytes *between* opcodes:
joblib's ``NumpyArrayWrapper`` (raw array bytes or a nested pickle follow its BUILD)
and persistent ids (PyTorch storages).

Examples
--------
>>> import pickle
>>> from bastion.artifacts.allowlist import DEFAULT_ALLOWLIST
>>> from bastion.artifacts.pickle_vm import PickleMachine
>>> data = b"cposix\\nsystem\\n(S'echo hi'\\ntR."
>>> run = PickleMachine(data, allowlist=DEFAULT_ALLOWLIST).run()
>>> run.stopped, [(i.global_name, i.opcode) for i in run.issues]
(True, [('posix:system', 'GLOBAL')])
>>> PickleMachine(pickle.dumps({"w": [1.0, 2.0]}), allowlist=DEFAULT_ALLOWLIST).run().issues
[]
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bastion.artifacts.allowlist import Allowlist, Decision, resolve
from bastion.artifacts.issues import Category
from bastion.artifacts.limits import Limits
from bastion.artifacts.pickle_ops import HANDLERS, OPCODES, PickleError
from bastion.artifacts.pickle_values import (
    Blob,
    Global,
    Obj,
    PersistentRef,
    Unknown,
)

__all__ = ["Buffer", "PendingIssue", "PickleError", "PickleMachine", "PickleRun"]

Buffer = bytes | bytearray | Any  # bytes-like with find(); mmap.mmap in practice

_CALLABLE_LOADERS = {"loads", "load", "_loads", "_load"}


@dataclass(frozen=True)
class PendingIssue:
    """An issue found in one stream, before the scanner adds the file and member."""

    category: Category
    message: str
    offset: int | None
    opcode: str | None
    global_name: str | None = None


@dataclass
class PickleRun:
    """What one pickle stream did, symbolically.

    ``end`` is the offset just after STOP (or where reading stopped), relative to the
    window's start; ``value`` is STOP's value; ``error`` says why reading stopped early.
    """

    end: int
    stopped: bool
    value: Any = None
    error: str | None = None
    issues: list[PendingIssue] = field(default_factory=list)
    globals_seen: Counter[str] = field(default_factory=Counter)
    user_allowed: set[str] = field(default_factory=set)
    opcodes: int = 0
    persistent: list[PersistentRef] = field(default_factory=list)


class PickleMachine:
    """Interpret one pickle stream inside ``buf[start:end]``.

    Parameters
    ----------
    buf : bytes-like
        Bytes or an ``mmap``; only ``buf[start:end]`` is read.
    allowlist : Allowlist
    limits : Limits
    start, end : int
    tolerant : bool
        For trial readings of data that may not be a pickle at all: a stack underflow
        pushes an unknown value instead of stopping.
    on_build : callable or None
        ``on_build(machine, obj) -> bool`` after a BUILD on an object; a format hook
        may move :attr:`pos` (joblib arrays) and return True to replace the object.
    on_nested : callable or None
        ``on_nested(machine, data, offset, loader)`` for bytes passed to a
        ``pickle.loads``-like callable, to scan the embedded payload too.
    """

    def __init__(
        self,
        buf: Buffer,
        *,
        allowlist: Allowlist,
        limits: Limits | None = None,
        start: int = 0,
        end: int | None = None,
        tolerant: bool = False,
        on_build: Callable[[PickleMachine, Obj], bool] | None = None,
        on_nested: Callable[[PickleMachine, bytes, int, str], None] | None = None,
    ) -> None:
        self.buf = buf
        self.allowlist = allowlist
        self.limits = limits or Limits()
        self.start = start
        self.end = len(buf) if end is None else end
        self.pos = start
        self.tolerant = tolerant
        self.on_build = on_build
        self.on_nested = on_nested
        self.proto = 0
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.frame_end: int | None = None
        self.op_start = start
        self.op_name = ""
        self.result = PickleRun(end=0, stopped=False)
        self.called: set[str] = set()
        self._decisions: dict[tuple[str, str], Decision] = {}
        self._seen: dict[tuple[Category, str], int] = {}

    # -- reporting -----------------------------------------------------------------------
    def issue(self, category: Category, message: str, global_name: str | None = None) -> None:
        """Record an issue at the current opcode (one per category and global)."""
        key = (category, global_name or message)
        if key in self._seen:
            return
        self._seen[key] = 1
        self.result.issues.append(
            PendingIssue(category, message, self.op_start - self.start, self.op_name, global_name)
        )

    def absorb(self, run: PickleRun, shift: int) -> None:
        """Take over the issues and globals of a nested run that started ``shift`` bytes
        after this window's start."""
        for issue in run.issues:
            offset = None if issue.offset is None else issue.offset + shift
            key = (issue.category, issue.global_name or issue.message)
            if key not in self._seen:
                self._seen[key] = 1
                self.result.issues.append(
                    PendingIssue(
                        issue.category, issue.message, offset, issue.opcode, issue.global_name
                    )
                )
        self.result.globals_seen.update(run.globals_seen)
        self.result.user_allowed |= run.user_allowed
        self.result.persistent.extend(run.persistent)

    # -- reading ---------------------------------------------------------------------------
    def read(self, n: int) -> bytes:
        """The next ``n`` bytes; raises :class:`PickleError` when the stream is short."""
        if n < 0 or self.pos + n > self.end:
            raise PickleError(f"the stream is truncated inside {self.op_name}")
        data = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        """Move past ``n`` bytes without reading them (tensor or array data)."""
        if n < 0 or self.pos + n > self.end:
            raise PickleError(f"the stream is truncated inside {what}")
        self.pos += n

    def readline(self) -> bytes:
        """Bytes up to and excluding the next newline."""
        limit = min(self.end, self.pos + self.limits.max_string_bytes + 1)
        nl = self.buf.find(b"\n", self.pos, limit)
        if nl < 0:
            raise PickleError(f"no end of line for {self.op_name} (truncated or too long)")
        data = bytes(self.buf[self.pos : nl])
        self.pos = nl + 1
        return data

    def _sized(self, fmt: str, size: int) -> int:
        return int(struct.unpack(fmt, self.read(size))[0])

    def _blob(self, n: int, kind: str) -> Any:
        if n > self.limits.max_string_bytes:
            self.skip(n, self.op_name)
            return Blob(kind, n)
        data = self.read(n)
        if kind == "str":
            return data.decode("utf-8", "surrogatepass")
        return bytearray(data) if kind == "bytearray" else data

    # -- stack -----------------------------------------------------------------------------
    def pop(self) -> Any:
        """Pop one value (a stack underflow stops the stream)."""
        if self.stack:
            return self.stack.pop()
        if self.tolerant:
            return Unknown("stack underflow")
        raise PickleError(f"stack underflow at {self.op_name}")

    def top(self) -> Any:
        """The value on top of the stack."""
        if self.stack:
            return self.stack[-1]
        if self.tolerant:
            self.stack.append(Unknown("stack underflow"))
            return self.stack[-1]
        raise PickleError(f"stack underflow at {self.op_name}")

    def pop_mark(self) -> list[Any]:
        """The values pushed since the last MARK, restoring the stack below it."""
        if not self.metastack:
            if self.tolerant:
                items, self.stack = self.stack, []
                return items
            raise PickleError(f"{self.op_name} without a MARK")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    # -- globals and calls -------------------------------------------------------------------
    def find_class(self, module: Any, name: Any) -> Global:
        """Check a global exactly where the loader would import it."""
        if not isinstance(module, str) or not isinstance(name, str):
            self.issue(
                Category.CODE_EXECUTION,
                f"{self.op_name} names a global with a computed value ({_describe(module)}, "
                f"{_describe(name)}), so what gets imported cannot be known",
            )
            return Global(str(module)[:80], str(name)[:80], self.op_start, allowed=False)
        module, name = resolve(module, name, self.proto)
        key = (module, name)
        decision = self._decisions.get(key)
        if decision is None:
            decision = self._decisions[key] = self.allowlist.check(module, name)
        qual = f"{module}:{name}"
        self.result.globals_seen[qual] += 1
        if decision.user:
            self.result.user_allowed.add(qual)
        if not decision.allowed:
            category = decision.category or Category.UNKNOWN_GLOBAL
            self.issue(category, f"{qual} is imported on load; {decision.reason}", qual)
        return Global(module, name, self.op_start - self.start, decision.allowed)

    def call(self, callee: Any, args: Any, how: str, cls: Any = None) -> Any:
        """The symbolic result of calling ``callee(*args)``."""
        if not isinstance(callee, Global):
            self.issue(
                Category.CODE_EXECUTION
                if isinstance(callee, Obj | PersistentRef)
                else Category.UNPROVABLE,
                f"{how} calls {_describe(callee)}, not an imported global: a gadget chain "
                "whose target cannot be proven safe",
            )
            return Unknown(f"result of {how} on a computed value")
        if not callee.allowed:
            self.called.add(str(callee))
        if isinstance(args, tuple) and args and self.on_nested is not None:
            self._nested(callee, args)
        obj_cls = cls if isinstance(cls, Global) else None
        if obj_cls is None and how == "REDUCE" and callee.module == "copyreg" and args:
            first = args[0] if isinstance(args, tuple) else None
            obj_cls = first if isinstance(first, Global) else None
        if str(callee) == "_codecs:encode" and _latin1_args(args):
            return str(args[0]).encode("latin-1", "surrogateescape")
        if str(callee) == "builtins:bytes" and args == ():  # how protocols 0-2 write b""
            return b""
        return Obj(callee, args, self.op_start - self.start, how, cls=obj_cls or callee)

    def _nested(self, callee: Global, args: tuple[Any, ...]) -> None:
        payload = args[0]
        if isinstance(payload, bytes | bytearray) and callee.name in _CALLABLE_LOADERS:
            assert self.on_nested is not None
            self.on_nested(self, bytes(payload), self.op_start - self.start, str(callee))

    def build(self, inst: Any, state: Any) -> None:
        """BUILD: set state on an object; on a global it is monkey-patching."""
        if isinstance(inst, Global):
            self.issue(
                Category.CODE_EXECUTION,
                f"BUILD sets attributes on the global {inst} itself (monkey-patching an "
                "imported class or function)",
                str(inst),
            )
            return
        if isinstance(inst, Obj):
            inst.state, inst.built = state, True
            if self.on_build is not None and self.on_build(self, inst):
                return

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> PickleRun:
        """Interpret until STOP, an error or a limit; never raises for bad input."""
        res = self.result
        try:
            self._loop()
        except PickleError as err:
            res.error = str(err)
            if not self.tolerant:
                self.issue(err.category, f"could not be proven safe: {err}")
        except (ValueError, TypeError, OverflowError, UnicodeError, struct.error) as err:
            res.error = f"{self.op_name}: {err}"
            if not self.tolerant:
                self.issue(Category.UNPROVABLE, f"could not be proven safe: {res.error}")
        except RecursionError:
            res.error = "values nested too deeply"
            if not self.tolerant:
                self.issue(Category.UNPROVABLE, "could not be proven safe: nesting too deep")
        res.end = self.pos - self.start
        return res

    def _loop(self) -> None:
        limits = self.limits
        budget = limits.max_opcodes
        buf, handlers = self.buf, HANDLERS
        while True:
            if self.pos >= self.end:
                raise PickleError("the stream ended before STOP (truncated)")
            self.op_start = self.pos
            code = buf[self.pos]
            self.pos += 1
            handler = handlers.get(code)
            if handler is None:
                self.op_name = f"0x{code:02x}"
                raise PickleError(f"unknown opcode 0x{code:02x}")
            self.op_name = OPCODES[code]
            self.result.opcodes += 1
            if self.result.opcodes > budget:
                raise PickleError(f"more than {budget} opcodes (limit max_opcodes)")
            if handler(self):
                self.result.stopped = True
                return
            if self.frame_end is not None and self.pos >= self.frame_end:
                if self.pos > self.frame_end:
                    self.issue(
                        Category.CONTAINER_ANOMALY,
                        "an opcode crosses the end of its FRAME; Python's and C's unpicklers "
                        "disagree on such streams",
                    )
                self.frame_end = None
            if len(self.stack) > limits.max_stack or len(self.metastack) > limits.max_stack:
                raise PickleError(f"stack deeper than {limits.max_stack} (limit max_stack)")


def _latin1_args(args: Any) -> bool:
    """``(text, "latin1")``: how protocol 2 writes bytes through ``_codecs.encode``."""
    return (
        isinstance(args, tuple)
        and len(args) == 2
        and isinstance(args[0], str)
        and args[1] in ("latin1", "latin-1")
    )


def _describe(value: Any) -> str:
    if isinstance(value, Global):
        return f"the global {value}"
    if isinstance(value, Obj):
        return f"the result of calling {value.callee}"
    if isinstance(value, PersistentRef):
        return "a persistent id"
    if isinstance(value, Unknown):
        return f"an unknown value ({value.reason})"
    return type(value).__name__
