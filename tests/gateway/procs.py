"""Gateway processes for the reliability tests: started on free loopback ports, always killed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

PEPPER = "q" * 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    """One ``serve()`` process in its own session (so the whole group can be killed)."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        code = (
            "from bastion.gateway.server import serve; "
            f"serve({str(config)!r}, port={self.port}, drain_s=5)"
        )
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            env={**os.environ, "BASTION_API_KEY_PEPPER": PEPPER, **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the gateway exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("the gateway did not become ready")

    def kill9(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.kill9()
        finally:
            self._log.close()


@contextmanager
def gateways(
    config: Path, log: Path, n: int = 1, env: dict[str, str] | None = None
) -> Iterator[list[GatewayProcess]]:
    """``n`` gateway processes serving ``config``; killed on exit, even on failure."""
    procs: list[GatewayProcess] = []
    try:
        for _ in range(n):
            procs.append(GatewayProcess(config, log, env))
        for p in procs:
            p.wait_ready()
        yield procs
    finally:
        for p in procs:
            p.close()


def redis_url() -> str | None:
    """The test Redis URL when a server answers PING there, else None."""
    url = os.environ.get("BASTION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
    except Exception:
        return None
    return url
