"""access.authentication: API keys (hashed, scoped, revocable, expiring) and JWTs."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import numpy as np
import pytest
from sqlalchemy import text

from bastion.errors import UsageError
from bastion.guards import (
    ApiKeyStore,
    AuthGuard,
    CredentialRejected,
    GuardDB,
    Guarded,
    GuardRequest,
    JwtVerifier,
    MemorySink,
    load_pepper,
)
from bastion.guards.signing_keys import generate_signing_key
from bastion.targets import FakeTarget

PEPPER = b"pepper-for-tests-only-0123456789abcdef"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys(db: GuardDB) -> ApiKeyStore:
    return ApiKeyStore(db, pepper=PEPPER, cache_ttl_s=0)


def _req(model: str, headers: dict[str, str] | None = None) -> GuardRequest:
    return GuardRequest(
        principal="claimed", model=model, inputs=np.zeros((1, 2)), headers=headers or {}
    )


def test_secret_is_never_stored(keys: ApiKeyStore, db: GuardDB) -> None:
    new = keys.create("alice", models=["digits"], description="ci")
    secret_part = new.secret.rsplit("_", 1)[1]
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM guard_api_keys")).all()
    dumped = repr(rows)
    assert new.info.key_id in dumped and secret_part not in dumped and new.secret not in dumped
    assert "<hidden>" in repr(new)
    assert keys.verify(new.secret, model="digits").principal == "alice"


def test_wrong_revoked_expired_and_scope(keys: ApiKeyStore) -> None:
    a = keys.create("alice", models=["model-a"])
    every = keys.create("root", models=["*"])
    tampered = a.secret[:-1] + ("A" if a.secret[-1] != "A" else "B")
    for bad in ["", "bst_", tampered, "bst_0123456789abcdef_" + "x" * 43, "not-a-key"]:
        with pytest.raises(CredentialRejected) as err:
            keys.verify(bad, model="model-a")
        assert err.value.http_status == 401 and str(err.value) == "The API key is not valid."
    with pytest.raises(CredentialRejected) as err:
        keys.verify(a.secret, model="model-b")
    assert err.value.http_status == 403
    assert keys.verify(every.secret, model="model-b").principal == "root"
    keys.revoke(a.info.key_id)
    with pytest.raises(CredentialRejected, match="revoked"):
        keys.verify(a.secret, model="model-a")
    assert keys.revoke(a.info.key_id).revoked_at is not None  # idempotent
    short = keys.create(
        "bob", models=["model-a"], expires_at=datetime.now(UTC) + timedelta(seconds=0.3)
    )
    assert keys.verify(short.secret, model="model-a").principal == "bob"
    time.sleep(0.4)
    with pytest.raises(CredentialRejected, match="expired"):
        keys.verify(short.secret, model="model-a")
    statuses = {i.principal: i.status() for i in keys.list_keys()}
    assert statuses == {"alice": "revoked", "root": "active", "bob": "expired"}
    assert [i.principal for i in keys.list_keys(include_inactive=False)] == ["root"]


def test_another_pepper_cannot_verify(keys: ApiKeyStore, db: GuardDB) -> None:
    new = keys.create("alice", models=["m"])
    other = ApiKeyStore(db, pepper=b"another-pepper-0123456789abcdefghij")
    with pytest.raises(CredentialRejected):
        other.verify(new.secret, model="m")


def test_create_validation(keys: ApiKeyStore) -> None:
    with pytest.raises(UsageError, match="must name the models"):
        keys.create("alice", models=[])
    with pytest.raises(UsageError, match="principal"):
        keys.create("", models=["m"])
    with pytest.raises(UsageError, match="in the past"):
        keys.create("a", models=["m"], expires_at=datetime.now(UTC) - timedelta(days=1))
    with pytest.raises(UsageError, match="No API key"):
        keys.revoke("feedfacefeedface")


def test_revocation_reaches_other_workers_after_cache_ttl(db: GuardDB) -> None:
    clock = Clock()
    worker = ApiKeyStore(db, pepper=PEPPER, cache_ttl_s=2.0, clock=clock)
    admin = ApiKeyStore(db, pepper=PEPPER)
    new = admin.create("alice", models=["m"])
    worker.verify(new.secret, model="m")
    admin.revoke(new.info.key_id)
    worker.verify(new.secret, model="m")  # cached for up to 2 s
    clock.now += 2.5
    with pytest.raises(CredentialRejected, match="revoked"):
        worker.verify(new.secret, model="m")


def test_pepper_from_environment(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="BASTION_API_KEY_PEPPER"):
        load_pepper({})
    with pytest.raises(UsageError, match="at least 32"):
        load_pepper({"BASTION_API_KEY_PEPPER": "short"})
    f = tmp_path / "pepper"
    f.write_text("z" * 40 + "\n")
    assert load_pepper({"BASTION_API_KEY_PEPPER_FILE": str(f)}) == b"z" * 40
    with pytest.raises(UsageError, match="Cannot read"):
        load_pepper({"BASTION_API_KEY_PEPPER_FILE": str(tmp_path / "missing")})


def test_guard_refuses_missing_wrong_revoked_and_out_of_scope(keys: ApiKeyStore) -> None:
    guard = AuthGuard(keys=keys)
    a = keys.create("alice", models=["model-a"])
    assert guard.before(_req("model-a")).http_status == 401
    assert guard.before(_req("model-a", {"Authorization": "Basic abc"})).http_status == 401
    assert guard.before(_req("model-a", {"Authorization": "Bearer bst_junk"})).http_status == 401
    assert guard.before(_req("model-b", {"X-API-Key": a.secret})).http_status == 403
    ok = guard.before(_req("model-a", {"X-API-Key": a.secret, "X-Trace": "1"}))
    assert ok.payload.principal == "alice" and ok.payload.headers == {"X-Trace": "1"}
    assert ok.events[0]["key_id"] == a.info.key_id and a.secret not in repr(ok.events)
    keys.revoke(a.info.key_id)
    refused = guard.before(_req("model-a", {"Authorization": f"Bearer {a.secret}"}))
    assert refused.http_status == 401 and refused.payload.headers["WWW-Authenticate"].startswith(
        "Bearer"
    )


def test_pipeline_principal_comes_from_the_key_not_the_caller(keys: ApiKeyStore) -> None:
    target = FakeTarget.linear(n_features=2, n_classes=2, name="model-a")
    sink = MemorySink()
    guarded = Guarded(target, [AuthGuard(keys=keys)], sinks=[sink])
    a = keys.create("alice", models=["model-a"])
    outcome = guarded.handle_inputs(
        [[0.1, 0.2]], principal="mallory", headers={"x-api-key": a.secret}
    )
    assert outcome.allowed and outcome.principal == "alice"
    denied = guarded.handle_inputs([[0.1, 0.2]], principal="mallory")
    assert denied.http_status == 401 and target.queries_used == 1
    assert a.secret not in repr(sink.outcomes)


# -- JWT ----------------------------------------------------------------------------------
SECRET = b"jwt-shared-secret-0123456789abcdef!"


def _claims(**over: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": "https://idp.example",
        "aud": "bastion",
        "sub": "svc-fraud",
        "iat": now,
        "exp": now + 300,
        "models": ["model-a"],
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def test_jwt_hs256_and_eddsa() -> None:
    ed = generate_signing_key()
    verifier = JwtVerifier(
        issuer="https://idp.example",
        audience="bastion",
        hs256_secret=SECRET,
        ed25519_public_key=ed.public_key(),
    )
    hs = jwt.encode(_claims(), SECRET, algorithm="HS256")
    eddsa = jwt.encode(_claims(sub="svc-b"), ed, algorithm="EdDSA")
    assert verifier.verify(hs, model="model-a").principal == "svc-fraud"
    assert verifier.verify(eddsa, model="model-a").principal == "svc-b"
    guard = AuthGuard(jwt=verifier)
    assert (
        guard.before(_req("model-a", {"Authorization": f"Bearer {hs}"})).payload.principal
        == "svc-fraud"
    )
    assert guard.before(_req("model-b", {"Authorization": f"Bearer {hs}"})).http_status == 403


@pytest.mark.parametrize(
    ("token_claims", "message"),
    [
        (lambda: _claims(iss="https://evil.example"), "another issuer"),
        (lambda: _claims(aud="other"), "another audience"),
        (lambda: _claims(exp=int(time.time()) - 10), "expired"),
        (lambda: _claims(exp=None), "'exp'"),
        (lambda: _claims(sub=None), "'sub'"),
        (lambda: _claims(models=None), "names no models"),
        (lambda: _claims(exp=int(time.time()) + 10 * 86400), "lives longer"),
        (lambda: _claims(nbf=int(time.time()) + 600), "not valid yet"),
    ],
)
def test_jwt_refusals(token_claims: Callable[[], dict[str, object]], message: str) -> None:
    # Claims are made when the test runs: a token built at collection time could expire
    # before a long suite reaches this test and be refused for the wrong reason.
    verifier = JwtVerifier(issuer="https://idp.example", audience="bastion", hs256_secret=SECRET)
    token = jwt.encode(token_claims(), SECRET, algorithm="HS256")
    with pytest.raises(CredentialRejected, match=message):
        verifier.verify(token, model="model-a")


def test_jwt_signature_algorithm_confusion_and_garbage() -> None:
    ed = generate_signing_key()
    only_hs = JwtVerifier(issuer="https://idp.example", audience="bastion", hs256_secret=SECRET)
    wrong_key = jwt.encode(_claims(), b"x" * 40, algorithm="HS256")
    unsigned = jwt.encode(_claims(), None, algorithm="none")
    eddsa = jwt.encode(_claims(), ed, algorithm="EdDSA")
    with pytest.raises(CredentialRejected, match="signature"):
        only_hs.verify(wrong_key)
    with pytest.raises(CredentialRejected, match="algorithm"):
        only_hs.verify(unsigned)
    with pytest.raises(CredentialRejected, match="algorithm"):
        only_hs.verify(eddsa)
    for junk in ["", "a.b.c", "x" * 9000]:
        with pytest.raises(CredentialRejected, match="malformed"):
            only_hs.verify(junk)
    with pytest.raises(UsageError):
        JwtVerifier(issuer="i", audience="a", hs256_secret=b"short")
    with pytest.raises(UsageError):
        JwtVerifier(issuer="i", audience="a")
    with pytest.raises(UsageError):
        AuthGuard()


# -- fast paths against the straightforward code ----------------------------------------
def _reference_split(headers: dict[str, str]) -> tuple[str | None, dict[str, str]]:
    """The credential and cleaned headers as the guard computed them in two passes."""
    lowered = {k.lower(): v for k, v in headers.items()}
    auth = lowered.get("authorization", "").strip()
    token: str | None
    if auth:
        scheme, _, value = auth.partition(" ")
        token = value.strip() if scheme.lower() == "bearer" and value.strip() else ""
    else:
        token = lowered.get("x-api-key", "").strip() or None
    clean = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "x-api-key")}
    return token, clean


def test_one_pass_header_split_matches_the_reference() -> None:
    import random

    rng = random.Random(7)
    names = ["Authorization", "authorization", "AUTHORIZATION", "X-Api-Key", "x-api-key"]
    names += ["host", "Content-Type", "x-other"]
    values = ["", " ", "Bearer bst_x", "bearer  tok ", "Basic abc", "Bearer", "Bearer  ", "k"]
    for _ in range(2000):
        headers = {rng.choice(names): rng.choice(values) for _ in range(rng.randint(0, 5))}
        assert AuthGuard._split(headers) == _reference_split(headers), headers


def test_keyed_hmac_copy_matches_a_fresh_hmac(db: GuardDB, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    import hmac

    store = ApiKeyStore(db, pepper=PEPPER)
    for token in ["", "bst_x", "bst_" + "a" * 16 + "_" + "b" * 43, "ünïcode"]:
        expected = hmac.new(PEPPER, token.encode("utf-8"), hashlib.sha256).hexdigest()
        assert store._digest(token) == expected
    monkeypatch.setenv("BASTION_API_KEY_PEPPER", "e" * 40)
    lazy = ApiKeyStore(db)  # pepper read from the environment when first needed
    assert lazy._digest("t") == hmac.new(b"e" * 40, b"t", hashlib.sha256).hexdigest()
    lazy._pepper = b"f" * 40  # a replaced pepper is noticed, not served from the copy
    assert lazy._digest("t") == hmac.new(b"f" * 40, b"t", hashlib.sha256).hexdigest()
