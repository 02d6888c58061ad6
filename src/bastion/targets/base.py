"""The :class:`Target` contract and its capability protocols.

Every model Bastion looks at is wrapped in a target. All targets answer
:meth:`Target.predict` (labels) on a batch and, when the model exposes scores,
:meth:`Target.predict_proba`; every row sent to the model is counted against an
optional query budget. Extra powers are *capabilities*, declared as
:class:`Capability` values and typed by the ``Supports*`` protocols: a white-box
torch model has gradients, an HTTP endpoint has neither gradients nor logits. A probe
asks for what it needs with :meth:`Target.require`, which fails with a message that
names the missing capability and the adapters that have it.

Examples
--------
>>> import numpy as np
>>> from bastion.targets import FakeTarget, Capability
>>> t = FakeTarget.linear(n_features=4, n_classes=3, seed=0)
>>> t.predict_proba(np.zeros((2, 4), dtype=np.float32)).shape
(2, 3)
>>> t.queries_used
2
>>> Capability.GRADIENTS in t.capabilities
False
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from bastion.errors import MissingCapabilityError, TargetError
from bastion.targets.budget import QueryBudget
from bastion.targets.spec import InputSpec

__all__ = [
    "Capability",
    "SupportsEmbeddings",
    "SupportsEndpoint",
    "SupportsGradients",
    "SupportsLogits",
    "SupportsTraining",
    "Target",
]


class Capability(StrEnum):
    """Powers a target may have beyond answering with labels."""

    LABELS = "labels"
    PROBABILITIES = "probabilities"
    LOGITS = "logits"
    GRADIENTS = "gradients"
    EMBEDDINGS = "embeddings"
    TRAINING = "training"
    ENDPOINT = "endpoint"


# Where a user gets each capability, for error messages.
_WHERE = {
    Capability.LABELS: "every adapter",
    Capability.PROBABILITIES: "the torch, sklearn and onnx adapters, and http endpoints that "
    "return scores",
    Capability.LOGITS: "the torch adapter, onnx models whose output is logits, sklearn models "
    "with only decision_function, and http endpoints that return logits",
    Capability.GRADIENTS: "the torch adapter (an in-memory module, TorchScript or torch.export "
    "archive)",
    Capability.EMBEDDINGS: "the torch adapter",
    Capability.TRAINING: "the torch and sklearn adapters",
    Capability.ENDPOINT: "the http adapter",
}


@runtime_checkable
class SupportsLogits(Protocol):
    """A target that returns pre-softmax scores."""

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Logits of shape ``(n, n_classes)`` for a batch ``x``."""
        ...


@runtime_checkable
class SupportsGradients(Protocol):
    """A white-box differentiable target (torch).

    Attacks work on tensors that stay on :attr:`device`; :meth:`forward` counts one
    query per row like every other entry point.
    """

    device: Any

    def forward(self, x: Any) -> Any:
        """Logits tensor ``(n, n_classes)`` for an input tensor ``(n, *shape)``."""
        ...


@runtime_checkable
class SupportsEmbeddings(Protocol):
    """A target that exposes an internal representation."""

    def embeddings(self, x: np.ndarray) -> np.ndarray:
        """Penultimate-layer activations, shape ``(n, d)``."""
        ...


@runtime_checkable
class SupportsTraining(Protocol):
    """A target that can train a fresh copy of its own architecture.

    Used for shadow models (membership inference) and by remedies.
    """

    def train_copy(self, x: np.ndarray, y: np.ndarray, *, seed: int) -> Target:
        """A new, independently trained target of the same kind and architecture."""
        ...


@runtime_checkable
class SupportsEndpoint(Protocol):
    """A target reached over the network, whose transport a probe may inspect."""

    url: str

    def send_raw(
        self, rows: np.ndarray, *, authenticated: bool = True
    ) -> tuple[int, dict[str, str]]:
        """Send one request; return (HTTP status, response headers). Counts queries."""
        ...


