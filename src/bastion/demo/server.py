"""A loopback JSON endpoint serving a target, so the demo has a black-box API to probe.

The server answers ``POST /predict`` with ``{"instances": [[...], ...]}`` by returning
``{"predictions": [[p0, p1, ...], ...]}`` — the shape most model servers use. It has
no authentication and no rate limit on purpose: it plays the unprotected deployment
that ``exposure.query_limits`` and ``exposure.output_granularity`` are there to catch.
It binds to 127.0.0.1 on a free port and stops when the ``with`` block ends.

Examples
--------
>>> import httpx
>>> from bastion.targets import FakeTarget
>>> model = FakeTarget.linear(n_features=2, n_classes=2, seed=0)
>>> with serve_target(model) as url:
...     reply = httpx.post(url, json={"instances": [[0.1, 0.9]]}).json()
>>> len(reply["predictions"][0])
2
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from bastion.errors import BastionError
from bastion.targets.base import Target

__all__ = ["serve_target"]

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20  # 1 MiB is plenty for the demo's batches


def _handler(target: Target) -> type[BaseHTTPRequestHandler]:
    class PredictHandler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            log.debug("demo server: " + format, *args)

        def _reply(self, status: int, payload: dict[str, object]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            if self.path != "/predict":
                self._reply(404, {"error": "use POST /predict"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_BODY:
                self._reply(413 if length > MAX_BODY else 400, {"error": "bad body size"})
                return
            try:
                rows = np.asarray(json.loads(self.rfile.read(length))["instances"], dtype=float)
                scores = target.predict_proba(rows)
            except (ValueError, KeyError, TypeError, BastionError) as err:
                self._reply(400, {"error": str(err)})
                return
            self._reply(200, {"predictions": scores.tolist()})

    return PredictHandler


@contextmanager
def serve_target(target: Target) -> Iterator[str]:
    """Serve ``target`` on a free loopback port; yields the ``/predict`` URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(target))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="bastion-demo-server")
    thread.daemon = True
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host!s}:{port}/predict"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
