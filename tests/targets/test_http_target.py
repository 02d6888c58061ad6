"""HttpTarget against a real threaded HTTP server on 127.0.0.1 serving a fake model."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from bastion.errors import MissingCapabilityError, QueryBudgetExceeded, TargetError, UsageError
from bastion.targets import Capability, InputSpec, SupportsEndpoint
from bastion.targets import http_target as http_module
from bastion.targets.http_target import HttpTarget, redact_url

CLASSES = ["cat", "dog", "fox"]
SPEC = InputSpec(shape=(3,), lower=0.0, upper=1.0)
X = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.0, 0.2, 0.9], [0.5, 0.4, 0.1]], np.float32)
SECRET = "s3cr3t-token-value"


def model(rows: list[list[float]]) -> np.ndarray:
    """The fake model: softmax of 4 * x, so the largest feature wins."""
    z = 4.0 * np.asarray(rows, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class State:
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0
    token: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)


class Handler(BaseHTTPRequestHandler):
    state: State

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _reply(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        st = self.state
        st.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
        if st.delay:
            time.sleep(st.delay)
        if st.script:
            status, headers = st.script.pop(0)
            self._reply(status, {"error": "scripted"}, headers)
            return
        if st.token is not None and self.headers.get("Authorization") != f"Bearer {st.token}":
            self._reply(401, {"error": "unauthorised"})
            return
        if self.path == "/moved":
            self._reply(307, {}, {"Location": "https://elsewhere.example/predict?key=abc"})
            return
        if self.path == "/row":
            p = model([body["input"]])[0]
            self._reply(200, {"scores": p.tolist(), "label": CLASSES[int(p.argmax())]})
            return
        if "instances" not in body:
            self._reply(400, {"error": "missing instances"})
            return
        p = model(body["instances"])
        self._reply(
            200,
            {
                "predictions": p.tolist(),
                "outputs": {
                    "probabilities": p.tolist(),
                    "logits": (4 * np.asarray(body["instances"])).tolist(),
                },
                "labels": [CLASSES[i] for i in p.argmax(axis=1)],
                "label_ids": [int(i) for i in p.argmax(axis=1)],
                "named": [dict(zip(CLASSES, row, strict=True)) for row in p.tolist()],
            },
            {"X-RateLimit-Limit": "100"},
        )


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up is expected here


@pytest.fixture()
def server() -> Iterator[tuple[str, State]]:
    state = State()
    handler = type("BoundHandler", (Handler,), {"state": state})
    httpd = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture()
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waited: list[float] = []
    monkeypatch.setattr(http_module, "_sleep", waited.append)
    return waited


def target(url: str, **kw: Any) -> HttpTarget:
    return HttpTarget(url, input_spec=SPEC, classes=CLASSES, **kw)


def test_batched_scores_mapping(server):
    url, state = server
    with target(url + "/predict", batch_size=3) as t:
        proba = t.predict_proba(X)
    np.testing.assert_allclose(proba, model(X.tolist()), rtol=1e-6)
    assert [len(r["body"]["instances"]) for r in state.requests] == [3, 1]
    assert t.queries_used == 4
    assert t.capabilities == {Capability.LABELS, Capability.PROBABILITIES, Capability.ENDPOINT}


def test_nested_path_dict_scores_and_constant_body_fields(server):
    url, state = server
    t = target(url, response_path="outputs.probabilities", body={"model": "v2"})
    np.testing.assert_allclose(t.predict_proba(X), model(X.tolist()), rtol=1e-6)
    assert state.requests[0]["body"]["model"] == "v2"
    named = target(url, response_path="named")
    np.testing.assert_allclose(named.predict_proba(X), model(X.tolist()), rtol=1e-6)


def test_logits_response(server):
    url, _ = server
    t = target(url, response_path="outputs.logits", response_type="logits")
    assert Capability.LOGITS in t.capabilities
    np.testing.assert_allclose(t.logits(X), 4 * X, rtol=1e-6)
    np.testing.assert_allclose(t.predict_proba(X), model(X.tolist()), rtol=1e-6)


@pytest.mark.parametrize("path", ["labels", "label_ids"])
def test_label_only_mapping_by_name_or_index(server, path):
    url, _ = server
    t = target(url, response_path=path, response_type="labels")
    assert t.capabilities == {Capability.LABELS, Capability.ENDPOINT}
    assert t.predict(X).tolist() == [0, 1, 2, 0]
    with pytest.raises(MissingCapabilityError, match="probabilities"):
        t.predict_proba(X)


def test_one_request_per_row(server):
    url, state = server
    t = target(url + "/row", per_row=True, request_key="input", response_path="scores")
    np.testing.assert_allclose(t.predict_proba(X), model(X.tolist()), rtol=1e-6)
    assert len(state.requests) == 4 and state.requests[0]["body"] == {"input": X[0].tolist()}
    labels = target(
        url + "/row", per_row=True, request_key="input", response_path="label",
        response_type="labels",
    )  # fmt: skip
    assert labels.predict(X).tolist() == [0, 1, 2, 0]


def test_wrong_response_path_is_explained(server):
    url, _ = server
    with pytest.raises(TargetError, match="no 'probs' on the path 'outputs.probs'"):
        target(url, response_path="outputs.probs").predict_proba(X)


def test_retries_503_then_succeeds(server, sleeps):
    url, state = server
    state.script = [(503, {}), (502, {})]
    t = target(url, backoff=0.25)
    assert t.predict(X).tolist() == [0, 1, 2, 0]
    assert sleeps == [0.25, 0.5] and len(state.requests) == 3
    assert t.queries_used == 4  # retries are not charged


def test_429_honours_retry_after_up_to_the_cap(server, sleeps):
    url, state = server
    state.script = [(429, {"Retry-After": "2"}), (429, {"Retry-After": "120"})]
    t = target(url, max_retry_after=30.0)
    t.predict(X)
    assert sleeps == [2.0, 30.0]


def test_gives_up_after_the_retries(server, sleeps):
    url, state = server
    state.script = [(500, {})] * 3
    with pytest.raises(TargetError, match="HTTP 500 after 3 attempt"):
        target(url, retries=2).predict(X)
    assert len(sleeps) == 2


def test_4xx_is_not_retried_and_names_the_status(server, sleeps):
    url, state = server
    state.script = [(422, {})]
    with pytest.raises(TargetError, match="HTTP 422"):
        target(url).predict(X)
    assert sleeps == [] and len(state.requests) == 1


def test_redirects_are_not_followed(server, monkeypatch):
    url, state = server
    monkeypatch.setenv("BASTION_TEST_KEY", SECRET)
    with pytest.raises(TargetError, match=r"redirected the request \(HTTP 307\).*key=\*\*\*"):
        target(url + "/moved", auth_env="BASTION_TEST_KEY").predict(X)
    assert len(state.requests) == 1


def test_timeout_is_a_target_error(server):
    url, state = server
    state.delay = 0.5
    with pytest.raises(TargetError, match="did not answer within 0.1 s"):
        target(url, timeout=0.1).predict(X)


def test_connection_errors_are_retried_then_reported(sleeps):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    with pytest.raises(TargetError, match="Could not reach .* after 2 attempt"):
        target(f"http://127.0.0.1:{port}/", retries=1).predict(X)
    assert len(sleeps) == 1


def test_auth_header_comes_from_the_environment_and_is_never_shown(server, monkeypatch):
    url, state = server
    state.token = SECRET
    monkeypatch.setenv("BASTION_TEST_KEY", SECRET)
    t = target(url + "?api_key=abc", auth_env="BASTION_TEST_KEY")
    assert t.predict(X).tolist() == [0, 1, 2, 0]
    assert state.requests[-1]["headers"]["Authorization"] == f"Bearer {SECRET}"
    shown = repr(t) + json.dumps(t.describe()) + str(vars(t))
    assert SECRET not in shown and "abc" not in repr(t)
    assert t.describe()["auth"] == {
        "header": "Authorization", "env": "BASTION_TEST_KEY", "secret": "<redacted>"
    }  # fmt: skip
    monkeypatch.delenv("BASTION_TEST_KEY")
    with pytest.raises(TargetError, match="BASTION_TEST_KEY .* is not set"):
        t.predict(X)


def test_wrong_credentials_say_so(server, monkeypatch):
    url, state = server
    state.token = SECRET
    monkeypatch.setenv("BASTION_TEST_KEY", "wrong")
    with pytest.raises(TargetError, match="HTTP 401.*credentials"):
        target(url, auth_env="BASTION_TEST_KEY").predict(X)


def test_send_raw_reports_status_and_headers_with_and_without_auth(server, monkeypatch):
    url, state = server
    state.token = SECRET
    monkeypatch.setenv("BASTION_TEST_KEY", SECRET)
    t = target(url, auth_env="BASTION_TEST_KEY")
    assert isinstance(t, SupportsEndpoint) and t.url == url
    status, headers = t.send_raw(X[:2])
    assert status == 200 and headers["x-ratelimit-limit"] == "100"
    status, _ = t.send_raw(X[:1], authenticated=False)
    assert status == 401 and "Authorization" not in state.requests[-1]["headers"]
    assert t.queries_used == 3


def test_budget_is_enforced_before_sending(server):
    url, state = server
    t = target(url, query_budget=5)
    t.predict(X)
    with pytest.raises(QueryBudgetExceeded):
        t.predict_proba(X[:2])
    with pytest.raises(QueryBudgetExceeded):
        t.send_raw(X[:2])
    assert len(state.requests) == 1 and t.queries_used == 4


def test_configuration_mistakes_are_usage_errors():
    with pytest.raises(UsageError, match="http:// or https://"):
        target("ftp://example.com/model")
    with pytest.raises(UsageError, match="credentials"):
        target("http://127.0.0.1:1/", headers={"X-API-Key": "literal-secret"})
    with pytest.raises(UsageError, match="response_type"):
        target("http://127.0.0.1:1/", response_type="scores")  # type: ignore[arg-type]


def test_redact_url_hides_passwords_and_query_values():
    assert (
        redact_url("https://u:pw@h.example/p?key=1&x=2")
        == "https://u:***@h.example/p?key=***&x=***"
    )
