"""Structured JSON logs for the gateway: one JSON object per line, no secrets, no inputs.

Examples
--------
>>> import logging
>>> rec = logging.LogRecord("bastion.gateway", logging.INFO, "f.py", 1, "ready", None, None)
>>> rec.fields = {"model": "digits", "authorization": "Bearer x"}
>>> line = JsonFormatter().format(rec)
>>> '"model": "digits"' in line, "Bearer" in line
(True, False)
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

__all__ = ["JsonFormatter", "configure_logging"]

_REDACT = ("authorization", "x-api-key", "secret", "password", "token", "pepper", "key")


class JsonFormatter(logging.Formatter):
    """Formats records as JSON; ``record.fields`` (a dict) is merged in, secrets dropped."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for k, v in fields.items():
                if any(word in str(k).lower() for word in _REDACT) and k != "key_id":
                    continue
                out[str(k)] = v
        if record.exc_info and record.exc_info[0] is not None:
            out["error"] = record.exc_info[0].__name__
        return json.dumps(out, default=str)


def configure_logging(level: str = "info") -> None:
    """Send the ``bastion`` and ``uvicorn`` loggers to stderr as JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    for name in ("bastion", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
