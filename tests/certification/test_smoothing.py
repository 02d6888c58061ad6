"""bastion.certification.smoothing: PREDICT and CERTIFY against a closed form."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from bastion.certification import (
    ABSTAIN,
    Certificate,
    SmoothedClassifier,
    certified_radius,
    clopper_pearson_lower,
    max_certifiable_radius,
)
from bastion.errors import QueryBudgetExceeded, UsageError
from bastion.targets import FakeTarget, InputSpec
from tests.certification.linear import at_distance, fake_linear, margin, torch_linear

SIGMA = 0.5
DISTANCES = np.array([-1.2, -0.6, -0.2, 0.1, 0.3, 0.5, 0.9, 1.3])


def _certify(
    g: SmoothedClassifier, x: np.ndarray, n: int, seed: int = 0, alpha: float = 0.001
) -> Certificate:
    return g.certify(x, n0=100, n=n, alpha=alpha, generator=g.generator(seed))


def test_radius_is_a_lower_bound_that_approaches_the_distance_to_the_boundary() -> None:
    g = SmoothedClassifier(torch_linear(), SIGMA, batch_size=20_000)
    x = at_distance(DISTANCES)
    d = np.abs(margin(x))
    assert np.allclose(d, np.abs(DISTANCES))
    big = _certify(g, x, 20_000)
    small = _certify(g, x, 500)
    truth = (DISTANCES > 0).astype(np.int64)
    assert big.label.tolist() == truth.tolist()
    # Never above the true distance (the certificate is sound)...
    assert np.all(big.radius <= d + 1e-9) and np.all(small.radius <= d + 1e-9)
    # ...and close to it with many samples: at least the radius CERTIFY would give for a
    # count four standard deviations below its mean n * pA (Clopper–Pearson slack plus
    # sampling error), and within 0.07 of the exact radius.
    n, p = 20_000, norm.cdf(d / SIGMA)
    k_low = np.floor(n * p - 4 * np.sqrt(n * p * (1 - p)))
    floor = certified_radius(clopper_pearson_lower(k_low, n, 0.001), SIGMA)
    assert np.all(big.radius >= floor), big.radius - floor
    assert np.all(big.radius >= d - 0.07), big.radius - d
    # More samples, tighter bound.
    assert float((d - big.radius).sum()) < float((d - small.radius).sum())
    # The bound on pA is below the exact probability Phi(d / sigma).
    assert np.all(big.p_lower <= norm.cdf(d / SIGMA) + 1e-12)


def test_both_base_classifier_paths_count_queries_and_agree() -> None:
    x = at_distance(np.array([-0.8, 0.4, 1.0]))
    white, generic = torch_linear(), fake_linear()
    a = _certify(SmoothedClassifier(white, SIGMA), x, 2000)
    b = _certify(SmoothedClassifier(generic, SIGMA, batch_size=512), x, 2000)
    assert white.queries_used == generic.queries_used == 3 * (100 + 2000)
    assert a.label.tolist() == b.label.tolist() == [0, 1, 1]
    assert np.allclose(a.radius, b.radius, atol=0.06)  # different noise, same estimate


def test_abstains_on_the_boundary() -> None:
    g = SmoothedClassifier(torch_linear(), SIGMA)
    x = at_distance(np.zeros(6), seed=3)
    cert = _certify(g, x, 2000)
    assert np.all(cert.label == ABSTAIN) and np.all(cert.radius == 0.0)
    assert np.all(cert.abstained)
    assert np.all(g.predict(x, n=2000, alpha=0.001, generator=g.generator(1)) == ABSTAIN)


def test_predict_returns_the_smoothed_class_away_from_the_boundary() -> None:
    g = SmoothedClassifier(fake_linear(), SIGMA)
    x = at_distance(np.array([-1.0, 1.0, 2.0]))
    assert g.predict(x, n=200, alpha=0.001, generator=g.generator(0)).tolist() == [0, 1, 1]


def test_same_seed_same_certificate() -> None:
    x = at_distance(np.array([0.2, 0.7]))
    g = SmoothedClassifier(torch_linear(), SIGMA)
    a, b = _certify(g, x, 300, seed=4), _certify(g, x, 300, seed=4)
    assert np.array_equal(a.radius, b.radius) and np.array_equal(a.label, b.label)


def test_radius_never_exceeds_what_n_samples_allow() -> None:
    g = SmoothedClassifier(torch_linear(), SIGMA)
    cert = _certify(g, at_distance(np.array([5.0, -5.0])), 200)
    assert np.all(cert.top_count == 200)
    assert np.allclose(cert.radius, max_certifiable_radius(200, 0.001, SIGMA))


def test_certified_accuracy_helpers() -> None:
    g = SmoothedClassifier(torch_linear(), SIGMA)
    x = at_distance(np.array([-1.0, 0.5, 0.0]))
    cert = _certify(g, x, 2000)
    y = np.array([0, 0, 1])  # the second row is misclassified, the third abstains
    assert cert.certified_correct(y).tolist() == [True, False, False]
    assert cert.certified_correct(y, radius=5.0).tolist() == [False, False, False]
    assert cert.correct_radii(y)[1:].tolist() == [0.0, 0.0]


def test_a_query_budget_stops_certification() -> None:
    g = SmoothedClassifier(torch_linear(query_budget=1000), SIGMA, batch_size=100)
    with pytest.raises(QueryBudgetExceeded):
        _certify(g, at_distance(np.array([1.0])), 2000)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n0": 10, "n": 5, "alpha": 0.01}, "'n0' parameter .* must not exceed 'n'"),
        ({"n0": 0, "n": 5, "alpha": 0.01}, "'n0' parameter"),
        ({"n0": 1, "n": 5, "alpha": 0.0}, "'alpha' parameter"),
        ({"n0": 1, "n": 5, "alpha": 1.0}, "'alpha' parameter"),
        ({"n0": 1, "n": 2.5, "alpha": 0.1}, "'n' parameter"),
    ],
)
def test_bad_certify_parameters_are_usage_errors(kwargs: dict[str, object], match: str) -> None:
    g = SmoothedClassifier(torch_linear(), SIGMA)
    with pytest.raises(UsageError, match=match) as err:
        g.certify(at_distance(np.array([1.0])), generator=g.generator(0), **kwargs)  # type: ignore[arg-type]
    assert ". " not in str(err.value)


def test_bad_construction_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="'sigma'"):
        SmoothedClassifier(torch_linear(), 0.0)
    with pytest.raises(UsageError, match="'batch_size'"):
        SmoothedClassifier(torch_linear(), 0.1, batch_size=0)
    t = FakeTarget(
        lambda x: np.ones((len(x), 2)) / 2, input_spec=InputSpec(shape=(2,)), classes="ab"
    )
    with pytest.raises(UsageError, match="'n' parameter"):
        SmoothedClassifier(t, 0.1).predict(np.zeros((1, 2)), n=0, alpha=0.1, generator=None)  # type: ignore[arg-type]
