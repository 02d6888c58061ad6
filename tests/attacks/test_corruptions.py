"""Common corruptions: shapes, ranges, determinism, and accuracy falling with severity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bastion.attacks.evasion.corruptions import CORRUPTIONS, corrupt
from bastion.errors import UsageError
from tests.attacks.blackbox_models import (
    digits,
    digits_target,
    one_thread,  # noqa: F401 - autouse fixture
)


def _images(n: int = 6, c: int = 1, size: int = 8) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_corruption_keeps_shape_range_and_repeats(name, channels) -> None:
    x = _images(c=channels, size=12)
    out = corrupt(x, name, 3, torch.Generator().manual_seed(5))
    again = corrupt(x, name, 3, torch.Generator().manual_seed(5))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, again)
    assert not torch.equal(out, x)


def test_corruptions_do_what_they_say() -> None:
    x = _images(n=4, size=16)
    g = torch.Generator().manual_seed(0)
    mild = (corrupt(x, "gaussian_noise", 1, g) - x).abs().mean()
    harsh = (corrupt(x, "gaussian_noise", 5, g) - x).abs().mean()
    assert harsh > 2 * mild
    assert (corrupt(x, "brightness", 2, g) >= x).all()
    assert corrupt(x, "contrast", 4, g).std() < 0.2 * x.std()
    flat = torch.full((1, 1, 16, 16), 0.5)
    for name in ("gaussian_blur", "box_blur", "rotate", "shift"):
        torch.testing.assert_close(corrupt(flat, name, 5, g), flat)  # nothing to move
    smooth = torch.linspace(0, 1, 16).repeat(1, 1, 16, 1)
    jpeg_error = [(corrupt(smooth, "jpeg", s, g) - smooth).abs().mean().item() for s in (1, 5)]
    assert jpeg_error[0] < 0.02 and jpeg_error[1] > jpeg_error[0]
    edge = torch.zeros(1, 1, 8, 8)
    edge[..., 4:] = 1.0
    assert corrupt(edge, "gaussian_blur", 3, g)[0, 0, 0, 3] > 0.1  # blur spreads the edge


def test_accuracy_falls_with_severity_on_digits() -> None:
    data, _ = digits()
    target = digits_target()
    x = torch.from_numpy(data.x_test[:300])
    y = data.y_test[:300]
    clean = float((target.predict(x.numpy()) == y).mean())
    falls = 0
    for i, name in enumerate(sorted(CORRUPTIONS)):
        g = torch.Generator().manual_seed(i)
        acc = [
            float((target.predict(corrupt(x, name, s, g).numpy()) == y).mean()) for s in (1, 3, 5)
        ]
        assert acc[0] >= acc[2] - 0.02, (name, acc)  # monotone-ish: never clearly better
        assert acc[0] <= clean + 0.03, (name, acc)
        falls += acc[2] < acc[0] - 0.02
    assert falls >= 7  # nearly every corruption hurts more at severity 5 than at 1


def test_bad_arguments_are_refused() -> None:
    g = torch.Generator()
    with pytest.raises(UsageError, match="Unknown corruption"):
        corrupt(_images(), "fog", 1, g)
    with pytest.raises(UsageError, match="severity"):
        corrupt(_images(), "jpeg", 6, g)
    with pytest.raises(UsageError, match=r"\(n, C, H, W\)"):
        corrupt(torch.rand(3, 8, 8), "jpeg", 1, g)
    assert np.isfinite(corrupt(_images(), "shot_noise", 5, g).numpy()).all()
