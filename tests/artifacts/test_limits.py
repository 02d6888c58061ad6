"""Limits: each one, when reached, is an issue ("could not be proven safe"), never a pass."""

from __future__ import annotations

import bz2
import gzip
import pickle

import pytest

from bastion.artifacts import Category, Limits, scan_bytes
from bastion.errors import UsageError


def _unprovable(report, words: str) -> bool:
    return any(i.category is Category.UNPROVABLE and words in i.message for i in report.issues)


def test_opcode_memo_and_stack_limits() -> None:
    data = pickle.dumps(list(range(2000)), protocol=4)
    assert scan_bytes(data).safe
    assert _unprovable(scan_bytes(data, limits=Limits(max_opcodes=100)), "max_opcodes")
    memo = pickle.dumps([[i] for i in range(300)], protocol=4)
    assert _unprovable(scan_bytes(memo, limits=Limits(max_memo=50)), "max_memo")
    deep = b"\x80\x04" + b"(" * 500 + b"."
    assert _unprovable(scan_bytes(deep, limits=Limits(max_stack=100)), "max_stack")


def test_nesting_depth_limit() -> None:
    data = pickle.dumps([1])
    for _ in range(6):
        data = gzip.compress(data)
    assert scan_bytes(data).safe
    assert _unprovable(scan_bytes(data, limits=Limits(max_depth=3)), "max_depth")


def test_decompression_bombs_are_stopped() -> None:
    bomb = bz2.compress(pickle.dumps(bytes(4 << 20)))  # 4 MiB of zeros in ~100 bytes
    small = Limits(ratio_floor_bytes=1 << 20, max_ratio=100)
    assert _unprovable(scan_bytes(bomb, limits=small), "max_ratio")
    total = Limits(max_decompressed_bytes=1 << 20)
    assert _unprovable(scan_bytes(bomb, limits=total), "max_decompressed_bytes")
    assert scan_bytes(bomb).safe  # within the defaults


def test_concatenated_pickle_limit() -> None:
    data = pickle.dumps(1) * 10
    assert scan_bytes(data).safe
    assert _unprovable(scan_bytes(data, limits=Limits(max_pickles_per_stream=3)), "concatenated")


def test_limits_are_validated() -> None:
    with pytest.raises(UsageError, match="max_depth"):
        Limits(max_depth=0)
    with pytest.raises(UsageError):
        Limits(max_ratio=-1.0)
