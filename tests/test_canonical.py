"""bastion.canonical: RFC 8785 canonical JSON and the strict reader."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.canonical import canonical_json, es_number, parse_strict


@pytest.mark.parametrize(
    ("value", "text"),
    [
        # number examples of RFC 8785 (section 3.2.2.3 and appendix B)
        (333333333.33333329, "333333333.3333333"),
        (1e30, "1e+30"),
        (4.50, "4.5"),
        (2e-3, "0.002"),
        (0.000000000000000000000000001, "1e-27"),
        (-0.0, "0"),
        (9007199254740992.0, "9007199254740992"),
        (295147905179352830000.0, "295147905179352830000"),
        (1e21, "1e+21"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (-1.5e-7, "-1.5e-7"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
    ],
)
def test_numbers_follow_ecmascript(value: float, text: str) -> None:
    assert es_number(value) == text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_round_trip(value: float) -> None:
    text = es_number(value)
    assert float(text) == value
    assert float(json.loads(text)) == value  # JCS may print an integer-valued float as an int


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        canonical_json({"x": bad})


def test_keys_sort_by_utf16_and_strings_stay_utf8() -> None:
    # U+1F600 (surrogate pair D83D DE00) sorts before U+FB01 in UTF-16, after it in UTF-8
    value = {"\ufb01": 1, "\U0001f600": 2, "a": "é"}
    assert canonical_json(value).decode() == '{"a":"é","\U0001f600":2,"\ufb01":1}'


def test_numpy_values_are_written_as_plain_numbers() -> None:
    value = {"p": np.array([[0.5, 1.0]], dtype=np.float32), "k": np.int64(3)}
    assert canonical_json(value) == b'{"k":3,"p":[[0.5,1]]}'


def test_same_value_any_layout_same_bytes() -> None:
    a = parse_strict('{"b": [1, 2.5], "a": {"y": null, "x": true}}', floats=True)
    b = parse_strict('{"a":{"x":true,"y":null},"b":[1,2.50]}', floats=True)
    assert canonical_json(a) == canonical_json(b)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (2**53, ValueError),
        ({1: "x"}, TypeError),
        ({"s": {1, 2}}, TypeError),
        ("\ud800", UnicodeEncodeError),
    ],
)
def test_values_outside_jcs_are_refused(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        canonical_json(value)


def test_strict_reader_refuses_duplicates_constants_and_floats_by_default() -> None:
    with pytest.raises(ValueError, match="duplicate key"):
        parse_strict('{"a": 1, "a": 2}')
    with pytest.raises(ValueError, match="not allowed"):
        parse_strict('{"a": NaN}', floats=True)
    with pytest.raises(ValueError, match="not allowed"):
        parse_strict('{"a": 1.5}')
    assert parse_strict('{"a": 1.5}', floats=True) == {"a": 1.5}
