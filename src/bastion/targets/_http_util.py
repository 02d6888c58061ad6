"""Helpers of the HTTP adapter: JSON paths, ``Retry-After`` and URL redaction.

Examples
--------
>>> from bastion.targets._http_util import get_path, redact_url, set_path
>>> doc = {}
>>> set_path(doc, "inputs.rows", [[1, 2]]); doc
{'inputs': {'rows': [[1, 2]]}}
>>> get_path({"outputs": [{"p": [0.2, 0.8]}]}, "outputs.0.p")
[0.2, 0.8]
>>> redact_url("https://user:pw@api.example/v1?key=abc")
'https://user:***@api.example/v1?key=***'
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from bastion.errors import TargetError, UsageError

__all__ = ["get_path", "redact_url", "retry_after_seconds", "set_path"]


def redact_url(url: str) -> str:
    """``url`` with any password and query-string values replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = "&".join(f"{quote(k, safe='')}=***" for k, _ in pairs)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def get_path(doc: Any, path: str) -> Any:
    """The value at dotted ``path`` (digits index lists); :class:`TargetError` if absent."""
    value = doc
    for part in path.split(".") if path else []:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif (
            isinstance(value, list)
            and part.lstrip("-").isdigit()
            and -len(value) <= int(part) < len(value)
        ):
            value = value[int(part)]
        else:
            where = sorted(value)[:10] if isinstance(value, Mapping) else type(value).__name__
            raise TargetError(
                f"The endpoint's response has no {part!r} on the path {path!r} (found {where}); "
                "fix the 'response_path' option."
            )
    return value


def set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    """Put ``value`` at dotted ``path`` in ``doc``, creating objects on the way."""
    parts = path.split(".")
    node = doc
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UsageError(
                f"The 'request_key' {path!r} runs through {part!r}, which the body template "
                "already sets to a non-object; change one of them."
            )
        node = child
    node[parts[-1]] = value


def retry_after_seconds(value: str | None, cap: float) -> float | None:
    """Seconds a ``Retry-After`` header asks for (number or HTTP date), capped; None if unusable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), cap)
