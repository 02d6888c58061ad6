"""Monte Carlo class counts of a base classifier under Gaussian noise.

The SAMPLEUNDERNOISE step of Cohen, Rosenfeld and Kolter, "Certified Adversarial
Robustness via Randomized Smoothing", ICML 2019: draw ``num`` noisy copies of each
row, ask the base classifier ``f`` for their classes, and count them.

:class:`BaseClassifier` is ``f`` for any target that answers with classes:

* white-box torch targets (gradients capability, a ``forward`` on tensors): noisy
  batches stay on the model's device and only the argmax leaves it (the fast path);
* every other target: noisy batches go through :meth:`Target.predict` as NumPy
  arrays, ``batch_size`` rows per call.

Either way every noisy row is one query charged to the target's budget, so a query
budget caps certification exactly as it caps an attack. :func:`sample_counts`
streams all ``(row, copy)`` pairs of a batch of rows through ``f`` in chunks of
``batch_size``, so small ``num`` and many rows batch as well as large ``num`` and
few rows; noise comes from one seeded ``torch.Generator``, so counts are
reproducible for the same seed, batch size and device.

Examples
--------
>>> import numpy as np, torch
>>> from bastion.targets import FakeTarget
>>> from bastion.certification.noise import GaussianNoise
>>> t = FakeTarget.linear(n_features=2, n_classes=3, seed=0)
>>> f = BaseClassifier(t)
>>> noise = GaussianNoise.from_spec(t.input_spec, 0.1)
>>> counts = sample_counts(f, noise, torch.full((4, 2), 0.5), 50, batch_size=64,
...                        generator=torch.Generator().manual_seed(0))
>>> counts.shape, counts.sum(dim=1).tolist(), t.queries_used
(torch.Size([4, 3]), [50, 50, 50, 50], 200)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from bastion.certification.noise import GaussianNoise, torch_dtype
from bastion.errors import TargetError, UsageError
from bastion.targets.base import Capability, SupportsGradients, Target

__all__ = ["BaseClassifier", "sample_counts"]


class BaseClassifier:
    """The base classifier ``f``: rows ``(b, *shape)`` to class indices ``(b,)``.

    Parameters
    ----------
    target : Target
        Any target; white-box torch targets take the tensor fast path.
    who : str
        Names the caller in error messages.

    Attributes
    ----------
    white_box : bool
        True on the tensor fast path.
    device : torch.device
        Where noisy rows are built.
    dtype : torch.dtype
        The rows' dtype (the input spec's).
    rows : int
        Rows classified so far (each one query).
    """

    def __init__(self, target: Target, who: str = "Randomized smoothing") -> None:
        self.target = target
        self.dtype = torch_dtype(target.input_spec, who)
        self.white_box = Capability.GRADIENTS in target.capabilities and isinstance(
            target, SupportsGradients
        )
        self.device = torch.device(getattr(target, "device", "cpu") if self.white_box else "cpu")
        self.rows = 0

    @property
    def n_classes(self) -> int:
        """Number of classes ``f`` chooses from."""
        return self.target.n_classes

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Class indices ``(b,)`` (int64, on :attr:`device`) for rows ``x``."""
        self.rows += len(x)
        if self.white_box:
            with torch.no_grad():
                logits = self.target.forward(x)  # type: ignore[attr-defined]
            if not isinstance(logits, torch.Tensor) or logits.shape != (
                len(x),
                self.n_classes,
            ):
                raise TargetError(
                    f"Model {self.target.name!r} returned outputs of shape "
                    f"{tuple(getattr(logits, 'shape', ()))} for {len(x)} noisy rows; expected "
                    f"({len(x)}, {self.n_classes})."
                )
            if not bool(torch.isfinite(logits).all()):
                raise TargetError(
                    f"Model {self.target.name!r} returned NaN or infinite logits on noisy "
                    "inputs; it is numerically broken there, so no certificate can be trusted."
                )
            return logits.argmax(dim=1).to(self.device)
        labels = self.target.predict(x.detach().cpu().numpy())
        return torch.as_tensor(np.asarray(labels, dtype=np.int64), device=self.device)


def sample_counts(
    f: BaseClassifier,
    noise: GaussianNoise,
    x: torch.Tensor,
    num: int,
    *,
    batch_size: int,
    generator: torch.Generator,
    on_chunk: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """How often ``f`` returns each class on ``num`` noisy copies of each row.

    Parameters
    ----------
    f : BaseClassifier
    noise : GaussianNoise
    x : Tensor
        ``(m, *shape)`` rows on ``f.device``.
    num : int
        Noisy copies per row, >= 1.
    batch_size : int
        Noisy rows per call of ``f``, >= 1.
    generator : torch.Generator
        On ``f.device``.
    on_chunk : callable or None
        Called with the number of noisy rows after each chunk (progress).

    Returns
    -------
    Tensor
        ``(m, n_classes)`` int64 counts on ``f.device``; each row sums to ``num``.
    """
    if num < 1 or batch_size < 1:
        raise UsageError(
            f"Sampling under noise needs num >= 1 and batch_size >= 1; got {num} and {batch_size}."
        )
    m, k = len(x), f.n_classes
    counts = torch.zeros(m * k, dtype=torch.int64, device=f.device)
    total = m * num
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        rows = torch.arange(start, stop, device=f.device) // num
        labels = f(noise.sample(x[rows], generator))
        counts.index_add_(0, rows * k + labels, torch.ones_like(labels))
        if on_chunk is not None:
            on_chunk(stop - start)
    return counts.view(m, k)
