"""bastion.certification.noise: clipped Gaussian noise on the mutable features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bastion.certification.noise import GaussianNoise
from bastion.errors import DataError, TargetError, UsageError
from bastion.targets import InputSpec

TABULAR = InputSpec(
    shape=(4,),
    lower=[0.0, 0.0, 0.0, 0.0],
    upper=[1.0, 100.0, 10.0, 5.0],
    feature_names=["a", "b", "port", "count"],
    immutable=["port"],
    integer=["count"],
)


def _sample(noise: GaussianNoise, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    return noise.sample(x, torch.Generator().manual_seed(seed))


def test_noise_has_sigma_and_stays_in_bounds() -> None:
    spec = InputSpec(shape=(2, 3), lower=-10.0, upper=10.0)
    noise = GaussianNoise.from_spec(spec, 0.3)
    x = torch.zeros(20_000, 2, 3)
    z = _sample(noise, x)
    assert z.shape == x.shape
    assert float(z.std()) == pytest.approx(0.3, rel=0.02)
    clipped = _sample(
        GaussianNoise.from_spec(InputSpec(shape=(3,), lower=0.0, upper=1.0), 1.0), x[:, 0]
    )
    assert float(clipped.min()) >= 0.0 and float(clipped.max()) <= 1.0


def test_frozen_features_are_untouched_and_range_units_scale_the_noise() -> None:
    x = torch.tensor([[0.5, 50.0, 3.0, 2.0]]).repeat(20_000, 1)
    raw = _sample(GaussianNoise.from_spec(TABULAR, 0.1), x)
    ranged = _sample(GaussianNoise.from_spec(TABULAR, 0.1, units="range"), x)
    for z in (raw, ranged):
        assert torch.equal(z[:, 2], x[:, 2]) and torch.equal(z[:, 3], x[:, 3])
    assert float(raw[:, 1].std()) == pytest.approx(0.1, rel=0.03)
    assert float(ranged[:, 1].std()) == pytest.approx(10.0, rel=0.03)  # 0.1 * range 100


def test_range_units_use_the_reference_for_unbounded_features() -> None:
    spec = InputSpec(shape=(2,))
    ref = np.array([[0.0, 0.0], [4.0, 0.0]])
    noise = GaussianNoise.from_spec(spec, 0.5, units="range", reference=ref)
    assert noise.scale.tolist() == [4.0, 1.0]  # a zero range counts as 1


def test_same_seed_same_noise() -> None:
    noise = GaussianNoise.from_spec(InputSpec(shape=(3,)), 1.0)
    x = torch.zeros(5, 3)
    assert torch.equal(_sample(noise, x, 1), _sample(noise, x, 1))
    assert not torch.equal(_sample(noise, x, 1), _sample(noise, x, 2))


@pytest.mark.parametrize("sigma", [0, -0.5, float("nan"), float("inf"), True, "0.1"])
def test_bad_sigma_is_a_usage_error(sigma: object) -> None:
    with pytest.raises(UsageError, match="'sigma' parameter") as err:
        GaussianNoise.from_spec(InputSpec(shape=(3,)), sigma)  # type: ignore[arg-type]
    assert ". " not in str(err.value) and str(err.value).endswith(".")  # one sentence


def test_bad_units_no_mutable_feature_and_integer_inputs() -> None:
    with pytest.raises(UsageError, match="'units'"):
        GaussianNoise.from_spec(InputSpec(shape=(3,)), 0.1, units="pixels")  # type: ignore[arg-type]
    frozen = InputSpec(shape=(1,), feature_names=["a"], immutable=["a"])
    with pytest.raises(DataError, match="immutable"):
        GaussianNoise.from_spec(frozen, 0.1)
    with pytest.raises(TargetError, match="floating-point"):
        GaussianNoise.from_spec(InputSpec(shape=(3,), dtype="int64"), 0.1)
    noise = GaussianNoise.from_spec(InputSpec(shape=(3,)), 0.1)
    with pytest.raises(DataError, match="shape"):
        _sample(noise, torch.zeros(2, 4))
