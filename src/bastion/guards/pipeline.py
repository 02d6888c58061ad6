"""The guard pipeline: ``Guarded(target, guards=[...])``.

A request goes through the *before* hooks of every guard in a stable order
(:attr:`GuardMeta.order`, ties kept in the order given), then the model, then the
*after* hooks in the same order. Each hook returns a
:class:`~bastion.guards.base.Decision`:

* **allow** — go on (an :class:`~bastion.guards.outcome.Extras` payload adds
  response headers or fields, e.g. a signature);
* **flag** — go on and record the decision's events;
* **transform** — go on with a new payload: before the model, an array replaces the
  inputs and a :class:`~bastion.guards.base.GuardRequest` replaces the whole request
  (how authentication sets the principal); after it, the payload replaces the outputs;
* **deny** — stop: the model is not called (or its answer is withheld), the outcome
  carries the reason and HTTP status, and the denial is audited like every request.

When the request is finished, every event sink (audit log, metrics, logs) records
the :class:`~bastion.guards.outcome.GuardOutcome` *before* it is returned; a
``critical`` sink that fails (the audit log) stops the answer from being released.
A guard that raises is treated as a denial with status 500 (fail closed); model
errors become 422 (bad input), 429 (query budget) or 502 (model failure).

The pipeline sets request headers that guards may rely on, replacing anything a caller
sent under the same names: ``x-bastion-request-id`` and ``x-bastion-model-version``
for every hook, and ``x-bastion-input-digest`` (the digest the audit entry records for
the inputs the model saw, see :func:`digest_inputs`) for the *after* hooks, so a signed
output names the same request digest as the audit log without hashing it twice.

Examples
--------
>>> import numpy as np
>>> from bastion.guards import Guarded, InputValidationGuard, MemorySink
>>> from bastion.targets import FakeTarget
>>> target = FakeTarget.linear(n_features=3, n_classes=2, seed=0)
>>> sink = MemorySink()
>>> guarded = Guarded(target, [InputValidationGuard.for_target(target)], sinks=[sink])
>>> guarded.handle_inputs([[0.1, 0.2, 0.3]]).http_status
200
>>> bad = guarded.handle_inputs([[0.1, float("nan"), 0.3]])
>>> bad.http_status, bad.decided_by, bad.reason
(422, 'input.validation', 'inputs[0][1] is NaN; send finite numbers.')
>>> len(sink.outcomes)
2
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from bastion.errors import (
    BastionError,
    DataError,
    QueryBudgetExceeded,
    StoreError,
    TargetError,
    UsageError,
)
from bastion.guards.base import Action, Decision, Guard, GuardRequest, GuardResponse
from bastion.guards.canonical import array_digest, canonical_json, sha256_hex
from bastion.guards.errors import RequestDenied
from bastion.guards.events import EventSink
from bastion.guards.outcome import Extras, GuardOutcome
from bastion.targets.base import Capability, Target

__all__ = [
    "INPUT_DIGEST_HEADER",
    "MODEL_VERSION_HEADER",
    "REQUEST_ID_HEADER",
    "Guarded",
    "count_rows",
    "digest_inputs",
]

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-bastion-request-id"
"""Header the pipeline sets to the request's unique id."""

MODEL_VERSION_HEADER = "x-bastion-model-version"
"""Header the pipeline sets to the served model's version."""

INPUT_DIGEST_HEADER = "x-bastion-input-digest"
"""Header set for the *after* hooks to :func:`digest_inputs` of the model's inputs."""

_RESERVED_PREFIX = "x-bastion-"

OutputKind = Literal["auto", "scores", "labels"]


def count_rows(inputs: Any) -> int:
    """Rows in a batch as the pipeline counts them, without trusting its contents.

    Examples
    --------
    >>> count_rows([[1, 2], [3, 4]]), count_rows(np.zeros((5, 3))), count_rows("junk")
    (2, 5, 1)
    """
    if isinstance(inputs, np.ndarray):
        return int(inputs.shape[0]) if inputs.ndim >= 1 else 1
    if isinstance(inputs, list | tuple):
        return len(inputs)
    return 1


