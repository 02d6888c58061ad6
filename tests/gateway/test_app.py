"""The gateway app in-process: auth over HTTP, budgets, signatures, metrics, errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bastion.data.demo import load_breast_cancer_dataset
from bastion.gateway.app import create_app
from bastion.gateway.config import parse_gateway_text
from bastion.guards.apikeys import ApiKeyStore
from bastion.guards.db import GuardDB
from bastion.guards.errors import SignatureInvalid
from bastion.guards.signing import verify_signed_output
from bastion.guards.signing_keys import load_public_key, write_signing_key

PEPPER = "p" * 40

CONFIG = """
store: {store}
signing_key_file: {key}
models:
  - name: bc
    demo: breast_cancer
    version: v1
    guards:
      - access.authentication
      - {{id: access.rate_limit, rate: 1000, burst: 1000}}
      - input.validation
      - {{id: input.drift, window: 40, stride: 20, false_alarm_every: 1000}}
      - output.signature
  - name: other
    demo: breast_cancer
    guards: [access.authentication, input.validation]
  - name: limited
    demo: breast_cancer
    guards:
      - access.authentication
      - {{id: access.rate_limit, quota: 3, window_s: 3600, per: principal_model}}
      - input.validation
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("gw")
    key = tmp / "k.pem"
    write_signing_key(key)
    store = tmp / "g.db"
    mp = pytest.MonkeyPatch()
    mp.setenv("BASTION_API_KEY_PEPPER", PEPPER)
    cfg = parse_gateway_text(CONFIG.format(store=store, key=key), "g.yaml", tmp)
    keys = ApiKeyStore(GuardDB(str(store)), pepper=PEPPER.encode(), cache_ttl_s=0)
    a = keys.create("alice", models=["bc", "limited"]).secret
    revoked = keys.create("mallory", models=["bc"])
    keys.revoke(revoked.info.key_id)
    expiring = keys.create(
        "eve", models=["bc"], expires_at=datetime.now(UTC) + timedelta(seconds=1)
    ).secret
    row = load_breast_cancer_dataset().x_test[0].tolist()
    with TestClient(create_app(cfg)) as client:
        yield {
            "client": client,
            "alice": a,
            "revoked": revoked.secret,
            "expiring": expiring,
            "row": row,
            "pub": load_public_key(Path(f"{key}.pub")),
            "store": store,
        }
    mp.undo()


def _post(env: dict[str, Any], model: str, key: str | None, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return env["client"].post(
        f"/v1/models/{model}/predict", json=body or {"input": env["row"]}, headers=headers
    )


def test_valid_key_gets_a_signed_answer(env: dict[str, Any]) -> None:
    r = _post(env, "bc", env["alice"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["output"]) == 2 and abs(sum(body["output"]) - 1) < 1e-5
    assert r.headers["x-bastion-request-id"] == body["request_id"]
    signed = verify_signed_output(body, env["pub"], inputs=[env["row"]], model="bc")
    assert signed is not None
    tampered = {**body, "outputs": [[0.5, 0.5]]}
    with pytest.raises(SignatureInvalid, match="altered"):
        verify_signed_output(tampered, env["pub"], inputs=[env["row"]], model="bc")


def test_missing_wrong_revoked_expired_credentials_are_refused(env: dict[str, Any]) -> None:
    assert _post(env, "bc", None).status_code == 401
    wrong = env["alice"][:-4] + ("AAAA" if not env["alice"].endswith("AAAA") else "BBBB")
    for bad in (wrong, "bst_0000000000000000_nope", env["revoked"], "not-a-key"):
        r = _post(env, "bc", bad)
        assert r.status_code == 401, (bad[:8], r.text)
        assert r.headers.get("www-authenticate", "").startswith("Bearer")
    import time

    time.sleep(1.1)
    assert _post(env, "bc", env["expiring"]).status_code == 401


def test_key_scoped_to_one_model_cannot_query_another(env: dict[str, Any]) -> None:
    r = _post(env, "other", env["alice"])
    assert r.status_code == 403
    assert "not allowed" in r.json()["error"]


def test_quota_is_enforced_with_retry_after(env: dict[str, Any]) -> None:
    codes = [_post(env, "limited", env["alice"]).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    r = _post(env, "limited", env["alice"])
    assert int(r.headers["retry-after"]) > 0


@pytest.mark.parametrize(
    ("content", "status", "word"),
    [
        (b"{nope", 400, "JSON"),
        (b"[1, 2]", 400, "object"),
        (b'{"inputs": [1]}', 400, "Unknown"),
        (b'{"input": [1], "instances": [[1]]}', 400, "exactly one"),
        (b'{"input": 3}', 400, "input"),
        (b'{"instances": []}', 400, "instances"),
        (b'{"input": [1, 2, 3]}', 400, "inputs"),
        (b'{"input": ["a"]}', 400, "inputs"),
    ],
)
def test_malformed_bodies_get_4xx_naming_the_field(
    env: dict[str, Any], content: bytes, status: int, word: str
) -> None:
    r = env["client"].post(
        "/v1/models/bc/predict",
        content=content,
        headers={"Authorization": f"Bearer {env['alice']}", "Content-Type": "application/json"},
    )
    assert 400 <= r.status_code < 500, r.text
    assert word in r.json()["error"]


def test_nan_is_refused_with_the_field(env: dict[str, Any]) -> None:
    row = list(env["row"])
    body = {"instances": [row, row]}
    text = str(body).replace("'", '"')
    text = text.replace(str(row[3]), "NaN", 1)
    r = env["client"].post(
        "/v1/models/bc/predict",
        content=text.encode(),
        headers={"Authorization": f"Bearer {env['alice']}"},
    )
    assert r.status_code == 422 and "inputs[0][3]" in r.json()["error"]


def test_unknown_model_is_404(env: dict[str, Any]) -> None:
    assert _post(env, "nope", env["alice"]).status_code == 404


def test_batch_and_metrics_and_probes(env: dict[str, Any]) -> None:
    rows = load_breast_cancer_dataset().x_test[:50].tolist()
    r = _post(env, "bc", env["alice"], {"instances": rows})
    assert r.status_code == 200 and len(r.json()["outputs"]) == 50
    assert "output" not in r.json()
    client = env["client"]
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    text = client.get("/metrics").text
    assert 'bastion_requests_total{model="bc",status="200"}' in text
    assert 'bastion_denials_total{model="bc",guard="access.authentication"}' in text
    assert 'bastion_http_request_seconds_bucket{model="bc",le="+Inf"}' in text
    assert 'bastion_drift_checks_total{model="bc"}' in text
    assert 'bastion_drift_statistic{model="bc"}' in text
    spec = client.get("/openapi.json").json()
    assert "/v1/models/{model}/predict" in spec["paths"]
    assert [m["name"] for m in client.get("/v1/models").json()["models"]] == [
        "bc",
        "limited",
        "other",
    ]


def test_every_answer_has_an_audit_entry(env: dict[str, Any]) -> None:
    from sqlalchemy import select

    from bastion.guards.tables import AuditEntryRow

    ids = [_post(env, "bc", env["alice"]).json()["request_id"] for _ in range(3)]
    with GuardDB(str(env["store"])).session("read") as s:
        stored = set(s.execute(select(AuditEntryRow.request_id)).scalars())
    assert set(ids) <= stored
    assert "Bearer" not in str(stored)
