"""The symbolic pickle interpreter: every opcode, values that match the real loader,
callables resolved through memo, strings and nested calls, and fail-closed errors."""

from __future__ import annotations

import pickle
import pickletools
from collections import OrderedDict
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.artifacts import DEFAULT_ALLOWLIST, Category
from bastion.artifacts.pickle_ops import OPCODES
from bastion.artifacts.pickle_vm import PickleMachine

from .corpus import call, g, malicious_samples, p4, u

_DATA = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


def run(data: bytes) -> object:
    return PickleMachine(data, allowlist=DEFAULT_ALLOWLIST).run()


@settings(max_examples=60, deadline=None)
@given(value=_DATA, protocol=st.integers(0, 5))
def test_plain_data_reads_back_as_the_real_loader_reads_it(value: object, protocol: int) -> None:
    data = pickle.dumps(value, protocol=protocol)
    result = run(data)
    assert result.stopped and result.issues == [] and result.end == len(data)
    assert result.value == pickle.loads(data)


def test_every_opcode_of_protocols_0_to_5_is_exercised(tmp_path) -> None:
    streams = [
        pickle.dumps(v, protocol=p)
        for p in range(6)
        for v in (
            {
                "a": [
                    1,
                    -1,
                    2**40,
                    300,
                    70000,
                    1.5,
                    "é",
                    b"x",
                    None,
                    True,
                    False,
                    (1,),
                    (1, 2),
                    (1, 2, 3),
                    (),
                    frozenset({1}),
                    {2},
                    bytearray(b"z"),
                    10**30,
                ]
            },
            OrderedDict(a=1),
            Fraction(1, 3),
            np.arange(3),
            np.float64(2.0),
        )
    ]
    streams += [pickle.dumps(pickle.PickleBuffer(b"abc"), protocol=5)]
    streams += [
        s.data for s in malicious_samples(tmp_path / "c") if s.data[:1] in (b"\x80", b"c", b"(")
    ]
    streams += [
        b"(I01\nI00\nL5L\nF1.5\nS'x'\nT\x01\x00\x00\x00yU\x01zX\x01\x00\x00\x00wd0(l1(t2.",
        b"\x80\x02]q\x00(K\x01e\x8a\x00\x8b\x00\x00\x00\x00G?\xf0\x00\x00\x00\x00\x00\x00M\x01\x00a.",
        b"\x80\x04\x8e\x01\x00\x00\x00\x00\x00\x00\x00a\x96\x01\x00\x00\x00\x00\x00\x00\x00b\x8d"
        b"\x01\x00\x00\x00\x00\x00\x00\x00c\x87\x97\x98\x86\x85\x94j\x00\x00\x00\x00r\x01\x00\x00\x00"
        b"\x83\x01\x00\x84\x01\x00\x00\x00\x86PpidQ0C\x01d.",
        b"\x80\x04N\x8f(K\x01\x90\x88\x89\x86gp0\n.",
        b"Ppid\n.",
        b"\x80\x02X\x03\x00\x00\x00pidQ.",
    ]
    seen = {op.name for s in streams for op, _, _ in _ops(s)}
    assert seen >= set(OPCODES.values()), sorted(set(OPCODES.values()) - seen)
    for s in streams:  # never raises, whatever the stream
        run(s)


def _ops(data: bytes):
    try:
        yield from pickletools.genops(data)
    except Exception:
        return


def test_globals_resolve_through_memo_and_protocol_0_strings() -> None:
    memo = p4(u("os") + b"\x94" + u("system") + b"\x94h\x00h\x01\x93\x94h\x02(" + u("id") + b"tR")
    [issue] = run(memo).issues
    assert (issue.global_name, issue.category, issue.opcode) == (
        "os:system",
        Category.CODE_EXECUTION,
        "STACK_GLOBAL",
    )
    built = b"S'o\\x73'\np0\nS'sys\\x74em'\np1\ng0\ng1\n\x93(S'id'\ntR."
    assert [i.global_name for i in run(built).issues] == ["os:system"]


def test_python2_names_are_mapped_like_the_loader_maps_them() -> None:
    p2 = b"\x80\x02c__builtin__\neval\n(S'1'\ntR."
    assert run(p2).issues[0].global_name == "builtins:eval"
    p4_same = b"\x80\x04c__builtin__\neval\n(S'1'\ntR."  # protocol 4: no mapping
    assert run(p4_same).issues[0].global_name == "__builtin__:eval"


def test_calls_must_call_an_imported_global() -> None:
    computed = p4(call(g("collections", "OrderedDict")) + b"(" + u("x") + b"tR")
    issue = run(computed).issues[0]
    assert issue.category is Category.CODE_EXECUTION and "result of calling" in issue.message
    name = p4(call(g("builtins", "str"), u("os")) + u("system") + b"\x93")
    assert "computed value" in run(name).issues[0].message


def test_build_on_a_global_is_monkey_patching() -> None:
    data = p4(g("collections", "OrderedDict") + b"N}" + u("x") + b"K\x01s\x86b")
    [issue] = run(data).issues
    assert issue.opcode == "BUILD" and "monkey-patching" in issue.message


@pytest.mark.parametrize(
    "data, words",
    [
        (b"\x80\x04K\x01", "truncated"),
        (b"\x80\x04\xff.", "unknown opcode"),
        (b"\x80\x06.", "unsupported pickle protocol"),
        (b"\x80\x04h\x05.", "never stored"),
        (b"\x80\x04R.", "stack underflow"),
        (b"\x80\x04t.", "without a MARK"),
        (b"\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00N.", "FRAME"),
        (b"S'unquoted\n.", "quoted"),
    ],
)
def test_malformed_streams_fail_closed(data: bytes, words: str) -> None:
    result = run(data)
    assert not result.stopped or result.issues
    assert any(words in i.message for i in result.issues)
    assert all(
        i.category in (Category.UNPROVABLE, Category.CONTAINER_ANOMALY) for i in result.issues
    )


def test_every_strict_prefix_of_a_pickle_is_flagged() -> None:
    data = pickle.dumps({"a": [1, 2, {"b": b"xyz"}]}, protocol=4)
    for cut in range(1, len(data)):
        assert run(data[:cut]).issues, cut


def test_large_strings_are_skipped_not_held() -> None:
    big = b"\x80\x04\x8e" + (3 << 20).to_bytes(8, "little") + bytes(3 << 20) + b"."
    result = run(big)
    assert result.stopped and result.issues == [] and type(result.value).__name__ == "Blob"
