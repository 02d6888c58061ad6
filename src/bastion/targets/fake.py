"""A deterministic in-memory target for tests and examples.

:class:`FakeTarget` wraps any NumPy function from inputs to scores, so tests can
build a target with exactly the behaviour they need (rounded scores, label-only
answers, a model that returns NaN) without training anything.

Examples
--------
>>> import numpy as np
>>> from bastion.targets import FakeTarget
>>> t = FakeTarget.linear(n_features=2, n_classes=2, seed=1, decimals=2)
>>> float(t.predict_proba(np.array([[0.5, 0.5]], dtype=np.float32)).round(2).sum())
1.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np

from bastion.errors import UsageError
from bastion.targets.base import Capability, Target
from bastion.targets.spec import InputSpec

__all__ = ["FakeTarget"]

ScoreFn = Callable[[np.ndarray], np.ndarray]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


class FakeTarget(Target):
    """A target backed by a plain function.

    Parameters
    ----------
    score_fn : callable
        Maps a batch ``(n, *shape)`` to scores ``(n, n_classes)``.
    input_spec : InputSpec
    classes : sequence of str
    labels_only : bool
        Hide scores, as a hardened API would; only :meth:`predict` works.
    name : str
    query_budget : int or None
    """

    kind = "fake"
    provides: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LABELS, Capability.PROBABILITIES}
    )

    def __init__(
        self,
        score_fn: ScoreFn,
        *,
        input_spec: InputSpec,
        classes: Sequence[str],
        labels_only: bool = False,
        name: str = "fake",
        query_budget: int | None = None,
    ) -> None:
        super().__init__(
            name=name, input_spec=input_spec, classes=classes, query_budget=query_budget
        )
        self.score_fn = score_fn
        self.labels_only = labels_only

    @property
    def capabilities(self) -> frozenset[Capability]:
        if self.labels_only:
            return frozenset({Capability.LABELS})
        return self.provides

    def _predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.score_fn(x), dtype=np.float64)

    @classmethod
    def linear(
        cls,
        *,
        n_features: int,
        n_classes: int,
        seed: int = 0,
        decimals: int | None = None,
        top_k: int | None = None,
        labels_only: bool = False,
        name: str = "fake-linear",
        query_budget: int | None = None,
    ) -> FakeTarget:
        """A random linear softmax classifier on ``[0, 1]^n_features``.

        ``decimals`` rounds the scores and ``top_k`` zeroes all but the k largest,
        imitating the output hardening a real API might apply.
        """
        if n_features < 1 or n_classes < 2:
            raise UsageError("A linear fake needs n_features >= 1 and n_classes >= 2.")
        rng = np.random.default_rng(seed)
        w = rng.normal(size=(n_features, n_classes)) * 3.0
        b = rng.normal(size=n_classes)

        def score(x: np.ndarray) -> np.ndarray:
            p = _softmax(x.reshape(len(x), -1).astype(np.float64) @ w + b)
            if top_k is not None:
                cut = np.sort(p, axis=1)[:, -top_k][:, None]
                p = np.where(p >= cut, p, 0.0)
            if decimals is not None:
                p = np.round(p, decimals)
            return p

        spec = InputSpec(shape=(n_features,), lower=0.0, upper=1.0)
        return cls(
            score,
            input_spec=spec,
            classes=[f"class_{i}" for i in range(n_classes)],
            labels_only=labels_only,
            name=name,
            query_budget=query_budget,
        )
