"""Canonical JSON and timestamps: the fast paths give exactly the reference's text or error."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bastion.errors import UsageError
from bastion.guards.canonical import (
    STAMP_FORMAT,
    canonical_json,
    canonical_json_str_keys,
    jsonable,
    utc_stamp,
)


def reference_jsonable(value: Any) -> Any:
    """The recursive conversion canonical_json used before its fast path (kept verbatim)."""
    if isinstance(value, np.ndarray):
        return reference_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return reference_jsonable(value.item())
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(
                f"Cannot encode the non-finite number {value!r} canonically; outputs and "
                "audit fields must be finite."
            )
        return value
    if isinstance(value, dict):
        return {str(k): reference_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [reference_jsonable(v) for v in value]
    return value


def reference_canonical_json(value: Any) -> str:
    return json.dumps(
        reference_jsonable(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
    )


def outcome(fn: Any, value: Any) -> tuple[str, str]:
    """("ok", text) or (error type, message): what a call gives, to compare two paths."""
    try:
        return "ok", fn(value)
    except Exception as err:  # the error itself is what is compared
        return type(err).__name__, str(err)


floats = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.floats(width=32)
dtypes = st.sampled_from(
    [np.float64, np.float32, np.float16, np.int64, np.int32, np.uint8, np.int8, np.bool_]
)
numpy_arrays = dtypes.flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4))
)
numpy_numbers = st.one_of(
    floats.map(np.float64),
    st.floats(width=32, allow_nan=True).map(np.float32),
    st.integers(-(2**63), 2**63 - 1).map(np.int64),
    st.integers(0, 255).map(np.uint8),
    st.booleans().map(np.bool_),
)
numpy_strings = st.text(max_size=5).map(np.str_)  # "a\x00" becomes "a" in jsonable
plain_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), floats, st.text(max_size=8), numpy_numbers
)
str_keys = st.text(max_size=6)
any_keys = st.one_of(
    str_keys, st.integers(-5, 30), st.booleans(), st.none(), st.floats(allow_nan=False)
)


def nested(keys: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        plain_scalars | numpy_strings | numpy_arrays,
        lambda children: st.one_of(
            st.lists(children, max_size=5),
            st.lists(children, max_size=4).map(tuple),
            st.dictionaries(keys, children, max_size=5),
        ),
        max_leaves=30,
    )


@settings(max_examples=400, deadline=None)
@given(nested(str_keys))
def test_canonical_json_matches_the_reference_with_string_keys(value: Any) -> None:
    assert outcome(canonical_json, value) == outcome(reference_canonical_json, value)


@settings(max_examples=400, deadline=None)
@given(nested(str_keys))
def test_the_unchecked_fast_path_matches_the_reference_within_its_contract(value: Any) -> None:
    expected = outcome(reference_canonical_json, value)
    if expected[0] != "ok":  # canonical_json falls back to the reference, which raises
        with pytest.raises((ValueError, TypeError, RecursionError)):
            canonical_json_str_keys(value)
        return
    text = canonical_json_str_keys(value)
    if "\\u0000" not in text:  # else a NumPy string may keep NULs the reference drops
        assert text == expected[1]


@settings(max_examples=300, deadline=None)
@given(nested(any_keys))
def test_canonical_json_matches_the_reference_with_any_keys(value: Any) -> None:
    assert outcome(canonical_json, value) == outcome(reference_canonical_json, value)


@settings(max_examples=300, deadline=None)
@given(nested(str_keys))
def test_jsonable_is_unchanged(value: Any) -> None:
    assert outcome(lambda v: repr(jsonable(v)), value) == outcome(
        lambda v: repr(reference_jsonable(v)), value
    )


@pytest.mark.parametrize(
    "value",
    [
        {"a": float("nan")},
        [1.0, np.float64("inf")],
        {"x": np.array([0.5, np.nan], dtype=np.float32)},
        {"b": np.float32("-inf")},
        {"c": b"bytes"},
        {"d": 1j},
        {"e": np.array([1 + 2j])},
        {"f": np.array([{"k": 1, 2: np.float32(0.5)}], dtype=object)},
        {"g": object()},
        {"h": np.datetime64("2025-01-01")},
        {"i": np.array([1.5], dtype=np.longdouble)},
        {1: "int key", "1": "same text"},
        {True: 1, "z": {None: 2, 0.5: 3}},
        {np.str_("k"): 1},
        {"shared": [[1], [1]]},
    ],
)
def test_edge_values_give_the_reference_text_or_error(value: Any) -> None:
    assert outcome(canonical_json, value) == outcome(reference_canonical_json, value)


def test_non_finite_numbers_keep_their_message() -> None:
    with pytest.raises(UsageError, match="non-finite number nan canonically"):
        canonical_json({"x": np.array([1.0, np.nan])})
    with pytest.raises(UsageError, match="non-finite number -inf canonically"):
        canonical_json([np.float64("-inf")])


def test_circular_structures_still_raise_recursion_error() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(RecursionError):
        canonical_json({"a": loop})


stamps = st.one_of(
    st.floats(0, 4_000_000_000, allow_nan=False),
    st.integers(0, 4_000_000_000).map(lambda s: s + 0.9999995),
    st.integers(0, 4_000_000_000).map(lambda s: s + 0.0000005),
    st.integers(0, 4_000_000_000).flatmap(
        lambda s: st.integers(0, 999_999).map(lambda us: s + us / 1e6 + 5e-7)
    ),
    st.floats(-1e9, 0, allow_nan=False),
)


@settings(max_examples=1000, deadline=None)
@given(stamps)
def test_utc_stamp_matches_datetime(ts: float) -> None:
    assert utc_stamp(ts) == datetime.fromtimestamp(ts, UTC).strftime(STAMP_FORMAT)
