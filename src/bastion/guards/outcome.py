"""What a guarded request ends in, and how guards attach headers and fields to it.

:class:`Extras` is the payload a guard puts in an *allow*, *flag* or *deny*
:class:`~bastion.guards.base.Decision` to add response headers (``Retry-After``) or
response fields (a signature, a review id); :func:`deny` and :func:`allow_with`
build such decisions. :class:`GuardOutcome` is what
:meth:`~bastion.guards.Guarded.handle` returns and what every event sink records.

Examples
--------
>>> d = deny("Too many requests.", http_status=429, headers={"Retry-After": "2"})
>>> d.action.value, d.http_status, d.payload.headers["Retry-After"]
('deny', 429, '2')
>>> allow_with(fields={"note": "x"}).payload.fields
{'note': 'x'}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bastion.guards.base import Action, Decision

__all__ = ["Extras", "GuardOutcome", "allow_with", "deny"]


@dataclass(frozen=True)
class Extras:
    """Response headers and fields a guard attaches through ``Decision.payload``.

    On *allow* and *flag* decisions the pipeline merges them into the outcome; on a
    *deny* they travel with the denial (e.g. ``Retry-After`` on a 429).
    """

    headers: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, Any] = field(default_factory=dict)


def deny(
    reason: str,
    *,
    http_status: int,
    headers: Mapping[str, str] | None = None,
    fields: Mapping[str, Any] | None = None,
    events: tuple[dict[str, Any], ...] = (),
) -> Decision:
    """A deny decision that carries headers and response fields."""
    return Decision(
        Action.DENY,
        reason=reason,
        http_status=http_status,
        payload=Extras(headers=dict(headers or {}), fields=dict(fields or {})),
        events=events,
    )


def allow_with(
    *, headers: Mapping[str, str] | None = None, fields: Mapping[str, Any] | None = None
) -> Decision:
    """An allow decision that adds headers or response fields."""
    return Decision(
        Action.ALLOW, payload=Extras(headers=dict(headers or {}), fields=dict(fields or {}))
    )


@dataclass(frozen=True)
class GuardOutcome:
    """The result of one request through the pipeline.

    Attributes
    ----------
    request_id : str
        Unique id; the audit entry carries it too.
    model, model_version, principal : str
        What was asked, of which model version, by whom (after authentication).
    http_status : int
        200 when the model's answer is returned; 202 when it was withheld for review;
        the denying guard's status otherwise.
    outputs : ndarray or None
        The (possibly transformed) answer; None unless ``http_status`` is 200.
    reason : str
        Why it was denied or withheld; empty when allowed.
    decided_by : str or None
        Id of the guard that denied (``"model"`` when the model itself failed).
    events : tuple of dict
        Every event guards raised, each with its guard id and action.
    headers, fields : dict
        Headers and response fields guards attached.
    input_digest, output_digest : str
        SHA-256 digests of the validated inputs and of the returned outputs.
    started_at, latency_s : float
        Wall-clock start (UNIX seconds) and time spent in the pipeline.
    n_rows : int
        Rows in the request, as counted by the pipeline.
    """

    request_id: str
    model: str
    model_version: str
    principal: str
    http_status: int
    outputs: np.ndarray | None
    reason: str = ""
    decided_by: str | None = None
    events: tuple[dict[str, Any], ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    input_digest: str = ""
    output_digest: str = ""
    started_at: float = 0.0
    latency_s: float = 0.0
    n_rows: int = 0

    @property
    def allowed(self) -> bool:
        """True when the caller gets the model's answer."""
        return self.http_status == 200 and self.outputs is not None

    @property
    def needs_review(self) -> bool:
        """True when the answer was withheld and the request queued for review."""
        return self.http_status == 202

    @property
    def decision(self) -> str:
        """``"allow"``, ``"review"`` or ``"deny"``."""
        if self.allowed:
            return "allow"
        return "review" if self.needs_review else "deny"

    def body(self) -> dict[str, Any]:
        """The JSON-able response body a gateway would send."""
        out: dict[str, Any] = {"request_id": self.request_id, "model": self.model}
        if self.allowed:
            assert self.outputs is not None
            out["outputs"] = self.outputs.tolist()
        else:
            out["error" if not self.needs_review else "status"] = (
                self.reason if not self.needs_review else "needs_review"
            )
            if self.needs_review:
                out["reason"] = self.reason
        out.update(self.fields)
        return out