class Target(ABC):
    """One model behind Bastion's common interface.

    Subclasses implement :meth:`_predict_proba` (or :meth:`_predict_labels` for
    label-only models) and declare :attr:`provides`. Public methods validate inputs,
    charge the query budget and check outputs, so adapters stay small.

    Parameters
    ----------
    name : str
        Human-readable name used in findings and reports.
    input_spec : InputSpec
        What one input row looks like.
    classes : sequence of str
        Class names in output order.
    query_budget : int or None
        Maximum number of rows that may be sent to the model.
    """

    kind: ClassVar[str] = "abstract"
    provides: ClassVar[frozenset[Capability]] = frozenset({Capability.LABELS})
    #: The model file this target was loaded from, when there is one (set by
    #: :func:`~bastion.targets.loading.load_target`); supply-chain probes scan it.
    source_path: Path | None = None

    def __init__(
        self,
        *,
        name: str,
        input_spec: InputSpec,
        classes: Sequence[str],
        query_budget: int | None = None,
    ) -> None:
        if len(classes) < 2:
            raise TargetError(
                f"Target {name!r} declares {len(classes)} class(es); a classifier needs two "
                "or more."
            )
        self.name = name
        self.input_spec = input_spec
        self.classes = tuple(str(c) for c in classes)
        self.budget = QueryBudget(query_budget)

    # -- capabilities -------------------------------------------------------------
    @property
    def capabilities(self) -> frozenset[Capability]:
        """What this target can do (may be narrower than :attr:`provides`)."""
        return self.provides

    def require(self, *needed: Capability, who: str = "This probe") -> None:
        """Raise :class:`MissingCapabilityError` unless every capability is present."""
        missing = [c for c in needed if c not in self.capabilities]
        if not missing:
            return
        have = ", ".join(sorted(c.value for c in self.capabilities))
        first = missing[0]
        raise MissingCapabilityError(
            f"{who} needs {first.value}; this target ({self.kind}) has only {have}. "
            f"{first.value.capitalize()} come(s) with {_WHERE[first]}."
        )

    # -- queries ------------------------------------------------------------------
    @property
    def n_classes(self) -> int:
        """Number of output classes."""
        return len(self.classes)

    @property
    def queries_used(self) -> int:
        """Rows sent to the model so far, through any entry point."""
        return self.budget.used

    def _prepare(self, x: Any) -> np.ndarray:
        arr = np.asarray(x)
        self.input_spec.check(arr)
        return arr.astype(self.input_spec.dtype, copy=False)

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class scores as the model exposes them, shape ``(n, n_classes)``.

        Raises
        ------
        MissingCapabilityError
            If the model returns labels only.
        TargetError
            If the model's output is malformed or not finite.
        """
        self.require(Capability.PROBABILITIES, who="Asking for scores")
        arr = self._prepare(x)
        self.budget.charge(len(arr))
        out = np.asarray(self._predict_proba(arr), dtype=np.float64)
        self._check_scores(out, len(arr))
        return out

    def predict(self, x: Any) -> np.ndarray:
        """Predicted class indices, shape ``(n,)``."""
        arr = self._prepare(x)
        self.budget.charge(len(arr))
        if Capability.PROBABILITIES in self.capabilities:
            scores = np.asarray(self._predict_proba(arr), dtype=np.float64)
            self._check_scores(scores, len(arr))
            return np.asarray(scores.argmax(axis=1), dtype=np.int64)
        labels = np.asarray(self._predict_labels(arr))
        if (
            labels.shape != (len(arr),)
            or labels.min(initial=0) < 0
            or (labels.max(initial=0) >= self.n_classes)
        ):
            raise TargetError(
                f"Target {self.name!r} returned labels of shape {labels.shape} outside "
                f"0..{self.n_classes - 1}; check the response mapping."
            )
        return labels.astype(np.int64)

    def _check_scores(self, out: np.ndarray, n: int) -> None:
        if out.shape != (n, self.n_classes):
            raise TargetError(
                f"Target {self.name!r} returned scores of shape {out.shape}; expected "
                f"({n}, {self.n_classes}). Check the model's classes or output mapping."
            )
        if not np.isfinite(out).all():
            raise TargetError(
                f"Target {self.name!r} returned NaN or infinite scores; the model is "
                "broken for these inputs."
            )

    @abstractmethod
    def _predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Adapter hook: scores for a validated batch (no budget accounting here)."""

    def _predict_labels(self, x: np.ndarray) -> np.ndarray:
        """Adapter hook for label-only models; default: argmax of the scores."""
        return np.asarray(np.asarray(self._predict_proba(x)).argmax(axis=1))

    # -- lifecycle ------------------------------------------------------------------
    def verify(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Check that the model answers at all (adapters override; no queries charged)."""

    def close(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release connections or sessions held by the adapter."""

    # -- description --------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """A JSON-able description for reports and the store."""
        return {
            "name": self.name,
            "kind": self.kind,
            "classes": list(self.classes),
            "input_shape": list(self.input_spec.shape),
            "capabilities": sorted(c.value for c in self.capabilities),
            "query_budget": self.budget.limit,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, classes={len(self.classes)})"
