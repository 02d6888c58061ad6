"""The :class:`Guard` contract: runtime checks in front of and behind a model.

A guard sees a :class:`GuardRequest` before the model and the model's response
after it, and returns a :class:`Decision`: allow, deny (with a reason and an HTTP
status), flag (allow but record), or transform (replace the payload, e.g. rounded
scores). Guards compose into a pipeline with a stable order (:attr:`GuardMeta.order`);
each decision may carry events for the audit log.

Examples
--------
>>> import numpy as np
>>> from bastion.guards.base import Action, Decision, GuardRequest
>>> req = GuardRequest(principal="alice", model="digits", inputs=np.zeros((1, 4)))
>>> Decision.allow().action is Action.ALLOW
True
>>> Decision.deny("budget spent", http_status=429).http_status
429
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

import numpy as np

from bastion.findings import CatalogRefs

__all__ = ["Action", "Decision", "Guard", "GuardMeta", "GuardRequest", "GuardResponse"]


class Action(StrEnum):
    """What a guard decided."""

    ALLOW = "allow"
    DENY = "deny"
    FLAG = "flag"
    TRANSFORM = "transform"


@dataclass(frozen=True)
class GuardRequest:
    """A prediction request as guards see it."""

    principal: str
    model: str
    inputs: np.ndarray
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GuardResponse:
    """The model's answer as guards see it: scores ``(n, n_classes)`` or labels ``(n,)``."""

    outputs: np.ndarray


@dataclass(frozen=True)
class Decision:
    """A guard's verdict on a request or response."""

    action: Action
    reason: str = ""
    http_status: int = 200
    payload: Any = None
    events: tuple[dict[str, Any], ...] = ()

    @classmethod
    def allow(cls) -> Decision:
        """Let the request or response through unchanged."""
        return cls(Action.ALLOW)

    @classmethod
    def deny(cls, reason: str, *, http_status: int = 403) -> Decision:
        """Stop the request; ``reason`` is shown to the caller."""
        return cls(Action.DENY, reason=reason, http_status=http_status)

    @classmethod
    def flag(cls, reason: str, **event: Any) -> Decision:
        """Let it through but record an event."""
        return cls(Action.FLAG, reason=reason, events=({"reason": reason, **event},))

    @classmethod
    def transform(cls, payload: Any, reason: str = "") -> Decision:
        """Replace the inputs (before the model) or outputs (after it) with ``payload``."""
        return cls(Action.TRANSFORM, reason=reason, payload=payload)


@dataclass(frozen=True)
class GuardMeta:
    """Declared metadata of a guard; checked by :mod:`bastion.testing`."""

    id: str
    title: str
    catalog: CatalogRefs
    order: int = 100


class Guard(ABC):
    """Base class of runtime guards. Override one or both hooks."""

    meta: ClassVar[GuardMeta]

    def before(self, request: GuardRequest) -> Decision:
        """Inspect a request before the model sees it."""
        return Decision.allow()

    def after(self, request: GuardRequest, response: GuardResponse) -> Decision:
        """Inspect the model's response before the caller sees it."""
        return Decision.allow()
