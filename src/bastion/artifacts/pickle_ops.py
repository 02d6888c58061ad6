"""The opcodes of pickle protocols 0-5 and what each does to the symbolic machine.

One handler per opcode, mirroring :mod:`pickle`'s pure-Python unpickler (``load_*``
methods) on symbolic values; a handler returns True on STOP. The table of opcode bytes
is :data:`OPCODES`; :data:`HANDLERS` maps each byte to its handler.

Examples
--------
>>> OPCODES[0x93], len(OPCODES), set(OPCODES) == set(HANDLERS)
('STACK_GLOBAL', 68, True)
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bastion.artifacts.issues import Category
from bastion.artifacts.pickle_values import (
    Global,
    PersistentRef,
    SymFrozenSet,
    SymSet,
    Unknown,
)

if TYPE_CHECKING:
    from bastion.artifacts.pickle_vm import PickleMachine

__all__ = ["HANDLERS", "OPCODES", "PickleError"]

_TABLE = """
28 MARK 2e STOP 30 POP 31 POP_MARK 32 DUP 46 FLOAT 49 INT 4a BININT 4b BININT1 4c LONG
4d BININT2 4e NONE 50 PERSID 51 BINPERSID 52 REDUCE 53 STRING 54 BINSTRING
55 SHORT_BINSTRING 56 UNICODE 58 BINUNICODE 61 APPEND 62 BUILD 63 GLOBAL 64 DICT
7d EMPTY_DICT 65 APPENDS 67 GET 68 BINGET 69 INST 6a LONG_BINGET 6c LIST 5d EMPTY_LIST
6f OBJ 70 PUT 71 BINPUT 72 LONG_BINPUT 73 SETITEM 74 TUPLE 29 EMPTY_TUPLE 75 SETITEMS
47 BINFLOAT 42 BINBYTES 43 SHORT_BINBYTES 80 PROTO 81 NEWOBJ 82 EXT1 83 EXT2 84 EXT4
85 TUPLE1 86 TUPLE2 87 TUPLE3 88 NEWTRUE 89 NEWFALSE 8a LONG1 8b LONG4 8c SHORT_BINUNICODE
8d BINUNICODE8 8e BINBYTES8 8f EMPTY_SET 90 ADDITEMS 91 FROZENSET 92 NEWOBJ_EX
93 STACK_GLOBAL 94 MEMOIZE 95 FRAME 96 BYTEARRAY8 97 NEXT_BUFFER 98 READONLY_BUFFER
"""

#: Every opcode of protocols 0-5: byte value -> name (as in :mod:`pickletools`).
OPCODES: dict[int, str] = {
    int(code, 16): name for code, name in zip(*[iter(_TABLE.split())] * 2, strict=True)
}


class PickleError(Exception):
    """The stream cannot be read further (the loader would stop here too)."""

    def __init__(self, message: str, *, category: Category = Category.UNPROVABLE) -> None:
        super().__init__(message)
        self.category = category


def _string(m: PickleMachine) -> bool:
    data = m.readline()
    if len(data) < 2 or data[0] != data[-1] or data[0] not in b"\"'":
        raise PickleError("the STRING opcode argument must be quoted")
    raw = codecs.escape_decode(data[1:-1])[0]
    m.stack.append(raw.decode("latin-1"))
    return False


def _int(m: PickleMachine) -> bool:
    data = m.readline()
    m.stack.append(False if data == b"00" else True if data == b"01" else int(data, 0))
    return False


def _long(m: PickleMachine) -> bool:
    data = m.readline()
    m.stack.append(int(data[:-1] if data.endswith(b"L") else data, 0))
    return False


def _put(m: PickleMachine, index: int) -> bool:
    if index < 0:
        raise PickleError("negative memo index")
    if index not in m.memo and len(m.memo) >= m.limits.max_memo:
        raise PickleError(f"more than {m.limits.max_memo} memo entries (limit max_memo)")
    m.memo[index] = m.top()
    return False


def _get(m: PickleMachine, index: int) -> bool:
    if index not in m.memo:
        if not m.tolerant:
            raise PickleError(f"memo key {index} was never stored")
        m.stack.append(Unknown("missing memo entry"))
        return False
    m.stack.append(m.memo[index])
    return False


def _global(m: PickleMachine) -> bool:
    module = m.readline().decode("utf-8")
    name = m.readline().decode("utf-8")
    m.stack.append(m.find_class(module, name))
    return False


def _stack_global(m: PickleMachine) -> bool:
    name = m.pop()
    module = m.pop()
    m.stack.append(m.find_class(module, name))
    return False


def _inst(m: PickleMachine) -> bool:
    cls = _global_of(m)
    args = tuple(m.pop_mark())  # before touching m.stack: pop_mark replaces it
    m.stack.append(m.call(cls, args, "INST"))
    return False


def _global_of(m: PickleMachine) -> Global:
    module = m.readline().decode("utf-8")
    name = m.readline().decode("utf-8")
    return m.find_class(module, name)


def _obj(m: PickleMachine) -> bool:
    items = m.pop_mark()
    if not items:
        raise PickleError("OBJ without a class")
    m.stack.append(m.call(items[0], tuple(items[1:]), "OBJ"))
    return False


def _newobj(m: PickleMachine) -> bool:
    args = m.pop()
    cls = m.pop()
    m.stack.append(m.call(cls, args, "NEWOBJ", cls=cls))
    return False


def _newobj_ex(m: PickleMachine) -> bool:
    kwargs = m.pop()
    args = m.pop()
    cls = m.pop()
    m.stack.append(m.call(cls, (args, kwargs), "NEWOBJ_EX", cls=cls))
    return False


def _reduce(m: PickleMachine) -> bool:
    args = m.pop()
    func = m.pop()
    m.stack.append(m.call(func, args, "REDUCE"))
    return False


def _build(m: PickleMachine) -> bool:
    state = m.pop()
    m.build(m.top(), state)
    return False


def _ext(m: PickleMachine, code: int) -> bool:
    m.issue(
        Category.UNPROVABLE,
        f"extension code {code} names a global through copyreg's registry, which is empty "
        "in a standard interpreter; what it resolves to depends on the loading process",
    )
    m.stack.append(Unknown(f"extension code {code}"))
    return False


def _proto(m: PickleMachine) -> bool:
    proto = m.read(1)[0]
    if proto > 5:
        raise PickleError(f"unsupported pickle protocol {proto}")
    m.proto = proto
    return False


def _frame(m: PickleMachine) -> bool:
    size = m._sized("<Q", 8)
    if m.frame_end is not None and m.pos < m.frame_end:
        m.issue(Category.CONTAINER_ANOMALY, "a FRAME starts before the previous one ended")
    if m.pos + size > m.end:
        raise PickleError("a FRAME is longer than the rest of the stream (truncated)")
    m.frame_end = m.pos + size if size else None
    return False


def _append(m: PickleMachine) -> bool:
    value = m.pop()
    _extend(m, m.top(), [value])
    return False


def _appends(m: PickleMachine) -> bool:
    items = m.pop_mark()
    _extend(m, m.top(), items)
    return False


def _extend(m: PickleMachine, target: Any, items: list[Any]) -> None:
    if isinstance(target, list):
        target.extend(items)
    elif isinstance(target, Global):
        m.issue(Category.UNPROVABLE, f"{m.op_name} calls a method of the global {target}")


def _setitems(m: PickleMachine, items: list[Any]) -> None:
    target = m.top()
    if len(items) % 2:
        raise PickleError(f"{m.op_name} got an odd number of items")
    if isinstance(target, dict):
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]
    elif isinstance(target, Global):
        m.issue(Category.UNPROVABLE, f"{m.op_name} calls a method of the global {target}")


def _setitems_op(m: PickleMachine) -> bool:
    _setitems(m, m.pop_mark())
    return False


def _pop_mark(m: PickleMachine) -> bool:
    m.pop_mark()
    return False


def _dict(m: PickleMachine) -> bool:
    items = m.pop_mark()
    if len(items) % 2:
        raise PickleError("DICT got an odd number of items")
    m.stack.append({items[i]: items[i + 1] for i in range(0, len(items), 2)})
    return False


def _additems(m: PickleMachine) -> bool:
    items = m.pop_mark()
    target = m.top()
    if isinstance(target, list):
        target.extend(items)
    elif isinstance(target, Global):
        m.issue(Category.UNPROVABLE, f"ADDITEMS calls a method of the global {target}")
    return False


def _persid(m: PickleMachine, pid: Any) -> bool:
    ref = PersistentRef(pid, m.op_start - m.start)
    m.result.persistent.append(ref)
    m.stack.append(ref)
    return False


def _stop(m: PickleMachine) -> bool:
    m.result.value = m.pop()
    return True


def _pop(m: PickleMachine) -> bool:
    if m.stack:
        m.stack.pop()
    else:
        m.pop_mark()
    return False


def _long_n(m: PickleMachine, size: int) -> bool:
    n = m._sized("<B", 1) if size == 1 else m._sized("<i", 4)
    if n < 0:
        raise PickleError("negative LONG4 byte count")
    m.stack.append(int.from_bytes(m.read(n), "little", signed=True) if n else 0)
    return False


def _push(value_of: Callable[[PickleMachine], Any]) -> Callable[[PickleMachine], bool]:
    def handler(m: PickleMachine) -> bool:
        value = value_of(m)  # first: it may swap m.stack (pop_mark)
        m.stack.append(value)
        return False

    return handler


def _mark(m: PickleMachine) -> bool:
    m.metastack.append(m.stack)
    m.stack = []
    return False


def _dup(m: PickleMachine) -> bool:
    m.stack.append(m.top())
    return False


def _binstring(m: PickleMachine, fmt: str, size: int) -> bool:
    n = m._sized(fmt, size)
    if n < 0:
        raise PickleError("negative BINSTRING length")
    value = m._blob(n, "bytes")
    m.stack.append(value.decode("latin-1") if isinstance(value, bytes) else value)
    return False


def _tuple_n(m: PickleMachine, n: int) -> bool:
    items = [m.pop() for _ in range(n)][::-1]
    m.stack.append(tuple(items))
    return False


def _memoize(m: PickleMachine) -> bool:
    return _put(m, len(m.memo))


def _setitem(m: PickleMachine) -> bool:
    value = m.pop()
    key = m.pop()
    _setitems(m, [key, value])
    return False


_BY_NAME: dict[str, Callable[[PickleMachine], bool]] = {
    "MARK": _mark,
    "STOP": _stop,
    "POP": _pop,
    "POP_MARK": _pop_mark,
    "DUP": _dup,
    "FLOAT": _push(lambda m: float(m.readline())),
    "INT": _int,
    "BININT": _push(lambda m: m._sized("<i", 4)),
    "BININT1": _push(lambda m: m._sized("<B", 1)),
    "LONG": _long,
    "BININT2": _push(lambda m: m._sized("<H", 2)),
    "NONE": _push(lambda m: None),
    "PERSID": lambda m: _persid(m, m.readline().decode("ascii")),
    "BINPERSID": lambda m: _persid(m, m.pop()),
    "REDUCE": _reduce,
    "STRING": _string,
    "BINSTRING": lambda m: _binstring(m, "<i", 4),
    "SHORT_BINSTRING": lambda m: _binstring(m, "<B", 1),
    "UNICODE": _push(lambda m: m.readline().decode("raw-unicode-escape")),
    "BINUNICODE": _push(lambda m: m._blob(m._sized("<I", 4), "str")),
    "APPEND": _append,
    "BUILD": _build,
    "GLOBAL": _global,
    "DICT": _dict,
    "EMPTY_DICT": _push(lambda m: {}),
    "APPENDS": _appends,
    "GET": lambda m: _get(m, int(m.readline())),
    "BINGET": lambda m: _get(m, m._sized("<B", 1)),
    "INST": _inst,
    "LONG_BINGET": lambda m: _get(m, m._sized("<I", 4)),
    "LIST": _push(lambda m: m.pop_mark()),
    "EMPTY_LIST": _push(lambda m: []),
    "OBJ": _obj,
    "PUT": lambda m: _put(m, int(m.readline())),
    "BINPUT": lambda m: _put(m, m._sized("<B", 1)),
    "LONG_BINPUT": lambda m: _put(m, m._sized("<I", 4)),
    "SETITEM": _setitem,
    "TUPLE": _push(lambda m: tuple(m.pop_mark())),
    "EMPTY_TUPLE": _push(lambda m: ()),
    "SETITEMS": _setitems_op,
    "BINFLOAT": _push(lambda m: struct.unpack(">d", m.read(8))[0]),
    "BINBYTES": _push(lambda m: m._blob(m._sized("<I", 4), "bytes")),
    "SHORT_BINBYTES": _push(lambda m: m._blob(m._sized("<B", 1), "bytes")),
    "PROTO": _proto,
    "NEWOBJ": _newobj,
    "EXT1": lambda m: _ext(m, m._sized("<B", 1)),
    "EXT2": lambda m: _ext(m, m._sized("<H", 2)),
    "EXT4": lambda m: _ext(m, m._sized("<i", 4)),
    "TUPLE1": lambda m: _tuple_n(m, 1),
    "TUPLE2": lambda m: _tuple_n(m, 2),
    "TUPLE3": lambda m: _tuple_n(m, 3),
    "NEWTRUE": _push(lambda m: True),
    "NEWFALSE": _push(lambda m: False),
    "LONG1": lambda m: _long_n(m, 1),
    "LONG4": lambda m: _long_n(m, 4),
    "SHORT_BINUNICODE": _push(lambda m: m._blob(m._sized("<B", 1), "str")),
    "BINUNICODE8": _push(lambda m: m._blob(m._sized("<Q", 8), "str")),
    "BINBYTES8": _push(lambda m: m._blob(m._sized("<Q", 8), "bytes")),
    "EMPTY_SET": _push(lambda m: SymSet()),
    "ADDITEMS": _additems,
    "FROZENSET": _push(lambda m: SymFrozenSet(m.pop_mark())),
    "NEWOBJ_EX": _newobj_ex,
    "STACK_GLOBAL": _stack_global,
    "MEMOIZE": _memoize,
    "FRAME": _frame,
    "BYTEARRAY8": _push(lambda m: m._blob(m._sized("<Q", 8), "bytearray")),
    "NEXT_BUFFER": _push(lambda m: Unknown("out-of-band buffer")),
    "READONLY_BUFFER": lambda m: False,
}

#: Opcode byte -> handler; a handler returns True on STOP.
HANDLERS: dict[int, Callable[[PickleMachine], bool]] = {
    code: _BY_NAME[name] for code, name in OPCODES.items()
}