def digest_inputs(inputs: Any, dtype: str | None = None) -> str:
    """``sha256:<hex>`` of a batch: of its bytes for numeric arrays, else of its JSON form.

    Parameters
    ----------
    inputs : array-like
        The batch.
    dtype : str or None
        The model's input dtype. When given, a batch sent as nested lists of numbers is
        digested as the array of that dtype the model receives, which is what
        :func:`bastion.guards.canonical.request_digest` computes on the client side;
        a batch that is not a rectangular array of numbers keeps its JSON digest.

    Examples
    --------
    >>> from bastion.guards.canonical import request_digest
    >>> digest_inputs([[0.5, 1.0]], "float32") == request_digest([[0.5, 1.0]])
    True
    >>> digest_inputs([[0.5], "x"], "float32") == digest_inputs([[0.5], "x"])
    True
    """
    if isinstance(inputs, np.ndarray) and inputs.dtype.kind in "biuf":
        return array_digest(inputs)
    if dtype is not None and isinstance(inputs, list | tuple):
        try:  # a number the dtype cannot hold keeps the JSON digest: no two collide
            with np.errstate(over="raise", invalid="raise"):
                arr = np.asarray(inputs, dtype=np.dtype(dtype))
        except (TypeError, ValueError, OverflowError, FloatingPointError):
            arr = None
        if arr is not None and arr.dtype.kind in "biuf":
            return array_digest(arr)
    try:
        text = canonical_json(inputs.tolist() if isinstance(inputs, np.ndarray) else inputs)
    except (UsageError, TypeError, ValueError, RecursionError, OverflowError):
        text = f"unencodable:{type(inputs).__name__}"
    return f"sha256:{sha256_hex(text)}"


class Guarded:
    """A target behind a pipeline of guards, usable in-process or inside a gateway.

    Parameters
    ----------
    target : Target
        The model.
    guards : sequence of Guard
        The guards; run in :attr:`GuardMeta.order` (stable for equal orders).
    sinks : sequence of EventSink
        Receive every finished request before it is returned.
    model : str or None
        Model id requests must name; defaults to ``target.name``.
    model_version : str
        Version string put in ``x-bastion-model-version`` (signed outputs carry it).
    output : {"auto", "scores", "labels"}
        What the model is asked for; ``"auto"`` means scores when the target has them.
    """

    def __init__(
        self,
        target: Target,
        guards: Sequence[Guard] = (),
        *,
        sinks: Sequence[EventSink] = (),
        model: str | None = None,
        model_version: str = "",
        output: OutputKind = "auto",
    ) -> None:
        bad = [g for g in guards if not isinstance(g, Guard)]
        if bad:
            raise UsageError(
                f"Guarded needs Guard instances; got {type(bad[0]).__name__}. Build guards "
                "with their class or bastion.guards.build_guard(id, **params)."
            )
        if output not in ("auto", "scores", "labels"):
            raise UsageError(f"output must be 'auto', 'scores' or 'labels'; got {output!r}.")
        if output == "scores":
            target.require(Capability.PROBABILITIES, who="Guarded(output='scores')")
        self.target = target
        indexed = sorted(enumerate(guards), key=lambda pair: (pair[1].meta.order, pair[0]))
        self.guards: tuple[Guard, ...] = tuple(g for _, g in indexed)
        self.sinks: tuple[EventSink, ...] = tuple(sinks)
        self.model = model or target.name
        self.model_version = model_version
        self._scores = output == "scores" or (
            output == "auto" and Capability.PROBABILITIES in target.capabilities
        )
        self._before = [g for g in self.guards if _overrides(g, "before")]
        self._after = [g for g in self.guards if _overrides(g, "after")]
        self._dtype = str(target.input_spec.dtype)

    # -- in-process conveniences ------------------------------------------------------
    def handle_inputs(
        self, inputs: Any, *, principal: str = "local", headers: Mapping[str, str] | None = None
    ) -> GuardOutcome:
        """Run ``inputs`` through the pipeline as ``principal``; never raises for a denial."""
        return self.handle(
            GuardRequest(
                principal=principal, model=self.model, inputs=inputs, headers=dict(headers or {})
            )
        )

    def predict_proba(
        self, x: Any, *, principal: str = "local", headers: Mapping[str, str] | None = None
    ) -> np.ndarray:
        """The guarded answer for ``x``; raises :class:`RequestDenied` when not allowed."""
        outcome = self.handle_inputs(x, principal=principal, headers=headers)
        if not outcome.allowed:
            raise RequestDenied(
                outcome.reason or f"The request was refused ({outcome.http_status}).",
                http_status=outcome.http_status,
                guard=outcome.decided_by,
                headers=outcome.headers,
                request_id=outcome.request_id,
            )
        assert outcome.outputs is not None
        return outcome.outputs

    def predict(
        self, x: Any, *, principal: str = "local", headers: Mapping[str, str] | None = None
    ) -> np.ndarray:
        """Guarded labels for ``x`` (argmax of the returned scores, or the labels)."""
        out = self.predict_proba(x, principal=principal, headers=headers)
        return out if out.ndim == 1 else np.asarray(out.argmax(axis=1), dtype=np.int64)

    # -- the pipeline -------------------------------------------------------------------
    def handle(self, request: GuardRequest) -> GuardOutcome:
        """Run one request through before-hooks, the model and after-hooks; record it.

        Equivalent to ``self.record(self.run(request))``.

        Raises
        ------
        StoreError
            Only when a critical sink (the audit log) cannot record the request; the
            answer is then not released.
        """
        outcome = self.run(request)
        self.record(outcome)
        return outcome

    def run(self, request: GuardRequest) -> GuardOutcome:
        """Run one request through the hooks and the model without recording it.

        A caller that records the outcome itself (the gateway writes the audit entry
        from its event loop) must call :meth:`record` before releasing the answer.
        """
        return _Run(self, request).execute()

    def record(self, outcome: GuardOutcome, sinks: Sequence[EventSink] | None = None) -> None:
        """Give ``outcome`` to ``sinks`` (default: all of this pipeline's sinks) in order.

        Raises
        ------
        StoreError
            When a critical sink fails; the answer must then not be released. Other
            sinks' failures are logged and ignored.
        """
        for sink in self.sinks if sinks is None else sinks:
            try:
                sink.record(outcome)
            except Exception as err:
                if getattr(sink, "critical", False):
                    if isinstance(err, BastionError):
                        raise
                    raise StoreError(
                        f"The audit sink {type(sink).__name__} failed ({err}); the answer to "
                        f"request {outcome.request_id} was not released."
                    ) from err
                log.warning("event sink %s failed: %s", type(sink).__name__, err)

    def __repr__(self) -> str:
        ids = ", ".join(g.meta.id for g in self.guards)
        return f"Guarded({self.target!r}, guards=[{ids}])"


