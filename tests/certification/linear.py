"""A linear binary classifier whose smoothed version has a closed form.

For ``f(x) = 1[w·x + b > 0]`` and noise ``N(0, sigma^2 I)`` (no clipping: the input
spec is unbounded), ``P(f(x + e) = 1) = Phi((w·x + b) / (sigma ||w||))``, so the
smoothed classifier agrees with ``f`` and its exact certified radius is the distance
to the boundary, ``|w·x + b| / ||w||`` (Cohen et al. 2019, Section 3.1).
"""

from __future__ import annotations

import numpy as np
import torch

from bastion.targets import FakeTarget, InputSpec
from bastion.targets.torch_target import TorchTarget

W = np.array([3.0, -4.0, 0.0, 12.0])  # ||w|| = 13
B = -1.0
NORM = float(np.linalg.norm(W))


def margin(x: np.ndarray) -> np.ndarray:
    """Signed distance ``(w·x + b) / ||w||`` of each row to the boundary."""
    return np.asarray((x.reshape(len(x), -1).astype(np.float64) @ W + B) / NORM)


def at_distance(d: np.ndarray, seed: int = 0) -> np.ndarray:
    """Rows ``(len(d), 4)`` at signed distances ``d`` from the boundary."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(len(d), 4))
    unit = W / NORM
    base -= np.outer(base @ unit + B / NORM, unit)  # project onto the boundary
    return np.asarray(base + np.outer(d, unit), dtype=np.float32)


def torch_linear(query_budget: int | None = None) -> TorchTarget:
    """The classifier as a white-box torch target (logits ``[0, w·x + b]``)."""
    layer = torch.nn.Linear(4, 2).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(np.stack([np.zeros(4), W])))
        layer.bias.copy_(torch.tensor([0.0, B]))
    spec = InputSpec(shape=(4,), dtype="float64")
    return TorchTarget(
        layer, input_spec=spec, classes=["neg", "pos"], name="linear", query_budget=query_budget
    )


def fake_linear(labels_only: bool = True) -> FakeTarget:
    """The classifier behind the generic ``predict`` API (label-only by default)."""

    def score(x: np.ndarray) -> np.ndarray:
        pos = (x.reshape(len(x), -1) @ W + B > 0).astype(np.float64)
        return np.stack([1 - pos, pos], axis=1)

    return FakeTarget(
        score,
        input_spec=InputSpec(shape=(4,), dtype="float64"),
        classes=["neg", "pos"],
        labels_only=labels_only,
        name="linear-fake",
    )
