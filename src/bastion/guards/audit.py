"""The tamper-evident audit log: a hash chain of every request, with signed checkpoints.

:class:`AuditLog` is a *critical* event sink: :class:`~bastion.guards.Guarded`
hands it every finished request — allowed, denied or withheld — and releases the
answer only after the entry is committed, so every response a client received has
its entry (a crash can leave entries for answers that never arrived, never the
reverse). Entries of concurrent requests are **group-committed**
(:class:`~bastion.guards.audit_batch.GroupCommitter`): whoever finds no commit under
way writes every entry queued so far in one transaction, and each request still
waits for the commit that holds its own entry. How durable a commit is depends on
the store: on SQLite in WAL mode with ``synchronous=NORMAL`` (the store's default) a
committed entry survives the process being killed but not necessarily a power cut;
with ``synchronous=FULL`` (:class:`~bastion.guards.db.GuardDB`'s ``synchronous``)
it survives both; PostgreSQL commits are durable.

Each entry's ``body`` is the canonical JSON of ``{"seq", "prev", ...fields}`` and its
hash is ``SHA-256(body)``, where ``prev`` is the previous entry's hash (64 zeros for
the first). Changing, removing or reordering any entry therefore breaks the chain at
that entry (Haber and Stornetta 1991, "How to Time-Stamp a Digital Document";
Schneier and Kelsey 1999, "Secure Audit Logs to Support Computer Forensics").
Every ``checkpoint_every`` entries — and when the log is closed — an Ed25519-signed
checkpoint records the head ``(seq, hash)``: someone able to rewrite the database
could rebuild a consistent chain or cut off its newest entries, but not re-sign the
checkpoints, so :func:`~bastion.guards.audit_verify.verify_audit_log` catches both up
to the last checkpoint. Transactions from several processes are serialised by the
database (SQLite's write lock, a PostgreSQL advisory lock), each reading the chain's
head inside its transaction, so workers share one chain.

Entries record ids, statuses, reasons, guard events and SHA-256 digests of inputs and
outputs — never raw inputs or credentials.

Examples
--------
>>> from bastion.guards.db import GuardDB
>>> from bastion.guards.signing_keys import generate_signing_key
>>> key = generate_signing_key()
>>> log = AuditLog(GuardDB("sqlite://"), signing_key=key, checkpoint_every=2)
>>> [log.append({"request_id": f"r{i}", "decision": "allow"}).seq for i in range(3)]
[1, 2, 3]
>>> from bastion.guards.audit_verify import verify_audit_log
>>> report = verify_audit_log(log.db, key.public_key())
>>> report.ok, report.entries, report.checkpoints
(True, 3, 1)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from bastion.errors import UsageError
from bastion.guards.audit_batch import GroupCommitter
from bastion.guards.canonical import canonical_json, sha256_hex
from bastion.guards.db import GuardDB
from bastion.guards.outcome import GuardOutcome
from bastion.guards.signing import sign_document
from bastion.guards.signing_keys import key_id
from bastion.guards.tables import AuditCheckpointRow, AuditEntryRow

__all__ = ["GENESIS_HASH", "AuditEntry", "AuditLog", "entry_fields"]

GENESIS_HASH = "0" * 64
"""The ``prev`` of the first entry."""

_PG_LOCK = 0x6261737469617564  # "bastiaud": serialises appends between processes
_MAX_REASON = 2000


@dataclass(frozen=True)
class AuditEntry:
    """Where an entry landed in the chain."""

    seq: int
    entry_hash: str


def _plain(value: Any) -> Any:
    """JSON-safe copy: NumPy to Python, non-finite floats to strings, unknowns to str."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, bytes):
        return _plain(value.tolist())
    return str(value)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_fields(outcome: GuardOutcome, *, kind: str = "request") -> dict[str, Any]:
    """The fields an audit entry records for a finished request.

    ``kind`` is ``"request"`` for requests that went through the pipeline and
    ``"rejected"`` for those the gateway refused before it (malformed, too large,
    unknown model).
    """
    fields: dict[str, Any] = {
        "kind": kind,
        "request_id": outcome.request_id,
        "time": _iso(outcome.started_at),
        "model": outcome.model,
        "model_version": outcome.model_version,
        "principal": outcome.principal,
        "decision": outcome.decision,
        "status": outcome.http_status,
        "decided_by": outcome.decided_by,
        "reason": outcome.reason[:_MAX_REASON],
        "rows": outcome.n_rows,
        "input_digest": outcome.input_digest,
        "output_digest": outcome.output_digest,
        "events": _plain(list(outcome.events)),
        "latency_us": round(outcome.latency_s * 1e6),
    }
    signature = outcome.fields.get("signature")
    if isinstance(signature, dict) and isinstance(signature.get("signature"), str):
        fields["signature"] = signature["signature"]
    if "review_id" in outcome.fields:
        fields["review_id"] = str(outcome.fields["review_id"])
    return fields


