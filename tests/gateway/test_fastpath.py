"""The ASGI fast path for predictions: same answers as FastAPI's route, safe failures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from bastion.data.demo import load_breast_cancer_dataset
from bastion.gateway.app import create_app
from bastion.gateway.config import parse_gateway_text
from bastion.gateway.fastpath import Answer, GatewayApp, predict_model, render


def _scope(path: str, body: bytes, root_path: str = "") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": root_path,
        "query_string": b"",
        "headers": [
            (b"host", b"test"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }


async def _call(app: Any, scope: dict[str, Any], chunks: list[Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    queue = list(chunks)

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def test_predict_paths() -> None:
    assert predict_model("/v1/models/bc/predict") == "bc"
    for path in ("/v1/models//predict", "/v1/models/a/b/predict", "/v1/models/bc", "/healthz"):
        assert predict_model(path) is None


def test_render_is_byte_identical_to_json_response() -> None:
    answer = Answer(201, {"X-Bastion-Request-Id": "abc"}, {"outputs": [[0.25, 0.75]], "é": 1})
    headers, body = render(answer)
    reference = JSONResponse(answer.body, status_code=201, headers=answer.headers)
    assert body == reference.body
    assert sorted(headers) == sorted(reference.raw_headers)


def test_fast_path_and_route_answer_alike() -> None:
    cfg = parse_gateway_text(
        "models: [{name: bc, demo: breast_cancer, guards: [input.validation]}]"
    )
    row = load_breast_cancer_dataset().x_test[0].tolist()
    body = json.dumps({"input": row}).encode()
    app = create_app(cfg, store_url="sqlite://")
    with TestClient(app):  # runs the lifespan: the gateway is built
        fast = asyncio.run(
            _call(
                app, _scope("/v1/models/bc/predict", body), [{"type": "http.request", "body": body}]
            )
        )
        # Under a root path the request goes through FastAPI's route instead.
        routed = asyncio.run(
            _call(
                app,
                _scope("/gw/v1/models/bc/predict", body, root_path="/gw"),
                [{"type": "http.request", "body": body}],
            )
        )
    assert fast[0]["status"] == routed[0]["status"] == 200
    fast_body, routed_body = json.loads(fast[1]["body"]), json.loads(routed[1]["body"])
    assert fast_body["output"] == routed_body["output"]
    assert fast_body["request_id"] != routed_body["request_id"]


def test_failures_are_a_json_500_and_a_gone_client_gets_nothing() -> None:
    app = GatewayApp()
    calls: list[str] = []

    async def boom(model: str, headers: Mapping[str, str], stream: AsyncIterator[bytes]) -> Answer:
        calls.append(model)
        async for _ in stream:
            pass
        raise RuntimeError("secret detail")

    app.predict_answer = boom
    body = b'{"input": [1]}'
    sent = asyncio.run(
        _call(app, _scope("/v1/models/m/predict", body), [{"type": "http.request", "body": body}])
    )
    assert sent[0]["status"] == 500
    assert b"secret detail" not in sent[1]["body"] and b"error" in sent[1]["body"]
    gone = asyncio.run(_call(app, _scope("/v1/models/m/predict", body), []))
    assert gone == [] and calls == ["m", "m"]


def test_chunked_body_is_joined() -> None:
    app = GatewayApp()
    seen: list[bytes] = []

    async def echo(model: str, headers: Mapping[str, str], stream: AsyncIterator[bytes]) -> Answer:
        seen.append(b"".join([c async for c in stream]))
        return Answer(200, {}, {"ok": True})

    app.predict_answer = echo
    parts = [
        {"type": "http.request", "body": b'{"in', "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b'put": 1}', "more_body": False},
    ]
    sent = asyncio.run(_call(app, _scope("/v1/models/m/predict", b""), parts))
    assert seen == [b'{"input": 1}'] and sent[0]["status"] == 200


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_other_methods_go_through_fastapi(method: str) -> None:
    app = GatewayApp()

    async def never(*args: Any) -> Answer:
        raise AssertionError("the fast path took a non-POST request")

    app.predict_answer = never
    scope = _scope("/v1/models/m/predict", b"")
    scope["method"] = method
    sent = asyncio.run(_call(app, scope, [{"type": "http.request", "body": b""}]))
    assert sent[0]["status"] == 404  # no such route in this bare app


def test_added_middleware_sees_predictions() -> None:
    app = GatewayApp()
    seen: list[str] = []

    async def fast(model: str, headers: Mapping[str, str], stream: AsyncIterator[bytes]) -> Answer:
        raise AssertionError("the fast path bypassed the middleware")

    class Spy:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            seen.append(scope["path"])
            await self.inner(scope, receive, send)

    app.predict_answer = fast
    app.add_middleware(Spy)
    sent = asyncio.run(
        _call(app, _scope("/v1/models/m/predict", b""), [{"type": "http.request", "body": b""}])
    )
    assert seen == ["/v1/models/m/predict"] and sent[0]["status"] == 404
