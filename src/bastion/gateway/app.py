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
``instances``, too large — get a 4xx that names the field, never a 5xx.

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

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from bastion.errors import BastionError, StoreError
from bastion.gateway.build import Gateway, build_gateway
from bastion.gateway.config import GatewayConfig
from bastion.gateway.metrics import LatencyHistogram, drift_text
from bastion.guards.base import GuardRequest
from bastion.guards.pipeline import REQUEST_ID_HEADER

__all__ = ["PredictRequest", "create_app"]

log = logging.getLogger("bastion.gateway")


class PredictRequest(BaseModel):
    """Body of a prediction request: exactly one of ``input`` and ``instances``."""

    input: list[Any] | None = Field(None, description="One input row (nested lists of numbers).")
    instances: list[list[Any]] | None = Field(None, description="A batch of input rows.")


_REQUEST_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
    }
}


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _parse(raw: bytes, limit: int) -> tuple[Any, bool] | JSONResponse:
    """The inputs and whether it was a single row, or a 4xx response."""
    if len(raw) > limit:
        return _error(413, f"The body has {len(raw)} bytes; the limit is {limit}.")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return _error(
            400, 'The body is not valid JSON; send {"input": [...]} or {"instances": [[...], ...]}.'
        )
    if not isinstance(body, dict):
        return _error(400, "The body must be a JSON object with 'input' or 'instances'.")
    unknown = sorted(set(body) - {"input", "instances"})
    if unknown:
        return _error(400, f"Unknown field(s) {unknown[:5]}; send 'input' or 'instances'.")
    if ("input" in body) == ("instances" in body):
        return _error(400, "Send exactly one of 'input' (one row) or 'instances' (a batch).")
    if "input" in body:
        if not isinstance(body["input"], list):
            return _error(400, "'input' must be a list (one row of numbers).")
        return [body["input"]], True
    if not isinstance(body["instances"], list) or not body["instances"]:
        return _error(400, "'instances' must be a non-empty list of rows.")
    return body["instances"], False


def create_app(
    config: GatewayConfig, *, store_url: str | None = None, gateway: Gateway | None = None
) -> FastAPI:
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

    app = FastAPI(
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

    @app.post(
        "/v1/models/{model}/predict",
        openapi_extra=_REQUEST_SCHEMA,
        responses={
            200: {"description": "The guarded answer."},
            202: {"description": "Withheld for review."},
            400: {"description": "Malformed body."},
            401: {"description": "Missing or invalid credentials."},
            403: {"description": "Not allowed for this model."},
            404: {"description": "Unknown model."},
            413: {"description": "Too large."},
            422: {"description": "Invalid inputs."},
            429: {"description": "Budget or rate exceeded."},
        },
    )
    async def predict(model: str, request: Request) -> JSONResponse:
        t0 = time.perf_counter()
        gw = _gw()
        served = gw.models.get(model)
        if served is None:
            return _error(404, f"No model {model[:64]!r} is served here; see GET /v1/models.")
        parsed = _parse(await request.body(), gw.config.max_body_bytes)
        if isinstance(parsed, JSONResponse):
            latency.observe(model, parsed.status_code, time.perf_counter() - t0)
            return parsed
        inputs, single = parsed
        req = GuardRequest(
            principal="anonymous", model=model, inputs=inputs, headers=dict(request.headers)
        )
        try:
            outcome = await run_in_threadpool(served.guarded.handle, req)
        except StoreError as err:
            log.error("audit store failed", extra={"fields": {"model": model, "error": str(err)}})
            return _error(503, "The audit log is unavailable; the answer was not released.")
        except BastionError as err:
            log.error("pipeline failed", extra={"fields": {"model": model, "error": str(err)}})
            return _error(500, "The gateway failed to handle the request.")
        body = outcome.body()
        if single and outcome.allowed:
            body["output"] = body["outputs"][0]
        headers = {str(k): str(v) for k, v in outcome.headers.items()}
        headers[REQUEST_ID_HEADER] = outcome.request_id
        elapsed = time.perf_counter() - t0
        latency.observe(model, outcome.http_status, elapsed)
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
        return JSONResponse(body, status_code=outcome.http_status, headers=headers)

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
            return _error(503, "The gateway is starting or stopping.")
        try:
            await run_in_threadpool(_ping, _gw())
        except Exception:
            return _error(503, "The store does not answer.")
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
        text = gw.metrics.prometheus_text() + latency.prometheus_text() + drift_text(drift)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    return app


def _ping(gw: Gateway) -> None:
    from sqlalchemy import text

    with gw.db.session("check the store in") as session:
        session.execute(text("SELECT 1"))
