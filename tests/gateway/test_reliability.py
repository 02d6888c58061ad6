"""Reliability with real parts: separate gateway processes on loopback, a real Redis.

* budgets: two gateway processes sharing Redis never grant more than the budget to
  concurrent clients;
* crash safety: kill -9 during load, restart, the audit chain verifies and every answer
  a client received — allowed, or refused before the pipeline — has its entry;
* graceful stop: SIGTERM drains and signs the audit head;
* a bounded load test: a few seconds, no 5xx.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from bastion.cli.audit_cmd import register as register_audit
from bastion.data.demo import load_breast_cancer_dataset
from bastion.guards.apikeys import ApiKeyStore
from bastion.guards.audit_verify import verify_audit_log
from bastion.guards.db import GuardDB
from bastion.guards.signing_keys import load_public_key, write_signing_key
from bastion.guards.tables import AuditEntryRow
from tests.gateway.procs import PEPPER, gateways, redis_url

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

# uvicorn re-raises the SIGTERM it handled once it has shut down gracefully.
STOPPED = (0, -signal.SIGTERM)

ROWS = load_breast_cancer_dataset().x_test[:20].tolist()


def _setup(tmp: Path, guards: str, extra: str = "") -> tuple[Path, str, Path]:
    key = tmp / "sign.pem"
    write_signing_key(key)
    store = tmp / "gw.db"
    cfg = tmp / "gateway.yaml"
    cfg.write_text(
        f"store: {store}\nsigning_key_file: {key}\nlog_level: warning\n{extra}"
        f"models:\n  - name: bc\n    demo: breast_cancer\n    guards: {guards}\n",
        encoding="utf-8",
    )
    keys = ApiKeyStore(GuardDB(str(store)), pepper=PEPPER.encode())
    secret = keys.create("client", models=["bc"]).secret
    keys.db.close()
    return cfg, secret, store


def _audited_ids(store: Path) -> set[str]:
    with GuardDB(str(store)) as db, db.session("read") as s:
        return set(s.execute(select(AuditEntryRow.request_id)).scalars())


@pytest.mark.redis
def test_two_processes_sharing_redis_never_exceed_the_budget(tmp_path: Path) -> None:
    url = redis_url()
    if url is None:
        pytest.skip("No Redis answers at BASTION_TEST_REDIS_URL or 127.0.0.1:6379; start one.")
    budget = 25
    guards = (
        f"[access.authentication, {{id: access.rate_limit, quota: {budget}, window_s: 3600, "
        "per: principal}, input.validation]"
    )
    prefix = f"bastion-test-{uuid.uuid4().hex[:8]}"
    cfg, secret, _ = _setup(
        tmp_path, guards, f"redis_url_env: GW_TEST_REDIS\nredis_prefix: {prefix}\n"
    )
    headers = {"Authorization": f"Bearer {secret}"}
    with gateways(cfg, tmp_path / "log.txt", n=2, env={"GW_TEST_REDIS": url}) as procs:
        barrier = threading.Barrier(8)

        def client(i: int) -> list[int]:
            base = procs[i % 2].url
            codes = []
            with httpx.Client(timeout=10) as http:
                barrier.wait()
                for j in range(8):
                    r = http.post(
                        f"{base}/v1/models/bc/predict",
                        json={"input": ROWS[j]},
                        headers=headers,
                    )
                    codes.append(r.status_code)
            return codes

        with ThreadPoolExecutor(8) as pool:
            codes = [c for cs in pool.map(client, range(8)) for c in cs]
    assert len(codes) == 64
    assert codes.count(200) == budget, codes
    assert codes.count(429) == 64 - budget


def test_kill9_during_load_keeps_the_audit_chain_and_every_answer(tmp_path: Path) -> None:
    guards = "[access.authentication, input.validation, output.signature]"
    cfg, secret, store = _setup(tmp_path, guards)
    headers = {"Authorization": f"Bearer {secret}"}
    received: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(base: str, malformed: bool) -> None:
        with httpx.Client(timeout=5) as http:
            for j in range(2000):
                if stop.is_set():
                    return
                try:
                    if malformed and j % 2:  # refused before the pipeline, audited too
                        r = http.post(
                            f"{base}/v1/models/bc/predict", content=b"{broken", headers=headers
                        )
                    else:
                        r = http.post(
                            f"{base}/v1/models/bc/predict",
                            json={"input": ROWS[j % 20]},
                            headers=headers,
                        )
                except httpx.HTTPError:
                    return
                if r.status_code in (200, 400):
                    with lock:
                        received.append(r.headers["x-bastion-request-id"])

    with gateways(cfg, tmp_path / "log.txt") as procs:
        threads = [threading.Thread(target=client, args=(procs[0].url, i == 0)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        procs[0].kill9()
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert len(received) > 20, "the load did not get going before the kill"
    with gateways(cfg, tmp_path / "log.txt") as procs:
        r = httpx.post(
            f"{procs[0].url}/v1/models/bc/predict", json={"input": ROWS[0]}, headers=headers
        )
        assert r.status_code == 200
        received.append(r.json()["request_id"])
        assert procs[0].terminate() in STOPPED
    missing = set(received) - _audited_ids(store)
    assert not missing, f"{len(missing)} answers have no audit entry"
    app = typer.Typer()
    register_audit(app)
    result = CliRunner().invoke(
        app,
        ["audit", "verify", "--store", str(store), "--public-key", f"{tmp_path / 'sign.pem'}.pub"],
    )
    assert result.exit_code == 0, result.output
    with GuardDB(str(store)) as db:
        report = verify_audit_log(db, load_public_key(Path(f"{tmp_path / 'sign.pem'}.pub")))
    assert report.ok and report.entries >= len(received)


def test_sigterm_drains_and_signs_the_audit_head(tmp_path: Path) -> None:
    cfg, secret, store = _setup(tmp_path, "[access.authentication, input.validation]")
    headers = {"Authorization": f"Bearer {secret}"}
    with gateways(cfg, tmp_path / "log.txt") as procs:
        first = httpx.post(
            f"{procs[0].url}/v1/models/bc/predict", json={"input": ROWS[0]}, headers=headers
        )
        assert first.status_code == 200
        with ThreadPoolExecutor(4) as pool:
            futures = [
                pool.submit(
                    httpx.post,
                    f"{procs[0].url}/v1/models/bc/predict",
                    json={"instances": ROWS},
                    headers=headers,
                    timeout=10,
                )
                for _ in range(8)
            ]
            time.sleep(0.05)
            assert procs[0].terminate() in STOPPED
            statuses = []
            for f in futures:
                try:
                    statuses.append(f.result().status_code)
                except httpx.HTTPError:
                    statuses.append(0)
    assert all(s in (200, 0) for s in statuses), statuses
    with GuardDB(str(store)) as db:
        report = verify_audit_log(db, load_public_key(Path(f"{tmp_path / 'sign.pem'}.pub")))
    assert report.ok
    assert report.entries >= 1 + statuses.count(200)
    # Fewer entries than checkpoint_every: only the shutdown can have signed the head.
    assert report.checkpoints == 1 and report.head_seq == report.entries


def test_bounded_load_has_no_server_errors(tmp_path: Path) -> None:
    guards = (
        "[access.authentication, {id: access.rate_limit, rate: 100000, burst: 100000}, "
        "input.validation, output.signature]"
    )
    cfg, secret, _ = _setup(tmp_path, guards)
    headers = {"Authorization": f"Bearer {secret}"}
    latencies: list[float] = []
    codes: list[int] = []
    lock = threading.Lock()

    def client(base: str, until: float) -> None:
        with httpx.Client(timeout=5) as http:
            j = 0
            while time.monotonic() < until and j < 5000:
                t0 = time.perf_counter()
                r = http.post(
                    f"{base}/v1/models/bc/predict", json={"input": ROWS[j % 20]}, headers=headers
                )
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    codes.append(r.status_code)
                j += 1

    with gateways(cfg, tmp_path / "log.txt") as procs:
        until = time.monotonic() + 3.0
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: client(procs[0].url, until), range(4)))
    assert codes and all(c == 200 for c in codes), sorted(set(codes))
    latencies.sort()
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    assert len(codes) / 3.0 > 30, f"only {len(codes) / 3.0:.0f} requests/s"
    assert p99 < 1.0, f"p99 latency {p99 * 1000:.0f} ms"
