"""Schemathesis against the gateway's own OpenAPI schema: no 5xx for any generated call.

The gateway runs under uvicorn in a thread on a free loopback port, so every call goes
through the real HTTP stack and the app's lifespan runs once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")

import uvicorn  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

from bastion.gateway.app import create_app  # noqa: E402
from bastion.gateway.config import parse_gateway_text  # noqa: E402
from tests.gateway.procs import free_port  # noqa: E402


@pytest.fixture(scope="module")
def api_schema() -> Iterator[Any]:
    cfg = parse_gateway_text(
        "models:\n  - name: bc\n    demo: breast_cancer\n    guards: [input.validation]\n"
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(cfg, store_url="sqlite://"), host="127.0.0.1", port=port, log_level="error"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_no_server_errors(api_schema: Any) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert any(op.path == "/v1/models/{model}/predict" for op in operations)
    seen: list[int] = []

    for op in operations:

        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def check(case: Any) -> None:
            response = case.call()
            seen.append(response.status_code)
            assert response.status_code < 500, (case.method, case.path, response.status_code)

        check()
    assert len(seen) >= len(operations)
