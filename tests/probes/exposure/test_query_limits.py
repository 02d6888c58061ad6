"""Tests for the exposure.query_limits probe against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import numpy as np
import pytest

from bastion.data import Dataset
from bastion.errors import MissingCapabilityError, UsageError
from bastion.findings import Finding, Severity, Status
from bastion.probes import ProbeContext
from bastion.probes.exposure.query_limits import QueryLimitsProbe, is_loopback_url
from bastion.targets import Capability, FakeTarget, InputSpec, Target

TOKEN = "s3cret"


class ModelServer:
    """A tiny model API: optional bearer token, optional rate limit, optional headers."""

    def __init__(
        self,
        *,
        token: str | None = None,
        limit: int | None = None,
        advertise: int | None = None,
        status: int | None = None,
        delay: float = 0.0,
    ) -> None:
        self.token, self.limit, self.advertise = token, limit, advertise
        self.forced_status, self.delay = status, delay
        self.answered = 0
        self.requests = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server.lock:
                    server.requests += 1
                if server.delay:
                    time.sleep(server.delay)
                if server.forced_status is not None:
                    return self._send(server.forced_status, {"error": "down"})
                if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
                    return self._send(401, {"error": "unauthorised"})
                with server.lock:
                    if server.limit is not None and server.answered >= server.limit:
                        return self._send(429, {"error": "slow down"}, {"Retry-After": "1"})
                    server.answered += 1
                    used = server.answered
                extra = {}
                if server.advertise is not None:
                    extra = {
                        "X-RateLimit-Limit": str(server.advertise),
                        "X-RateLimit-Remaining": str(server.advertise - used),
                    }
                rows = body.get("inputs", [])
                scores = [[1 - float(r[0]), float(r[0])] for r in rows]
                return self._send(200, {"scores": scores}, extra)

            def _send(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        port = self.httpd.server_address[1]
        return f"http://127.0.0.1:{port}/predict"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class EndpointTarget(Target):
    """A minimal HTTP target implementing SupportsEndpoint on top of httpx."""

    kind = "test_endpoint"
    provides: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LABELS, Capability.PROBABILITIES, Capability.ENDPOINT}
    )

    def __init__(
        self, url: str, *, token: str | None = None, query_budget: int | None = None
    ) -> None:
        super().__init__(
            name="endpoint",
            input_spec=InputSpec(shape=(4,), lower=0.0, upper=1.0),
            classes=["neg", "pos"],
            query_budget=query_budget,
        )
        self.url = url
        self.token = token
        self.client = httpx.Client(timeout=5.0, trust_env=False)

    def _headers(self, authenticated: bool) -> dict[str, str]:
        if authenticated and self.token:
            return {"Authorization": f"Bearer {self.token}"}
        return {}

    def send_raw(
        self, rows: np.ndarray, *, authenticated: bool = True
    ) -> tuple[int, dict[str, str]]:
        arr = self._prepare(rows)
        self.budget.charge(len(arr))
        r = self.client.post(
            self.url, json={"inputs": arr.tolist()}, headers=self._headers(authenticated)
        )
        return r.status_code, dict(r.headers)

    def _predict_proba(self, x: np.ndarray) -> np.ndarray:
        r = self.client.post(self.url, json={"inputs": x.tolist()}, headers=self._headers(True))
        r.raise_for_status()
        return np.asarray(r.json()["scores"], dtype=np.float64)


def _data() -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.random((20, 4)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    return Dataset("toy", x[:10], y[:10], x[10:], y[10:], classes=["neg", "pos"])


@pytest.fixture
def server_factory() -> Iterator[Any]:
    servers: list[ModelServer] = []

    def make(**kw: Any) -> ModelServer:
        s = ModelServer(**kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def _by_variant(findings: list[Finding]) -> dict[str, Finding]:
    assert len(findings) == 2
    return {f.variant: f for f in findings}


def _value(f: Finding, name: str) -> Any:
    metric = f.metric(name)
    assert metric is not None, name
    return metric.value


def test_open_endpoint_is_vulnerable_twice(server_factory: Any) -> None:
    server = server_factory()
    target = EndpointTarget(server.url)
    found = _by_variant(QueryLimitsProbe(burst=30).run(target, _data(), ProbeContext()))
    auth, rl = found["authentication"], found["rate_limit"]
    assert auth.status is Status.VULNERABLE
    assert auth.severity is Severity.MODERATE
    assert _value(auth, "unauthenticated_status") == 200
    assert auth.remedies == ["AML.M0019"]
    assert auth.catalog.atlas_mitigations == ["AML.M0019"]
    assert rl.status is Status.VULNERABLE
    assert rl.severity is Severity.MODERATE
    assert _value(rl, "requests_sent") == 30 and _value(rl, "requests_answered") == 30
    assert _value(rl, "first_429_after") is None
    assert rl.remedies == ["AML.M0004"]
    assert "AML.T0034" in rl.catalog.atlas_techniques
    assert server.requests == 31
    assert target.queries_used == 31


def test_authenticated_rate_limited_endpoint_is_not_vulnerable(server_factory: Any) -> None:
    server = server_factory(token=TOKEN, limit=12)
    target = EndpointTarget(server.url, token=TOKEN)
    found = _by_variant(QueryLimitsProbe(burst=60).run(target, _data(), ProbeContext()))
    auth, rl = found["authentication"], found["rate_limit"]
    assert auth.status is Status.NOT_VULNERABLE
    assert _value(auth, "unauthenticated_status") == 401
    assert auth.severity is Severity.NONE and auth.remedies == []
    assert rl.status is Status.NOT_VULNERABLE
    assert _value(rl, "first_429_after") == 12
    assert _value(rl, "requests_sent") == 13  # stops at the first 429
    assert "retry-after" in str(_value(rl, "rate_limit_headers"))
    assert "429 after 12" in rl.summary
    assert server.requests == 14


def test_advertised_limit_not_reached_is_not_vulnerable(server_factory: Any) -> None:
    server = server_factory(advertise=1000)
    found = _by_variant(
        QueryLimitsProbe(burst=25).run(EndpointTarget(server.url), _data(), ProbeContext())
    )
    rl = found["rate_limit"]
    assert rl.status is Status.NOT_VULNERABLE
    assert "x-ratelimit-limit" in str(_value(rl, "rate_limit_headers"))
    assert found["authentication"].status is Status.VULNERABLE


def test_failing_endpoint_is_inconclusive(server_factory: Any) -> None:
    server = server_factory(status=503)
    found = _by_variant(
        QueryLimitsProbe(burst=10).run(EndpointTarget(server.url), _data(), ProbeContext())
    )
    assert found["authentication"].status is Status.INCONCLUSIVE
    assert found["rate_limit"].status is Status.INCONCLUSIVE
    assert _value(found["rate_limit"], "requests_sent") == 10


def test_wrong_credentials_make_the_burst_inconclusive(server_factory: Any) -> None:
    server = server_factory(token=TOKEN)
    target = EndpointTarget(server.url, token="wrong")
    found = _by_variant(QueryLimitsProbe(burst=10).run(target, _data(), ProbeContext()))
    assert found["authentication"].status is Status.NOT_VULNERABLE
    rl = found["rate_limit"]
    assert rl.status is Status.INCONCLUSIVE
    assert _value(rl, "requests_sent") == 1
    assert "refused (401)" in str(rl.evidence[0].data)


def test_time_limit_bounds_the_burst(server_factory: Any) -> None:
    server = server_factory(delay=0.05)
    target = EndpointTarget(server.url)
    start = time.monotonic()
    found = _by_variant(
        QueryLimitsProbe(burst=500, max_seconds=0.3).run(target, _data(), ProbeContext())
    )
    assert time.monotonic() - start < 3.0
    rl = found["rate_limit"]
    assert 1 <= _value(rl, "requests_sent") < 20
    assert rl.status is Status.INCONCLUSIVE
    assert "time limit" in rl.summary


def test_query_budget_stops_the_burst(server_factory: Any) -> None:
    server = server_factory()
    target = EndpointTarget(server.url, query_budget=6)
    found = _by_variant(QueryLimitsProbe(burst=60).run(target, _data(), ProbeContext()))
    rl = found["rate_limit"]
    assert _value(rl, "requests_sent") == 5
    assert rl.status is Status.INCONCLUSIVE
    assert "query budget" in rl.summary
    assert server.requests == 6


class _RemoteTarget(EndpointTarget):
    def send_raw(
        self, rows: np.ndarray, *, authenticated: bool = True
    ) -> tuple[int, dict[str, str]]:
        raise AssertionError("the probe must not send to a remote host")


def test_remote_host_is_refused_without_allow_remote() -> None:
    target = _RemoteTarget("http://198.51.100.7:8080/predict")
    findings = QueryLimitsProbe().run(target, _data(), ProbeContext())
    assert {f.variant for f in findings} == {"authentication", "rate_limit"}
    for f in findings:
        assert f.status is Status.INCONCLUSIVE
        assert "allow_remote=True" in f.summary
        assert _value(f, "requests_sent") == 0
    assert target.queries_used == 0


def test_non_endpoint_target_is_not_applicable() -> None:
    target = FakeTarget.linear(n_features=4, n_classes=2)
    reason = QueryLimitsProbe().not_applicable_reason(target)
    assert reason is not None and "applies to HTTP endpoints only" in reason
    with pytest.raises(MissingCapabilityError, match="endpoint"):
        QueryLimitsProbe().run(target, _data(), ProbeContext())
    assert QueryLimitsProbe().not_applicable_reason(EndpointTarget("http://127.0.0.1:1/")) is None


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8000/p", True),
        ("http://127.5.6.7/p", True),
        ("http://[::1]:9000/", True),
        ("http://localhost/x", True),
        ("http://LOCALHOST:1/x", True),
        ("http://api.localhost/x", True),
        ("http://10.0.0.1/p", False),
        ("https://example.com/v1", False),
        ("http://127.0.0.1.example.com/", False),
        ("not a url", False),
    ],
)
def test_is_loopback_url(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


@pytest.mark.parametrize(
    "params", [{"burst": 0}, {"burst": 501}, {"max_seconds": 0}, {"max_seconds": 121}, {"x": 1}]
)
def test_bad_parameters(params: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match=r"exposure\.query_limits"):
        QueryLimitsProbe(**params).validated_params()


def test_with_the_real_http_target(server_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.targets.http_target import HttpTarget

    monkeypatch.setenv("BASTION_TEST_QUERY_LIMITS_KEY", TOKEN)
    protected = server_factory(token=TOKEN, limit=5)
    target = HttpTarget(
        protected.url,
        input_spec=InputSpec(shape=(4,), lower=0.0, upper=1.0),
        classes=["neg", "pos"],
        request_key="inputs",
        response_path="scores",
        auth_env="BASTION_TEST_QUERY_LIMITS_KEY",
        retries=0,
    )
    with target:
        assert QueryLimitsProbe().not_applicable_reason(target) is None
        found = _by_variant(QueryLimitsProbe(burst=20).run(target, _data(), ProbeContext()))
    assert found["authentication"].status is Status.NOT_VULNERABLE
    assert found["rate_limit"].status is Status.NOT_VULNERABLE
    assert _value(found["rate_limit"], "first_429_after") == 5
    assert protected.requests == 7

    open_server = server_factory()
    with HttpTarget(
        open_server.url,
        input_spec=InputSpec(shape=(4,), lower=0.0, upper=1.0),
        classes=["neg", "pos"],
        request_key="inputs",
        response_path="scores",
    ) as anonymous:
        found = _by_variant(QueryLimitsProbe(burst=25).run(anonymous, _data(), ProbeContext()))
    assert found["authentication"].status is Status.VULNERABLE
    assert found["rate_limit"].status is Status.VULNERABLE
    assert open_server.requests == 26
