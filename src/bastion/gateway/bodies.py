"""Reading and checking prediction bodies before the guard pipeline sees them.

:func:`read_body` enforces the byte limit while reading — a declared
``Content-Length`` over the limit is refused before a byte is read, and a chunked
body is cut off as soon as it passes the limit — and :func:`parse_body` turns the
bytes into the rows the pipeline gets. Each refusal is a :class:`Rejection` with two
texts: ``message`` for the client, which may quote what the client sent (a field
name, the model name), and ``audit_reason``, a fixed sentence per ``code`` that
quotes nothing the client sent, for the audit log.

Examples
--------
>>> parse_body(b'{"input": [1, 2]}')
([[1, 2]], True)
>>> r = parse_body(b'{"input": [1], "secret": 1}')
>>> r.status, r.code, r.audit_reason
(400, 'body.unknown_fields', "The body has fields other than 'input' and 'instances'.")
>>> "secret" in r.message, "secret" in r.audit_reason
(True, False)
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from bastion.guards.canonical import sha256_hex

__all__ = ["Rejection", "model_label", "parse_body", "read_body", "reject"]

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_AUDIT_REASONS = {
    "model.unknown": "No model of the requested name is served.",
    "body.too_large": "The body is larger than the gateway's max_body_bytes.",
    "body.not_json": "The body is not valid JSON.",
    "body.not_object": "The body is not a JSON object.",
    "body.unknown_fields": "The body has fields other than 'input' and 'instances'.",
    "body.one_of": "The body has both or neither of 'input' and 'instances'.",
    "body.input_not_list": "'input' is not a list.",
    "body.instances_not_list": "'instances' is not a non-empty list.",
}


@dataclass(frozen=True)
class Rejection:
    """A request refused before the pipeline: status, stable code and two texts."""

    status: int
    code: str
    message: str
    body_bytes: int = 0
    body_digest: str = ""

    @property
    def audit_reason(self) -> str:
        """The sentence the audit log records (nothing the client sent)."""
        return _AUDIT_REASONS[self.code]


def reject(
    status: int, code: str, message: str, body: bytes | None = None, *, size: int = 0
) -> Rejection:
    """A :class:`Rejection`, with the size and SHA-256 digest of ``body`` when it was read."""
    if code not in _AUDIT_REASONS:
        raise ValueError(f"unknown rejection code {code!r}")
    if body is None:
        return Rejection(status, code, message, size)
    return Rejection(status, code, message, len(body), f"sha256:{sha256_hex(body)}")


def model_label(name: str) -> str:
    """``name`` when it could be a model name, else its digest (nothing odd is recorded).

    Examples
    --------
    >>> model_label("digits"), model_label("Bearer abc")[:7]
    ('digits', 'sha256:')
    """
    if _MODEL_NAME.match(name):
        return name
    return f"sha256:{sha256_hex(name.encode('utf-8', 'surrogatepass'))}"


async def read_body(
    headers: Mapping[str, str], stream: AsyncIterator[bytes], limit: int
) -> bytes | Rejection:
    """The body, or a 413 :class:`Rejection` as soon as it is known to pass ``limit``."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        size = int(declared)
        return reject(
            413, "body.too_large", f"The body has {size} bytes; the limit is {limit}.", size=size
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            return reject(
                413, "body.too_large", f"The body has more than {limit} bytes.", size=size
            )
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(raw: bytes) -> tuple[list[Any], bool] | Rejection:
    """The rows and whether the body held a single ``input``, or a 400 :class:`Rejection`."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return reject(
            400,
            "body.not_json",
            'The body is not valid JSON; send {"input": [...]} or {"instances": [[...], ...]}.',
            raw,
        )
    if not isinstance(body, dict):
        return reject(
            400,
            "body.not_object",
            "The body must be a JSON object with 'input' or 'instances'.",
            raw,
        )
    unknown = sorted(set(body) - {"input", "instances"})
    if unknown:
        return reject(
            400,
            "body.unknown_fields",
            f"Unknown field(s) {unknown[:5]}; send 'input' or 'instances'.",
            raw,
        )
    if ("input" in body) == ("instances" in body):
        return reject(
            400,
            "body.one_of",
            "Send exactly one of 'input' (one row) or 'instances' (a batch).",
            raw,
        )
    if "input" in body:
        if not isinstance(body["input"], list):
            return reject(
                400, "body.input_not_list", "'input' must be a list (one row of numbers).", raw
            )
        return [body["input"]], True
    if not isinstance(body["instances"], list) or not body["instances"]:
        return reject(
            400, "body.instances_not_list", "'instances' must be a non-empty list of rows.", raw
        )
    return body["instances"], False