def _overrides(guard: Guard, hook: str) -> bool:
    return getattr(type(guard), hook) is not getattr(Guard, hook)


class _Run:
    """The state of one request while it moves through the pipeline."""

    def __init__(self, owner: Guarded, request: GuardRequest) -> None:
        self.owner = owner
        self.request_id = uuid.uuid4().hex
        self.started = time.time()
        self.t0 = time.perf_counter()
        self.events: list[dict[str, Any]] = []
        self.headers: dict[str, str] = {}
        self.fields: dict[str, Any] = {}
        self.n_rows = count_rows(request.inputs)
        self.input_digest: str | None = None
        self.request = self._stamp(request)

    def _stamp(self, request: GuardRequest) -> GuardRequest:
        headers = {
            str(k).lower(): str(v)
            for k, v in request.headers.items()
            if not str(k).lower().startswith(_RESERVED_PREFIX)
        }
        headers[REQUEST_ID_HEADER] = self.request_id
        headers[MODEL_VERSION_HEADER] = self.owner.model_version
        return dataclasses.replace(request, headers=headers)

    def execute(self) -> GuardOutcome:
        if self.request.model != self.owner.model:
            return self._finish(
                None, 404, f"No model {self.request.model!r} is served here.", "pipeline"
            )
        for guard in self.owner._before:
            decision = self._call(guard, guard.before, self.request)
            stop = self._apply(guard, decision, before=True)
            if stop is not None:
                return stop
        try:
            outputs = self._model(self.request.inputs)
        except _ModelFailure as failure:
            return self._finish(None, failure.status, failure.reason, "model")
        response = GuardResponse(outputs=outputs)
        if self.owner._after:
            self.request.headers[INPUT_DIGEST_HEADER] = self._input_digest()
        for guard in self.owner._after:
            decision = self._call(guard, guard.after, self.request, response)
            if decision.action is Action.TRANSFORM:
                response = GuardResponse(outputs=np.asarray(decision.payload))
                self._note(guard, decision)
                continue
            stop = self._apply(guard, decision, before=False)
            if stop is not None:
                return stop
        return self._finish(response.outputs, 200, "", None)

    def _call(self, guard: Guard, hook: Callable[..., Decision], *args: Any) -> Decision:
        try:
            decision = hook(*args)
        except StoreError as err:
            log.error("guard %s could not reach its store: %s", guard.meta.id, err)
            return Decision.deny(
                f"Guard {guard.meta.id} is unavailable; try again later.", http_status=503
            )
        except Exception:
            log.exception("guard %s failed on request %s", guard.meta.id, self.request_id)
            return Decision.deny(
                f"Guard {guard.meta.id} failed; the request was refused (see the server log).",
                http_status=500,
            )
        if not isinstance(decision, Decision):
            log.error("guard %s returned %r, not a Decision", guard.meta.id, decision)
            return Decision.deny(
                f"Guard {guard.meta.id} returned no decision; the request was refused.",
                http_status=500,
            )
        return decision

    def _note(self, guard: Guard, decision: Decision) -> None:
        tag = {"guard": guard.meta.id, "action": decision.action.value}
        if decision.events:
            self.events.extend({**event, **tag} for event in decision.events)
        elif decision.action is not Action.ALLOW and decision.reason:
            self.events.append({**tag, "reason": decision.reason})

    def _apply(self, guard: Guard, decision: Decision, *, before: bool) -> GuardOutcome | None:
        self._note(guard, decision)
        extras = decision.payload if isinstance(decision.payload, Extras) else None
        if decision.action is Action.DENY:
            if extras is not None:
                self.headers.update(extras.headers)
                self.fields.update(extras.fields)
            return self._finish(None, decision.http_status, decision.reason, guard.meta.id)
        if decision.action is Action.TRANSFORM and before:
            if isinstance(decision.payload, GuardRequest):
                self.request = self._restamp(decision.payload)
            else:
                self.request = dataclasses.replace(self.request, inputs=decision.payload)
            return None
        if extras is not None:
            self.headers.update(extras.headers)
            self.fields.update(extras.fields)
        return None

    def _restamp(self, request: GuardRequest) -> GuardRequest:
        headers = {
            k: v for k, v in request.headers.items() if not k.lower().startswith(_RESERVED_PREFIX)
        }
        headers[REQUEST_ID_HEADER] = self.request_id
        headers[MODEL_VERSION_HEADER] = self.owner.model_version
        return dataclasses.replace(request, headers=headers, model=self.owner.model)

    def _model(self, inputs: Any) -> np.ndarray:
        target = self.owner.target
        try:
            if self.owner._scores:
                return target.predict_proba(inputs)
            return target.predict(inputs)
        except QueryBudgetExceeded as err:
            raise _ModelFailure(429, str(err)) from err
        except DataError as err:
            raise _ModelFailure(422, str(err)) from err
        except TargetError as err:
            log.error("model %s failed on request %s: %s", self.owner.model, self.request_id, err)
            raise _ModelFailure(502, "The model failed to answer; try again later.") from err
        except (ValueError, TypeError) as err:
            raise _ModelFailure(
                422, "The inputs are not a numeric array the model accepts; check their shape."
            ) from err
        except Exception as err:
            log.exception("model %s raised on request %s", self.owner.model, self.request_id)
            raise _ModelFailure(500, "The model raised an unexpected error.") from err

    def _finish(
        self, outputs: np.ndarray | None, status: int, reason: str, decided_by: str | None
    ) -> GuardOutcome:
        if status == 200 and outputs is None:
            status = 500
        return GuardOutcome(
            request_id=self.request_id,
            model=self.owner.model,
            model_version=self.owner.model_version,
            principal=self.request.principal,
            http_status=status,
            outputs=outputs if status == 200 else None,
            reason=reason,
            decided_by=decided_by,
            events=tuple(self.events),
            headers=dict(self.headers),
            fields=dict(self.fields),
            input_digest=self._input_digest(),
            output_digest=array_digest(outputs) if outputs is not None and status == 200 else "",
            started_at=self.started,
            latency_s=time.perf_counter() - self.t0,
            n_rows=self.n_rows,
        )

    def _input_digest(self) -> str:
        """The digest of the inputs the model received (or would have), computed once."""
        if self.input_digest is None:
            self.input_digest = digest_inputs(self.request.inputs, self.owner._dtype)
        return self.input_digest


class _ModelFailure(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
