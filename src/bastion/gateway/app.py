"""The gateway's HTTP application: FastAPI in front of each model's guard pipeline.

Endpoints
---------
``POST /v1/models/{model}/predict``
    ``{"input": [...]}`` (one row) or ``{"instances": [[...], ...]}`` (a batch). The body
    goes through :meth:`bastion.guards.Guarded.handle` in a worker thread; the outcome's
    status, headers (``Retry-After``, ``WWW-Authenticate``, the signature) and body are
    returned as they are, with ``x-bastion-request-id`` on every answer.
``GET /healthz``, ``GET /readyz``
    Liveness, and readiness (503 while the gateway is stopping or the store is down).
``GET /metrics``
    Prometheus text: requests, denials and flags by guard, a latency histogram, drift.
``GET /docs``, ``GET /openapi.json``
    The interactive API documentation and its schema.

Client mistakes — a body that is not JSON, not an object, without ``input`` or
``instances``, too large, an unknown model — get a 4xx that names the field, never a
5xx. They are refused before the pipeline but audited like every other answer: an
entry of kind ``rejected`` with the status, a stable code (``body.not_json``, ...),
a fixed reason, the body's size and SHA-256 digest — never the body itself or any
credential — written before the 4xx is sent.

Examples
--------
>>> from fastapi.testclient import TestClient
>>> from bastion.data.demo import load_breast_cancer_dataset
>>> from bastion.gateway.config import parse_gateway_text
>>> row = load_breast_cancer_dataset().x_test[0].tolist()
>>> cfg = parse_gateway_text(
...     "models: [{name: bc, demo: breast_cancer, guards: [input.validation]}]")
>>> with TestClient(create_app(cfg, store_url="sqlite://")) as client:
...     ok = client.post("/v1/models/bc/predict", json={"input": row})
...     bad = client.post("/v1/models/bc/predict", content=b"{nope")
>>> ok.status_code, len(ok.json()["output"]), bad.status_code
(200, 2, 400)
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from bastion.errors import BastionError, StoreError
from bastion.gateway.bodies import Rejection, model_label, parse_body, read_body, reject
from bastion.gateway.build import Gateway, ServedModel, build_gateway
from bastion.gateway.config import GatewayConfig
from bastion.gateway.fastpath import Answer, GatewayApp
from bastion.gateway.metrics import LatencyHistogram, audit_text, drift_text
from bastion.guards.audit import entry_fields
from bastion.guards.base import GuardRequest
from bastion.guards.outcome import GuardOutcome
from bastion.guards.pipeline import REQUEST_ID_HEADER

__all__ = ["PredictRequest", "create_app"]

log = logging.getLogger("bastion.gateway")


class PredictRequest(BaseModel):
    """Body of a prediction request: exactly one of ``input`` and ``instances``."""

    input: list[Any] | None = Field(None, description="One input row (nested lists of numbers).")
    instances: list[list[Any]] | None = Field(None, description="A batch of input rows.")


_RESPONSES = {
    "200": "The guarded answer.",
    "202": "Withheld for review.",
    "400": "Malformed body.",
    "401": "Missing or invalid credentials.",
    "403": "Not allowed for this model.",
    "404": "Unknown model.",
    "413": "Too large.",
    "422": "Invalid inputs.",
    "429": "Budget or rate exceeded.",
    "503": "The audit store or Redis is unavailable; nothing was released.",
}

PREDICT_PATH = "/v1/models/{model}/predict"

_PREDICT_OPERATION = {
    "summary": "Predict",
    "description": "One row (`input`) or a batch (`instances`) through the model's guards.",
    "operationId": "predict",
    "parameters": [{"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
    },
    "responses": {code: {"description": text} for code, text in _RESPONSES.items()},
}
"""The OpenAPI operation of the predict route (a plain Starlette route, see create_app)."""


REJECTED_BY = "gateway.http"
"""``decided_by`` of requests refused before the pipeline (metrics and audit)."""

_UNKNOWN_MODEL = "(unknown)"


def _error(status: int, message: str, **extra: Any) -> Answer:
    return Answer(status, {}, {"error": message, **extra})


def _rejection_entry(
    rejection: Rejection, request_id: str, requested: str, served: bool, t0: float
) -> tuple[GuardOutcome, dict[str, Any]]:
    """The outcome counted by metrics and the audit entry's fields for a rejection.

    ``requested`` is the model named in the URL; an unknown one is recorded only as
    :func:`~bastion.gateway.bodies.model_label` gives it, and counted as ``(unknown)``.
    """
    latency_s = time.perf_counter() - t0
    outcome = GuardOutcome(
        request_id=request_id,
        model=requested if served else _UNKNOWN_MODEL,
        model_version="",
        principal="anonymous",
        http_status=rejection.status,
        outputs=None,
        reason=rejection.audit_reason,
        decided_by=REJECTED_BY,
        input_digest=rejection.body_digest,
        started_at=time.time() - latency_s,
        latency_s=latency_s,
    )
    fields = entry_fields(outcome, kind="rejected")
    fields["code"] = rejection.code
    fields["body_bytes"] = rejection.body_bytes
    if not served:
        del fields["model"]
        fields["requested_model"] = model_label(requested)
    return outcome, fields


def create_app(
    config: GatewayConfig, *, store_url: str | None = None, gateway: Gateway | None = None
) -> GatewayApp:
    """The gateway application for ``config`` (models load when the app starts).

    Parameters
    ----------
    config : GatewayConfig
    store_url : str or None
        Overrides the config's store (tests use ``"sqlite://"``).
    gateway : Gateway or None
        An already built gateway to serve (it is closed when the app stops).
    """
    state: dict[str, Any] = {"gateway": gateway, "stopping": False}
    latency = LatencyHistogram()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state["gateway"] is None:
            state["gateway"] = await run_in_threadpool(build_gateway, config, store_url=store_url)
        gw: Gateway = state["gateway"]
        log.info("gateway ready", extra={"fields": {"models": sorted(gw.models)}})
        try:
            yield
        finally:
            state["stopping"] = True
            gw.close()
            log.info("gateway stopped; audit log checkpointed")

    app = GatewayApp(
        title="Bastion gateway",
        version="1",
        description="Guarded model predictions (authentication, budgets, validation, "
        "detection, signed outputs, audit).",
        lifespan=lifespan,
    )

    def _gw() -> Gateway:
        gw = state["gateway"]
        assert gw is not None
        return gw  # type: ignore[no-any-return]

    async def answer(
        model: str, headers: Mapping[str, str], stream: AsyncIterator[bytes]
    ) -> Answer:
        """Status, headers and JSON body for a prediction request (any transport)."""
        t0 = time.perf_counter()
        gw = _gw()
        served = gw.models.get(model)
        if served is None:
            return await _rejected(
                gw,
                reject(
                    404,
                    "model.unknown",
                    f"No model {model[:64]!r} is served here; see GET /v1/models.",
                ),
                model,
                t0,
            )
        raw = await read_body(headers, stream, gw.config.max_body_bytes)
        parsed = raw if isinstance(raw, Rejection) else parse_body(raw)
        if isinstance(parsed, Rejection):
            return await _rejected(gw, parsed, model, t0)
        inputs: Any = parsed[0]  # rows as parsed; the pipeline validates them
        single = parsed[1]
        req = GuardRequest(principal="anonymous", model=model, inputs=inputs, headers=dict(headers))
        try:
            outcome = await _handle(gw, served, req)
        except StoreError as err:
            log.error("audit store failed", extra={"fields": {"model": model, "error": str(err)}})
            return _error(503, "The audit log is unavailable; the answer was not released.")
        except BastionError as err:
            log.error("pipeline failed", extra={"fields": {"model": model, "error": str(err)}})
            return _error(500, "The gateway failed to handle the request.")
        body = outcome.body()
        if single and outcome.allowed:
            body["output"] = body["outputs"][0]
        out_headers = {str(k): str(v) for k, v in outcome.headers.items()}
        out_headers[REQUEST_ID_HEADER] = outcome.request_id
        elapsed = time.perf_counter() - t0
        latency.observe(model, outcome.http_status, elapsed)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "request",
                extra={
                    "fields": {
                        "request_id": outcome.request_id,
                        "model": model,
                        "principal": outcome.principal,
                        "status": outcome.http_status,
                        "decided_by": outcome.decided_by,
                        "rows": outcome.n_rows,
                        "latency_ms": round(elapsed * 1000, 3),
                    }
                },
            )
        return Answer(outcome.http_status, out_headers, body)

    async def _rejected(gw: Gateway, rejection: Rejection, model: str, t0: float) -> Answer:
        """Audit a request refused before the pipeline, count it, then answer it."""
        request_id = uuid.uuid4().hex
        outcome, fields = _rejection_entry(rejection, request_id, model, model in gw.models, t0)
        try:
            if gw.audit_writer is not None:
                await gw.audit_writer.append(fields)
            else:
                await run_in_threadpool(gw.audit.append, fields)
        except StoreError as err:
            log.error("audit store failed", extra={"fields": {"error": str(err)}})
            return _error(503, "The audit log is unavailable; the answer was not released.")
        gw.metrics.record(outcome)
        elapsed = time.perf_counter() - t0
        latency.observe(outcome.model, rejection.status, elapsed)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "rejected",
                extra={
                    "fields": {
                        "request_id": request_id,
                        "model": outcome.model,
                        "status": rejection.status,
                        "code": rejection.code,
                        "latency_ms": round(elapsed * 1000, 3),
                    }
                },
            )
        return Answer(
            rejection.status,
            {REQUEST_ID_HEADER: request_id},
            {"error": rejection.message, "request_id": request_id},
        )

    async def predict(request: Request) -> JSONResponse:
        status, headers, body = await answer(
            request.path_params["model"], request.headers, request.stream()
        )
        return JSONResponse(body, status_code=status, headers=headers)

    # The hot path bypasses FastAPI: GatewayApp answers predict requests straight from
    # ASGI (bastion.gateway.fastpath), and this plain Starlette route serves them only
    # if the app is mounted under a prefix. Its OpenAPI operation is added below.
    app.add_route(PREDICT_PATH, predict, methods=["POST"], include_in_schema=False)
    app.predict_answer = answer

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("paths", {})[PREDICT_PATH] = {"post": _PREDICT_OPERATION}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        gw = _gw()
        return {
            "models": [
                {
                    "name": name,
                    "version": s.guarded.model_version,
                    "classes": list(s.target.classes),
                    "input_shape": list(s.target.input_spec.shape),
                    "guards": [g.meta.id for g in s.guarded.guards],
                }
                for name, s in sorted(gw.models.items())
            ]
        }

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        if state["stopping"] or state["gateway"] is None:
            return JSONResponse({"error": "The gateway is starting or stopping."}, 503)
        try:
            await run_in_threadpool(_ping, _gw())
        except Exception:
            return JSONResponse({"error": "The store does not answer."}, 503)
        return JSONResponse({"status": "ready", "models": sorted(_gw().models)})

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        gw = _gw()
        drift = {
            name: getattr(g, "monitor", None)
            for name, s in gw.models.items()
            for g in s.guarded.guards
            if g.meta.id == "input.drift"
        }
        text = (
            gw.metrics.prometheus_text()
            + latency.prometheus_text()
            + drift_text(drift)
            + audit_text(gw.audit)
        )
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    return app


async def _handle(gw: Gateway, served: ServedModel, req: GuardRequest) -> GuardOutcome:
    """Run ``req`` through ``served``'s pipeline where its execution choice says.

    Inline: the pipeline runs on the event loop and the audit entry is committed by the
    writer thread (awaited before anything else records the outcome or the answer is
    sent). Threadpool: :meth:`Guarded.handle` does all of it in a worker thread.
    """
    guarded = served.guarded
    if not served.execution.inline or gw.audit_writer is None:
        return await run_in_threadpool(guarded.handle, req)
    outcome = guarded.run(req)
    await gw.audit_writer.record(outcome)
    guarded.record(outcome, [s for s in guarded.sinks if s is not gw.audit])
    return outcome


def _ping(gw: Gateway) -> None:
    from sqlalchemy import text

    with gw.db.session("check the store in") as session:
        session.execute(text("SELECT 1"))
