"""input.validation: clear 4xx messages naming the field; never anything but a decision."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bastion.guards import Action, Guarded, GuardRequest, InputValidationGuard
from bastion.targets import FakeTarget, InputSpec

SPEC = InputSpec(
    shape=(5,),
    lower=[0, 0, 0, 0, 0],
    upper=[120, 1e6, 1, 1, 1],
    feature_names=["age", "income", "is_a", "is_b", "is_c"],
    integer=["age"],
    one_hot_groups=[["is_a", "is_b", "is_c"]],
)
GUARD = InputValidationGuard(SPEC, max_batch=8, max_bytes=4096)


def _decide(inputs: Any) -> Any:
    return GUARD.before(GuardRequest(principal="p", model="m", inputs=inputs))


OK_ROW = [30, 5000.0, 0, 1, 0]


def test_valid_batch_becomes_float32_array() -> None:
    d = _decide([OK_ROW, [45, 0, 1, 0, 0]])
    assert d.action is Action.TRANSFORM
    assert d.payload.dtype == np.float32 and d.payload.shape == (2, 5)
    assert _decide(np.array([OK_ROW], dtype=np.int64)).action is Action.TRANSFORM


@pytest.mark.parametrize(
    ("inputs", "status", "message"),
    [
        (None, 400, "'inputs' is missing"),
        ({"a": 1}, 400, "got dict"),
        ("1,2,3", 400, "got text"),
        (3.0, 400, "got float"),
        ([], 400, "'inputs' is empty"),
        ([OK_ROW] * 9, 413, "has 9 rows; at most 8"),
        ([OK_ROW[:4]], 422, "inputs[0] has 4 values"),
        ([OK_ROW, 7], 422, "inputs[1] must be a row"),
        ([[30, "x", 0, 1, 0]], 422, "inputs[0][1] is not a number"),
        ([[True, False, True, True, False]], 422, "inputs[0][0] is true/false"),
        ([[30, [1], 0, 1, 0]], 422, "inputs[0][1] is not a number"),
        ([[30, 2**80, 0, 1, 0]], 422, "inputs[0][1] is too large"),
        ([[30, float("nan"), 0, 1, 0]], 422, "inputs[0][1] ('income') is NaN"),
        ([OK_ROW, [30, float("inf"), 0, 1, 0]], 422, "inputs[1][1] ('income') is infinite"),
        ([[130, 1, 0, 1, 0]], 422, "inputs[0][0] ('age') = 130 is above the upper bound 120"),
        ([[-1, 1, 0, 1, 0]], 422, "('age') = -1 is below the lower bound 0"),
        ([[30.5, 1, 0, 1, 0]], 422, "inputs[0][0] ('age') = 30.5 must be a whole number"),
        ([[30, 1, 1, 1, 0]], 422, "form a one-hot group"),
        ([[30, 1, 0, 0, 0]], 422, "form a one-hot group"),
        (np.array([["a"] * 5]), 422, "dtype <U1"),
        (np.zeros((2, 4)), 422, "rows of shape (4,)"),
        (np.float64(1.0), 400, "got float64"),
    ],
)
def test_bad_inputs_name_the_field(inputs: Any, status: int, message: str) -> None:
    d = _decide(inputs)
    assert d.action is Action.DENY
    assert d.http_status == status
    assert message in d.reason


def test_oversized_payload_and_image_field_names() -> None:
    big = InputValidationGuard(InputSpec(shape=(1, 8, 8), lower=0.0, upper=1.0), max_bytes=512)
    d = big.before(GuardRequest(principal="p", model="m", inputs=np.zeros((3, 1, 8, 8))))
    assert d.http_status == 413 and "768 bytes" in d.reason
    x = np.zeros((1, 1, 8, 8))
    x[0, 0, 4, 5] = 2.0
    d = big.before(GuardRequest(principal="p", model="m", inputs=x))
    assert d.http_status == 422 and d.reason.startswith("inputs[0][0][4][5] = 2 is above")


def test_float32_overflow_is_refused() -> None:
    guard = InputValidationGuard(InputSpec(shape=(2,)))
    d = guard.before(GuardRequest(principal="p", model="m", inputs=[[1.0, 1e300]]))
    assert d.http_status == 422 and "too large for float32" in d.reason


# -- property-based: nothing but a decision, whatever arrives -----------------------------
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**100), max_value=2**100),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6), st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=40,
)
near_valid_rows = st.lists(
    st.lists(
        st.one_of(
            st.integers(min_value=-5, max_value=200),
            st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from([0, 1]),
            json_scalars,
        ),
        min_size=4,
        max_size=6,
    ),
    min_size=0,
    max_size=10,
)
arrays = hnp.arrays(
    dtype=st.one_of(hnp.scalar_dtypes(), hnp.unicode_string_dtypes(), hnp.byte_string_dtypes()),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=6),
)


def _is_decision(d: Any) -> None:
    assert d.action in (Action.DENY, Action.TRANSFORM)
    if d.action is Action.DENY:
        assert 400 <= d.http_status < 500 and d.reason
    else:
        SPEC.check(d.payload)  # what passes is valid for the model


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, near_valid_rows, arrays))
def test_malformed_inputs_only_ever_yield_a_decision(inputs: Any) -> None:
    _is_decision(_decide(inputs))


TARGET = FakeTarget(
    lambda x: np.tile([0.2, 0.8], (len(x), 1)), input_spec=SPEC, classes=["no", "yes"]
)
PIPELINE = Guarded(TARGET, [InputValidationGuard.for_target(TARGET, max_batch=8)])


@settings(max_examples=150, deadline=None)
@given(st.one_of(json_values, near_valid_rows, arrays))
def test_pipeline_answers_200_or_4xx_never_raises(inputs: Any) -> None:
    outcome = PIPELINE.handle_inputs(inputs)
    assert outcome.http_status == 200 or 400 <= outcome.http_status < 500


# -- the fast acceptance test against the straightforward checks ---------------------------
class ReferenceGuard(InputValidationGuard):
    """``before`` and ``_values`` as they were before the validation plan (slow, obvious)."""

    def before(self, request: GuardRequest) -> Any:
        from bastion.guards.base import Decision
        from bastion.guards.validation import _first, _Invalid

        try:
            arr = self._to_array(request.inputs)
        except _Invalid as bad:
            return Decision.deny(bad.reason, http_status=bad.status)
        problem = self._values(arr)
        if problem is not None:
            return Decision.deny(problem, http_status=422)
        with np.errstate(over="ignore", invalid="ignore"):
            clean = arr.astype(self._dtype, copy=False)
        if self._dtype.kind == "f" and not np.isfinite(clean).all():
            row, flat = _first(~np.isfinite(clean.reshape(len(clean), -1)))
            value = arr.reshape(len(arr), -1)[row, flat]
            return Decision.deny(
                f"{self._field(row, flat)} = {value:g} is too large for {self._dtype.name}; "
                "send values the model's dtype can hold.",
                http_status=422,
            )
        return Decision.transform(clean)

    def _values(self, arr: np.ndarray) -> str | None:
        from bastion.guards.validation import _first

        flat = arr.reshape(len(arr), -1)
        if flat.dtype.kind == "f":
            bad = ~np.isfinite(flat)
            if bad.any():
                row, j = _first(bad)
                what = "NaN" if np.isnan(flat[row, j]) else "infinite"
                return f"{self._field(row, j)} is {what}; send finite numbers."
        with np.errstate(invalid="ignore"):
            below = flat < self._lo
            above = flat > self._hi
        if below.any() or above.any():
            row_b, j_b = _first(below) if below.any() else (len(flat), 0)
            row_a, j_a = _first(above) if above.any() else (len(flat), 0)
            if (row_b, j_b) <= (row_a, j_a):
                row, j, side, bound = row_b, j_b, "below the lower", self._lo[j_b]
            else:
                row, j, side, bound = row_a, j_a, "above the upper", self._hi[j_a]
            return (
                f"{self._field(row, j)} = {flat[row, j]:g} is {side} bound {bound:g}; send "
                f"values in [{self._lo[j]:g}, {self._hi[j]:g}]."
            )
        return self._constraint_problem(flat)


PLAN_SPECS = [
    SPEC,
    InputSpec(shape=(1, 3, 3), lower=0.0, upper=1.0),
    InputSpec(shape=(3,)),
    InputSpec(shape=(3,), lower=[-1.0, 0.0, 2.0], upper=[1.0, np.inf, 2.0]),
    InputSpec(shape=(2,), lower=-1e39, upper=1e39),  # bounds beyond float32
    InputSpec(shape=(2,), dtype="int32", lower=-5.0, upper=5.0),
    InputSpec(shape=(2,), dtype="float16", lower=0.0, upper=1e5),
]


def _same(fast: Any, slow: Any) -> None:
    assert (fast.action, fast.http_status, fast.reason) == (
        slow.action,
        slow.http_status,
        slow.reason,
    )
    if fast.action is Action.TRANSFORM:
        assert fast.payload.dtype == slow.payload.dtype
        np.testing.assert_array_equal(fast.payload, slow.payload)


def _near_bounds(rng: np.random.Generator, spec: InputSpec) -> Any:
    lo, hi = spec.bounds()
    lo_f, hi_f = np.where(np.isfinite(lo), lo, -1e3), np.where(np.isfinite(hi), hi, 1e3)
    n = int(rng.integers(1, 4))
    flat = rng.uniform(lo_f, hi_f, size=(n, spec.n_features))
    if rng.random() < 0.5:
        flat = np.round(flat)
    for _ in range(int(rng.integers(0, 3))):
        i, j = int(rng.integers(n)), int(rng.integers(spec.n_features))
        edges = [np.nextafter(lo_f[j], -np.inf), np.nextafter(hi_f[j], np.inf)]
        flat[i, j] = rng.choice(
            [np.nan, np.inf, -np.inf, 1e300, -1e39, 0.0, 1.0, lo_f[j], hi_f[j], *edges]
        )
    dtype = rng.choice(np.array(["float64", "float32", "float16", "int64", "longdouble"]))
    with np.errstate(all="ignore"):
        batch = flat.astype(dtype).reshape((n, *spec.shape))
    return batch.tolist() if rng.random() < 0.3 else batch


@pytest.mark.parametrize("spec", PLAN_SPECS, ids=lambda s: f"{s.shape}-{s.dtype}-{s.upper}")
def test_fast_checks_decide_exactly_like_the_reference(spec: InputSpec) -> None:
    fast, slow = InputValidationGuard(spec), ReferenceGuard(spec)
    rng = np.random.default_rng(sum(map(ord, repr(spec))))
    for _ in range(300):
        inputs = _near_bounds(rng, spec)
        request = GuardRequest(principal="p", model="m", inputs=inputs)
        _same(fast.before(request), slow.before(request))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, near_valid_rows, arrays))
def test_fast_checks_match_the_reference_on_anything(inputs: Any) -> None:
    request = GuardRequest(principal="p", model="m", inputs=inputs)
    _same(GUARD.before(request), ReferenceGuard(SPEC, max_batch=8, max_bytes=4096).before(request))
