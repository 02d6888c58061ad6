"""Requests refused before the pipeline are audited: code, digest, no body, no secrets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bastion.gateway.app import create_app
from bastion.gateway.config import parse_gateway_text
from bastion.guards.audit_verify import verify_audit_log
from bastion.guards.canonical import sha256_hex
from bastion.guards.db import GuardDB
from bastion.guards.tables import AuditEntryRow

SECRET = "bst_0123456789abcdef_supersecretvalue"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    tmp = tmp_path_factory.mktemp("rej")
    store = tmp / "g.db"
    cfg = parse_gateway_text(
        f"store: {store}\nmax_body_bytes: 2048\nmodels:\n"
        "  - name: bc\n    demo: breast_cancer\n    guards: [input.validation]\n",
        "g.yaml",
        tmp,
    )
    with TestClient(create_app(cfg)) as client:
        yield client, store


def _entry(store: Path, request_id: str) -> dict[str, Any]:
    with GuardDB(str(store)) as db, db.session("read") as s:
        body = s.scalar(select(AuditEntryRow.body).where(AuditEntryRow.request_id == request_id))
    assert body is not None, f"request {request_id} has no audit entry"
    entry = json.loads(body)
    assert SECRET not in body and "supersecret" not in body
    return entry  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{nope " + SECRET.encode(), "body.not_json"),
        (b"[1, 2]", "body.not_object"),
        (b'{"input": [1], "supersecret": 1}', "body.unknown_fields"),
        (b'{"input": [1], "instances": [[1]]}', "body.one_of"),
        (b'{"input": 3}', "body.input_not_list"),
        (b'{"instances": []}', "body.instances_not_list"),
    ],
)
def test_malformed_bodies_are_audited_without_their_contents(
    gateway: tuple[TestClient, Path], content: bytes, code: str
) -> None:
    client, store = gateway
    r = client.post(
        "/v1/models/bc/predict", content=content, headers={"Authorization": f"Bearer {SECRET}"}
    )
    assert r.status_code == 400
    rid = r.headers["x-bastion-request-id"]
    assert r.json()["request_id"] == rid
    entry = _entry(store, rid)
    assert entry["kind"] == "rejected" and entry["code"] == code
    assert (entry["status"], entry["decision"], entry["decided_by"]) == (
        400,
        "deny",
        "gateway.http",
    )
    assert entry["model"] == "bc" and entry["principal"] == "anonymous"
    assert entry["input_digest"] == f"sha256:{sha256_hex(content)}"
    assert entry["body_bytes"] == len(content)


def test_unknown_model_is_audited_by_name_or_digest(gateway: tuple[TestClient, Path]) -> None:
    client, store = gateway
    r = client.post("/v1/models/nope/predict", json={"input": [1]})
    assert r.status_code == 404
    entry = _entry(store, r.headers["x-bastion-request-id"])
    assert (entry["code"], entry["requested_model"]) == ("model.unknown", "nope")
    assert "model" not in entry
    odd = client.post(f"/v1/models/{SECRET[:20]}%20x/predict", json={"input": [1]})
    assert odd.status_code == 404
    entry = _entry(store, odd.headers["x-bastion-request-id"])
    assert entry["requested_model"].startswith("sha256:")
    text = client.get("/metrics").text
    assert 'bastion_denials_total{model="(unknown)",guard="gateway.http"}' in text


def test_too_large_bodies_are_refused_before_reading_and_audited(
    gateway: tuple[TestClient, Path],
) -> None:
    client, store = gateway
    big = b'{"input": [' + b"1," * 2000 + b"1]}"
    r = client.post("/v1/models/bc/predict", content=big)
    assert r.status_code == 413
    entry = _entry(store, r.headers["x-bastion-request-id"])
    assert (entry["code"], entry["body_bytes"], entry["input_digest"]) == (
        "body.too_large",
        len(big),
        "",
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: cut off while streaming
        yield b'{"input": ['
        for _ in range(100):
            yield b"1," * 50

    streamed = client.post("/v1/models/bc/predict", content=chunks())
    assert streamed.status_code == 413
    assert _entry(store, streamed.headers["x-bastion-request-id"])["body_bytes"] > 2048


def test_every_answer_including_refusals_is_in_one_valid_chain(
    gateway: tuple[TestClient, Path],
) -> None:
    client, store = gateway
    ids = [
        client.post("/v1/models/bc/predict", content=body).headers["x-bastion-request-id"]
        for body in (b"{", b'{"input": [0.5]}', b"[]")
    ]
    with GuardDB(str(store)) as db:
        with db.session("read") as s:
            stored = set(s.scalars(select(AuditEntryRow.request_id)))
        assert set(ids) <= stored
        assert verify_audit_log(db).ok
