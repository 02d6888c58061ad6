"""The audit log on SQLite and PostgreSQL: appends, tamper detection, checkpoints, workers."""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
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
from bastion.guards.audit import GENESIS_HASH, entry_fields
from bastion.guards.audit_verify import verify_audit_log
from bastion.guards.canonical import sha256_hex
from bastion.guards.outcome import GuardOutcome
from bastion.guards.signing_keys import generate_signing_key
from bastion.guards.tables import AuditCheckpointRow, AuditEntryRow
from bastion.targets import FakeTarget
from tests.guards._audit_worker import append_many
from tests.guards.test_canonical import reference_canonical_json


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


def reference_plain(value: Any) -> Any:
    """The audit log's ``_plain`` before its fast path (kept verbatim)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {str(k): reference_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [reference_plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, bytes):
        return reference_plain(value.tolist())
    return str(value)


def reference_body(fields: dict[str, Any], seq: int, prev: str) -> str:
    """An entry's body as the audit log wrote it before its fast path."""
    clean = reference_plain(dict(fields))
    clean.pop("seq", None)
    clean.pop("prev", None)
    return reference_canonical_json({**clean, "seq": seq, "prev": prev})


def reference_entry_fields(outcome: GuardOutcome, kind: str = "request") -> dict[str, Any]:
    """entry_fields before its fast path (kept verbatim, with the old time formatting)."""
    fields: dict[str, Any] = {
        "kind": kind,
        "request_id": outcome.request_id,
        "time": datetime.fromtimestamp(outcome.started_at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "model": outcome.model,
        "model_version": outcome.model_version,
        "principal": outcome.principal,
        "decision": outcome.decision,
        "status": outcome.http_status,
        "decided_by": outcome.decided_by,
        "reason": outcome.reason[:2000],
        "rows": outcome.n_rows,
        "input_digest": outcome.input_digest,
        "output_digest": outcome.output_digest,
        "events": reference_plain(list(outcome.events)),
        "latency_us": round(outcome.latency_s * 1e6),
    }
    signature = outcome.fields.get("signature")
    if isinstance(signature, dict) and isinstance(signature.get("signature"), str):
        fields["signature"] = signature["signature"]
    if "review_id" in outcome.fields:
        fields["review_id"] = str(outcome.fields["review_id"])
    return fields


class Opaque:
    def __str__(self) -> str:
        return "opaque"


field_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=6),
        st.floats(width=32).map(np.float32),
        st.integers(-100, 100).map(np.int64),
        st.booleans().map(np.bool_),
        st.text(max_size=4).map(np.str_),
        st.just(Opaque()),
        st.just(b"raw"),
        hnp.arrays(np.float64, st.integers(0, 3)),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=4) | st.integers(0, 9), children, max_size=4),
    ),
    max_leaves=20,
)
entry_dicts = st.dictionaries(
    st.sampled_from(["request_id", "decision", "status", "events", "seq", "prev", "x", "é"]),
    field_values,
    max_size=6,
)


@pytest.fixture(scope="module")
def memory_log() -> Iterator[AuditLog]:
    db = GuardDB("sqlite://")
    yield AuditLog(db, signing_key=generate_signing_key(), checkpoint_every=5)
    db.close()


def _last_row(db: GuardDB) -> AuditEntryRow:
    with db.session("read") as s:
        row: AuditEntryRow = s.scalars(
            select(AuditEntryRow).order_by(AuditEntryRow.seq.desc()).limit(1)
        ).one()
        s.expunge(row)
        return row


@settings(max_examples=400, deadline=None)
@given(entry_dicts)
def test_entry_bodies_are_byte_identical_to_the_reference(
    memory_log: AuditLog, fields: dict[str, Any]
) -> None:
    entry = memory_log.append(fields)
    row = _last_row(memory_log.db)
    assert row.seq == entry.seq
    assert row.body == reference_body(fields, row.seq, row.prev_hash)
    assert row.entry_hash == entry.entry_hash == sha256_hex(row.body)
    rid = reference_plain(dict(fields)).get("request_id", "")
    if not _holds_numpy_str(rid):  # the column once showed np.str_('x') inside containers
        assert row.request_id == str(rid)[:64]


def _holds_numpy_str(value: Any) -> bool:
    if isinstance(value, dict):
        return any(isinstance(v, np.str_) or _holds_numpy_str(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(isinstance(v, np.str_) or _holds_numpy_str(v) for v in value)
    return False


events = st.lists(
    st.dictionaries(st.sampled_from(["guard", "action", "score", "reason", 3]), field_values),
    max_size=3,
).map(tuple)


@settings(max_examples=200, deadline=None)
@given(
    events,
    st.floats(0, 4e9),
    st.sampled_from([200, 403, 429]),
    st.dictionaries(st.sampled_from(["signature", "review_id"]), field_values),
)
def test_entry_fields_and_record_match_the_reference(
    memory_log: AuditLog,
    raised: tuple[dict[Any, Any], ...],
    started: float,
    status: int,
    extra: dict[str, Any],
) -> None:
    outcome = GuardOutcome(
        request_id="r",
        model="m",
        model_version="1",
        principal="p",
        http_status=status,
        outputs=np.zeros((1, 2)) if status == 200 else None,
        events=raised,
        fields=extra,
        started_at=started,
        latency_s=0.000321,
        n_rows=1,
    )
    expected = reference_entry_fields(outcome)
    assert repr(entry_fields(outcome)) == repr(expected)
    memory_log.record(outcome)
    row = _last_row(memory_log.db)
    assert row.body == reference_body(expected, row.seq, row.prev_hash)


def test_logs_written_before_the_fast_path_verify_and_continue(db: GuardDB) -> None:
    """Entries hashed by the old code, then appended by the new: one valid chain."""
    key = generate_signing_key()
    prev = GENESIS_HASH
    with db.session("write old entries to", write=True) as s:
        for seq in range(1, 4):
            body = reference_body({"request_id": f"old{seq}", "score": np.float32(0.5)}, seq, prev)
            s.add(
                AuditEntryRow(
                    seq=seq,
                    request_id=f"old{seq}",
                    prev_hash=prev,
                    entry_hash=sha256_hex(body),
                    body=body,
                )
            )
            prev = sha256_hex(body)
    log = AuditLog(db, signing_key=key, checkpoint_every=2)
    for i in range(3):
        log.append({"request_id": f"new{i}", "score": np.float32(0.5)})
    report = verify_audit_log(db, key.public_key())
    assert report.ok and report.entries == 6


def test_numpy_strings_are_hashed_as_before(memory_log: AuditLog) -> None:
    fields = {"request_id": np.str_("r\x00"), "labels": [np.str_("cat\x00\x00"), "dog\x00"]}
    memory_log.append(fields)
    row = _last_row(memory_log.db)
    assert row.body == reference_body(fields, row.seq, row.prev_hash)
    assert '"cat"' in row.body and '"dog\\u0000"' in row.body and row.request_id == "r"
