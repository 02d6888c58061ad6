"""The audit log on SQLite and PostgreSQL: appends, tamper detection, checkpoints, workers."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from bastion.errors import StoreError
from bastion.guards import (
    AuditLog,
    GuardDB,
    Guarded,
    InputValidationGuard,
    RateLimitGuard,
    RollingQuota,
)
from bastion.guards.audit_verify import verify_audit_log
from bastion.guards.canonical import sha256_hex
from bastion.guards.signing_keys import generate_signing_key
from bastion.guards.tables import AuditCheckpointRow, AuditEntryRow
from bastion.targets import FakeTarget
from tests.guards._audit_worker import append_many


def _fill(db: GuardDB, n: int, *, every: int = 4, key: Any = None) -> Any:
    key = key or generate_signing_key()
    log = AuditLog(db, signing_key=key, checkpoint_every=every)
    for i in range(n):
        log.append({"request_id": f"r{i}", "decision": "allow", "status": 200})
    return key


def test_every_request_is_audited_before_the_answer(db: GuardDB) -> None:
    key = generate_signing_key()
    target = FakeTarget.linear(n_features=2, n_classes=2)
    guarded = Guarded(
        target,
        [
            InputValidationGuard.for_target(target),
            RateLimitGuard([RollingQuota(limit=2, window_s=60)]),
        ],
        sinks=[AuditLog(db, signing_key=key, checkpoint_every=2)],
    )
    outcomes = [guarded.handle_inputs(x) for x in ("junk", [[0.1, 0.2]], [[0.5, 0.6]])]
    assert [o.http_status for o in outcomes] == [400, 200, 429]
    with db.session("read") as s:
        rows = s.scalars(select(AuditEntryRow).order_by(AuditEntryRow.seq)).all()
        bodies = [(r.request_id, r.body) for r in rows]
    assert [rid for rid, _ in bodies] == [o.request_id for o in outcomes]
    assert '"decided_by":"access.rate_limit"' in bodies[2][1] and '"status":429' in bodies[2][1]
    assert '"decided_by":"input.validation"' in bodies[0][1]
    assert outcomes[1].output_digest in bodies[1][1]
    report = verify_audit_log(db, key.public_key())
    assert report.ok and report.entries == 3 and report.checkpoints_verified == 1


def test_intact_log_and_tail_warning(db: GuardDB) -> None:
    key = _fill(db, 10, every=4)
    report = verify_audit_log(db, key.public_key())
    assert report.ok and (report.entries, report.checkpoints) == (10, 2)
    assert any("9..10" in w for w in report.warnings)
    AuditLog(db, signing_key=key).close()  # graceful shutdown signs the head
    assert verify_audit_log(db, key.public_key()).warnings == ()


def _tamper(db: GuardDB, *statements: Any) -> None:
    with db.session("tamper with", write=True) as s:
        for stmt in statements:
            s.execute(stmt)


def test_modified_entry_is_named(db: GuardDB) -> None:
    key = _fill(db, 10)
    with db.session("read") as s:
        body = s.get(AuditEntryRow, 6).body
    _tamper(
        db,
        update(AuditEntryRow)
        .where(AuditEntryRow.seq == 6)
        .values(body=body.replace("allow", "deny")),
    )
    report = verify_audit_log(db, key.public_key())
    assert (report.ok, report.first_bad_seq) == (False, 6) and "modified" in report.problem


def test_deleted_entry_is_named(db: GuardDB) -> None:
    key = _fill(db, 10)
    _tamper(db, delete(AuditEntryRow).where(AuditEntryRow.seq == 3))
    report = verify_audit_log(db, key.public_key())
    assert (report.ok, report.first_bad_seq) == (False, 3) and "deleted" in report.problem


def test_reordered_entries_are_named(db: GuardDB) -> None:
    key = _fill(db, 10)
    _tamper(
        db,
        update(AuditEntryRow).where(AuditEntryRow.seq == 5).values(seq=-5),
        update(AuditEntryRow).where(AuditEntryRow.seq == 6).values(seq=5),
        update(AuditEntryRow).where(AuditEntryRow.seq == -5).values(seq=6),
    )
    report = verify_audit_log(db, key.public_key())
    assert (report.ok, report.first_bad_seq) == (False, 5) and "reordered" in report.problem


def test_rehashed_edit_breaks_the_link(db: GuardDB) -> None:
    key = _fill(db, 10)
    with db.session("read") as s:
        body = s.get(AuditEntryRow, 6).body.replace("allow", "deny")
    _tamper(
        db,
        update(AuditEntryRow)
        .where(AuditEntryRow.seq == 6)
        .values(body=body, entry_hash=sha256_hex(body)),
    )
    report = verify_audit_log(db, key.public_key())
    assert (report.ok, report.first_bad_seq) == (
        False,
        7,
    ) and "does not follow entry 6" in report.problem


def test_rebuilt_chain_is_caught_by_signed_checkpoint(db: GuardDB) -> None:
    key = _fill(db, 10, every=4)
    with db.session("read") as s:
        rows = s.scalars(select(AuditEntryRow).order_by(AuditEntryRow.seq)).all()
        chain = [(r.seq, r.body) for r in rows]
    # An attacker with database access rewrites entry 6 and recomputes every hash after it.
    _tamper(db, delete(AuditEntryRow).where(AuditEntryRow.seq >= 6))
    forger = AuditLog(db)  # no signing key: cannot re-sign checkpoints
    import json

    for seq, body in chain[5:]:
        fields = json.loads(body)
        if seq == 6:
            fields["decision"] = "deny"
        forger.append(fields)
    report = verify_audit_log(db, key.public_key())
    assert (report.ok, report.first_bad_seq) == (
        False,
        5,
    ) and "Entries 5..8 were rewritten" in report.problem


def test_truncated_tail_and_forged_checkpoint(db: GuardDB) -> None:
    key = _fill(db, 10, every=4)
    _tamper(db, delete(AuditEntryRow).where(AuditEntryRow.seq >= 7))
    report = verify_audit_log(db, key.public_key())
    assert (report.ok, report.first_bad_seq) == (False, 7) and "were deleted" in report.problem
    _tamper(
        db, update(AuditCheckpointRow).where(AuditCheckpointRow.seq == 8).values(signature="AAAA")
    )
    forged = verify_audit_log(db, key.public_key())
    assert (forged.ok, forged.first_bad_seq) == (False, 8) and "invalid signature" in forged.problem
    other = verify_audit_log(db, generate_signing_key().public_key())
    assert not other.ok and "not the given public key" in other.problem


def test_empty_log_and_closed_db(db_url: str) -> None:
    db = GuardDB(db_url)
    assert verify_audit_log(db).ok
    db.close()
    with pytest.raises(StoreError, match="closed"):
        AuditLog(db).append({"request_id": "x"})


def test_concurrent_workers_share_one_chain(db_url: str) -> None:
    """Gateway workers are processes; on PostgreSQL threads (one connection each) race the
    same way and spare the test two interpreter start-ups."""
    if db_url.startswith("sqlite"):
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
            futures = [pool.submit(append_many, db_url, f"w{w}", 40) for w in range(2)]
            assert [f.result(timeout=120) for f in futures] == [40, 40]
    else:
        with ThreadPoolExecutor(max_workers=2) as threads:
            futures = [threads.submit(append_many, db_url, f"w{w}", 40) for w in range(2)]
            assert [f.result(timeout=120) for f in futures] == [40, 40]
    with GuardDB(db_url) as db:
        report = verify_audit_log(db)
        assert report.ok and report.entries == 80
