"""InputSpec's cached constants and single-pass check agree with the straightforward code."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bastion.errors import DataError
from bastion.targets import InputSpec


def reference_bounds(spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """The bounds as ``InputSpec.bounds`` built them on every call before caching."""
    n = int(np.prod(spec.shape)) if spec.shape else 1
    lo = (
        np.full(n, -np.inf)
        if spec.lower is None
        else np.broadcast_to(np.asarray(spec.lower, dtype=np.float64), (n,)).copy()
    )
    hi = (
        np.full(n, np.inf)
        if spec.upper is None
        else np.broadcast_to(np.asarray(spec.upper, dtype=np.float64), (n,)).copy()
    )
    return lo, hi


def reference_check(spec: InputSpec, x: Any, what: str = "input") -> None:
    """``InputSpec.check`` as it was before the fast path (the slow, obvious version)."""
    arr = np.asarray(x)
    if arr.ndim == 0 or tuple(arr.shape[1:]) != tuple(spec.shape):
        raise DataError(
            f"The {what} has rows of shape {tuple(arr.shape[1:])}, but the model expects "
            f"{tuple(spec.shape)}; reshape the data or fix the model's input spec."
        )
    if arr.dtype.kind not in "biuf":
        raise DataError(
            f"The {what} has dtype {arr.dtype}; the model expects numbers ({spec.dtype})."
        )
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).reshape(len(arr), -1).any(axis=1).sum())
        raise DataError(
            f"The {what} has {bad} row(s) with NaN or infinite values; clean or drop them first."
        )
    lo, hi = reference_bounds(spec)
    flat = arr.reshape(len(arr), -1)
    tol = 1e-6
    if (flat < lo - tol).any() or (flat > hi + tol).any():
        raise DataError(
            f"The {what} has values outside the model's declared bounds "
            f"[{np.min(lo):g}, {np.max(hi):g}]; rescale the data to the model's raw "
            "input space or correct the bounds."
        )


def _outcome(fn: Any, *args: Any) -> tuple[str, str]:
    try:
        fn(*args)
    except Exception as err:  # the fast path must fail the same way, whatever the error
        return type(err).__name__, str(err)
    return "ok", ""


SPECS = [
    InputSpec(shape=(1, 4, 4), lower=0.0, upper=1.0),
    InputSpec(shape=(3,), lower=[0.0, -1.0, 5.0], upper=[1.0, 1.0, 9.0]),
    InputSpec(shape=(3,), lower=[2.0, 2.0, 2.0], upper=[3.0, 3.0, 3.0]),  # uniform list
    InputSpec(shape=(4,)),  # unbounded
    InputSpec(shape=(4,), lower=0.0),  # one side only
    InputSpec(shape=(2,), lower=[-np.inf, 0.0], upper=[np.inf, 1.0]),
    InputSpec(shape=(), lower=-3.0, upper=3.0),
]
DTYPES = [np.float32, np.float64, np.float16, np.longdouble, np.int64, np.uint8, np.bool_]


def _random_batch(rng: np.random.Generator, spec: InputSpec, dtype: Any) -> np.ndarray:
    n = int(rng.integers(0, 4))
    lo, hi = reference_bounds(spec)
    lo_f = np.where(np.isfinite(lo), lo, -10.0)
    hi_f = np.where(np.isfinite(hi), hi, 10.0)
    flat = rng.uniform(lo_f, hi_f, size=(n, spec.n_features))
    for _ in range(int(rng.integers(0, 3))):
        if n == 0:
            break
        i, j = int(rng.integers(n)), int(rng.integers(spec.n_features))
        flat[i, j] = rng.choice(
            [
                np.nan,
                np.inf,
                -np.inf,
                1e300,
                lo_f[j] - 1e-6,  # exactly on the tolerance edge
                hi_f[j] + 1e-6,
                lo_f[j] - 2e-6,  # just outside it
                hi_f[j] + 2e-6,
                lo_f[j],
                hi_f[j],
                np.nextafter(hi_f[j] + 1e-6, np.inf),
            ]
        )
    with np.errstate(all="ignore"):
        return flat.astype(dtype).reshape((n, *spec.shape))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.shape}-{s.lower}-{s.upper}")
def test_check_matches_the_reference_on_random_batches(spec: InputSpec) -> None:
    rng = np.random.default_rng(sum(map(ord, repr(spec))))
    for _ in range(300):
        dtype = DTYPES[int(rng.integers(len(DTYPES)))]
        x = _random_batch(rng, spec, dtype)
        assert _outcome(spec.check, x) == _outcome(reference_check, spec, x), (x, x.dtype)
    for odd in (np.zeros(3), np.zeros((2, 7)), np.array(["a"]), np.zeros((1, 2), complex)):
        assert _outcome(spec.check, odd) == _outcome(reference_check, spec, odd)


def test_bounds_are_fresh_copies_of_the_cached_constants() -> None:
    spec = SPECS[1]
    lo, hi = spec.bounds()
    ref_lo, ref_hi = reference_bounds(spec)
    assert lo.tolist() == ref_lo.tolist() and hi.tolist() == ref_hi.tolist()
    lo[0] = 99.0  # the caller's copy; the spec does not change
    assert spec.bounds()[0][0] == 0.0
    spec.check(np.array([[0.5, 0.0, 6.0]]))


def test_a_copy_with_other_bounds_does_not_reuse_the_cache() -> None:
    spec = InputSpec(shape=(2,), lower=0.0, upper=1.0)
    spec.check(np.full((1, 2), 0.5))  # fills the cache
    wider = spec.model_copy(update={"upper": 5.0})
    wider.check(np.full((1, 2), 4.0))
    assert wider.bounds()[1].tolist() == [5.0, 5.0]
    with pytest.raises(DataError, match="outside"):
        spec.check(np.full((1, 2), 4.0))
    reshaped = spec.model_copy(update={"shape": (3,)})
    assert reshaped.n_features == 3 and reshaped.bounds()[0].shape == (3,)


def test_cache_leaves_equality_and_serialisation_alone() -> None:
    a, b = InputSpec(shape=(2,), lower=0.0), InputSpec(shape=(2,), lower=0.0)
    a.check(np.zeros((1, 2)))  # cached on one side only
    assert a == b and a.model_dump() == b.model_dump()
    b.check(np.zeros((1, 2)))  # cached on both sides
    assert a == b and b == a
    other = InputSpec(shape=(2,), lower=1.0)
    other.check(np.ones((1, 2)))
    assert a != other
    assert InputSpec.model_validate_json(a.model_dump_json()) == a