class AuditLog:
    """Append-only hash-chained audit log in the store database (a critical sink).

    Parameters
    ----------
    db : GuardDB
        The database.
    signing_key : Ed25519PrivateKey or None
        Signs checkpoints; without it there are none, and deleting the newest
        entries or rewriting the whole chain goes unnoticed (verification warns).
    checkpoint_every : int
        Entries between signed checkpoints.
    clock : callable
        UNIX time for checkpoint timestamps.
    max_batch : int
        Most entries written in one transaction (group commit; 1 turns it off).
    """

    critical = True

    def __init__(
        self,
        db: GuardDB,
        *,
        signing_key: Ed25519PrivateKey | None = None,
        checkpoint_every: int = 100,
        clock: Any = time.time,
        max_batch: int = 256,
    ) -> None:
        if checkpoint_every < 1:
            raise UsageError("checkpoint_every must be >= 1.")
        self.db = db
        self.signing_key = signing_key
        self.kid = key_id(signing_key.public_key()) if signing_key is not None else ""
        self.checkpoint_every = int(checkpoint_every)
        self._clock = clock
        self._lock = threading.Lock()  # one transaction of this log at a time
        self._group: GroupCommitter[dict[str, Any], AuditEntry] = GroupCommitter(
            self._commit, max_batch=max_batch
        )

    @property
    def batches(self) -> int:
        """Transactions that appended entries so far (in this process)."""
        return self._group.batches

    @property
    def entries(self) -> int:
        """Entries appended so far (in this process)."""
        return self._group.items

    def record(self, outcome: GuardOutcome) -> None:
        """Append the request's entry (the pipeline calls this before answering)."""
        self.append(entry_fields(outcome))

    def append(self, fields: dict[str, Any]) -> AuditEntry:
        """Append one entry; return its place in the chain once it is committed.

        Entries appended concurrently from several threads share a transaction; this
        returns only after the transaction holding this entry has committed.

        Raises
        ------
        StoreError
            If the entry could not be committed.
        """
        clean = _plain(dict(fields))
        clean.pop("seq", None)
        clean.pop("prev", None)
        return self._group.submit(clean)

    def _head(self, session: Session) -> tuple[int, str]:
        if self.db.dialect == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
        last = session.execute(
            select(AuditEntryRow.seq, AuditEntryRow.entry_hash)
            .order_by(AuditEntryRow.seq.desc())
            .limit(1)
        ).first()
        return (int(last[0]), str(last[1])) if last is not None else (0, GENESIS_HASH)

    def _checkpoint_row(self, seq: int, entry_hash: str) -> dict[str, Any]:
        assert self.signing_key is not None
        doc = {"seq": seq, "entry_hash": entry_hash, "time": _iso(self._clock()), "kid": self.kid}
        return {
            "seq": seq,
            "entry_hash": entry_hash,
            "key_id": self.kid,
            "body": canonical_json(doc),
            "signature": sign_document(doc, self.signing_key),
        }

    def _commit(self, batch: Sequence[dict[str, Any]]) -> list[AuditEntry]:
        """Chain ``batch`` onto the head and write it in one transaction (no ORM)."""
        db = self.db
        q = db.placeholder
        entries, checkpoints = AuditEntryRow.__tablename__, AuditCheckpointRow.__tablename__
        rows: list[tuple[int, str, str, str, str]] = []
        marks: list[tuple[int, str, str, str, str]] = []
        placed: list[AuditEntry] = []
        with self._lock, db.raw_write("append to the audit log in") as cursor:
            if db.dialect == "postgresql":
                cursor.execute(f"SELECT pg_advisory_xact_lock({q})", (_PG_LOCK,))
            cursor.execute(f"SELECT seq, entry_hash FROM {entries} ORDER BY seq DESC LIMIT 1")
            head = cursor.fetchone()
            seq, prev = (int(head[0]), str(head[1])) if head is not None else (0, GENESIS_HASH)
            for clean in batch:
                seq += 1
                body = canonical_json({**clean, "seq": seq, "prev": prev})
                digest = sha256_hex(body)
                rows.append((seq, str(clean.get("request_id", ""))[:64], prev, digest, body))
                if self.signing_key is not None and seq % self.checkpoint_every == 0:
                    cp = self._checkpoint_row(seq, digest)
                    marks.append((seq, digest, cp["key_id"], cp["body"], cp["signature"]))
                placed.append(AuditEntry(seq=seq, entry_hash=digest))
                prev = digest
            cursor.executemany(
                f"INSERT INTO {entries} (seq, request_id, prev_hash, entry_hash, body) "
                f"VALUES ({q}, {q}, {q}, {q}, {q})",
                rows,
            )
            if marks:
                cursor.executemany(
                    f"INSERT INTO {checkpoints} (seq, entry_hash, key_id, body, signature) "
                    f"VALUES ({q}, {q}, {q}, {q}, {q})",
                    marks,
                )
        return placed

    def checkpoint(self) -> int | None:
        """Sign the current head now (no-op without a key or when already signed)."""
        if self.signing_key is None:
            return None
        with self._lock, self.db.session("checkpoint the audit log in", write=True) as session:
            seq, head = self._head(session)
            if seq == 0 or session.get(AuditCheckpointRow, seq) is not None:
                return seq or None
            session.connection().execute(
                insert(AuditCheckpointRow), [self._checkpoint_row(seq, head)]
            )
            return seq

    def close(self) -> None:
        """Write a final checkpoint (graceful shutdown)."""
        self.checkpoint()
