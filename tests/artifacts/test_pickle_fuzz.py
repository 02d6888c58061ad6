"""Property tests: hostile bytes never crash the scanner; they yield findings or a pass."""

from __future__ import annotations

import pickle

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.artifacts import DEFAULT_ALLOWLIST, FileReport, scan_bytes
from bastion.artifacts.pickle_vm import PickleMachine

_SEED = pickle.dumps({"w": [1.0, 2.0], "b": (b"x", None), "n": 10**20}, protocol=4)
_FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FAST
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(data: bytes) -> None:
    report = scan_bytes(data)
    assert isinstance(report, FileReport)
    run = PickleMachine(data, allowlist=DEFAULT_ALLOWLIST).run()
    assert run.stopped or run.issues  # a stream that did not reach STOP is never silent


@_FAST
@given(st.binary(max_size=200))
def test_random_bytes_behind_a_pickle_header_are_never_silently_passed(tail: bytes) -> None:
    report = scan_bytes(b"\x80\x04" + tail)
    assert report.safe == (not report.issues)
    run = PickleMachine(b"\x80\x04" + tail, allowlist=DEFAULT_ALLOWLIST).run()
    if not run.stopped:
        assert not report.safe


@_FAST
@given(st.lists(st.tuples(st.integers(0, len(_SEED) - 1), st.integers(0, 255)), max_size=6))
def test_mutated_pickles_never_raise(flips: list[tuple[int, int]]) -> None:
    data = bytearray(_SEED)
    for at, value in flips:
        data[at] = value
    assert isinstance(scan_bytes(bytes(data)), FileReport)


@_FAST
@given(
    st.binary(min_size=1, max_size=64),
    st.sampled_from(
        [
            b"PK\x03\x04",
            b"\x1f\x8b",
            b"\x93NUMPY",
            b"GGUF",
            b"\x89HDF\r\n\x1a\n",
            b"7z\xbc\xaf\x27\x1c",
            b"BZh",
            b"\xfd7zXZ\x00",
        ]
    ),
)
def test_broken_containers_never_raise(body: bytes, magic: bytes) -> None:
    report = scan_bytes(magic + body)
    assert isinstance(report, FileReport)
