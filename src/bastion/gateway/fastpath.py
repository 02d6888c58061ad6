"""The prediction hot path straight from ASGI, in front of the FastAPI application.

FastAPI wraps every request in about six middleware layers (error pages, telemetry,
body limits, exception handlers, an exit stack, the router) and builds Starlette
``Request`` and ``Response`` objects; for a small model that is a measurable share of
each request (about 90 µs of CPU per request on the benchmark machine, against a
handler answering straight from ASGI). :class:`GatewayApp` is the FastAPI application
with one difference: a ``POST /v1/models/{model}/predict`` is answered directly by the
transport-neutral handler the app registers as ``predict_answer`` (the same one the
plain Starlette route uses), and everything else — the other endpoints, the OpenAPI
documents, lifespan events — goes through FastAPI as usual. Once middleware is added
to the app (``app.add_middleware``), or when it is mounted under a root path,
predictions go through FastAPI too, so that middleware sees every request.

The fast path keeps what the skipped layers give a prediction: an unexpected exception
is logged and answered with a JSON 500 (never a traceback); a client that disconnects
before its body arrived gets no answer, and its request never reaches the pipeline;
the response is the same compact UTF-8 JSON, with ``content-length`` and
``content-type``, that ``JSONResponse`` sends.

Examples
--------
>>> predict_model("/v1/models/digits/predict"), predict_model("/v1/models/a/b/predict")
('digits', None)
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from typing import Any, NamedTuple

from fastapi import FastAPI
from starlette.datastructures import Headers

__all__ = ["Answer", "GatewayApp", "predict_model"]

log = logging.getLogger("bastion.gateway")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_PREFIX = "/v1/models/"
_SUFFIX = "/predict"


class Answer(NamedTuple):
    """A prediction answer before it is put on the wire."""

    status: int
    headers: dict[str, str]
    body: dict[str, Any]


AnswerFn = Callable[[str, Mapping[str, str], AsyncIterator[bytes]], Awaitable[Answer]]


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


def predict_model(path: str) -> str | None:
    """The model named by a predict path, or None when ``path`` is not one."""
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return None
    model = path[len(_PREFIX) : -len(_SUFFIX)]
    return model if model and "/" not in model else None


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def render(answer: Answer) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Raw ASGI headers and body bytes for ``answer`` (as ``JSONResponse`` renders it)."""
    body = json.dumps(
        answer.body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")
    headers = [
        (b"content-length", str(len(body)).encode("latin-1")),
        (b"content-type", b"application/json"),
    ]
    headers.extend(
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()
    )
    return headers, body


class GatewayApp(FastAPI):
    """FastAPI, with predict requests answered straight from ASGI (see the module)."""

    predict_answer: AnswerFn | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = self.predict_answer
        if (
            answer is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and not scope.get("root_path")
            and not self.user_middleware  # added middleware must see every request
        ):
            model = predict_model(scope["path"])
            if model is not None:
                await _serve(answer, model, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


async def _serve(answer: AnswerFn, model: str, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        result = await answer(model, Headers(scope=scope), _body(receive))
        headers, body = render(result)
    except ClientGone:
        return
    except Exception:
        log.exception("the predict handler failed")
        result = Answer(500, {}, {"error": "The gateway failed to handle the request."})
        headers, body = render(result)
    await send({"type": "http.response.start", "status": result.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
