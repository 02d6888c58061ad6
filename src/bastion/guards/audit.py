"""The tamper-evident audit log: a hash chain of every request, with signed checkpoints.

:class:`AuditLog` is a *critical* event sink: :class:`~bastion.guards.Guarded`
hands it every finished request — allowed, denied or withheld — and releases the
answer only after the entry is committed, so every response a client received has
its entry (a crash can leave entries for answers that never arrived, never the
reverse). On SQLite the store runs in WAL mode with ``synchronous=NORMAL``: a
committed entry survives the process being killed, though not necessarily a power
cut; PostgreSQL commits are durable.

Each entry's ``body`` is the canonical JSON of ``{"seq", "prev", ...fields}`` and its
hash is ``SHA-256(body)``, where ``prev`` is the previous entry's hash (64 zeros for
the first). Changing, removing or reordering any entry therefore breaks the chain at
that entry (Haber and Stornetta 1991, "How to Time-Stamp a Digital Document";
Schneier and Kelsey 1999, "Secure Audit Logs to Support Computer Forensics").
Every ``checkpoint_every`` entries — and when the log is closed — an Ed25519-signed
checkpoint records the head ``(seq, hash)``: someone able to rewrite the database
could rebuild a consistent chain or cut off its newest entries, but not re-sign the
checkpoints, so :func:`~bastion.guards.audit_verify.verify_audit_log` catches both up
to the last checkpoint. Appends from several processes are serialised by the
database (SQLite's write lock, a PostgreSQL advisory lock), so workers share one chain.

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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from bastion.errors import UsageError
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
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        return _plain(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_fields(outcome: GuardOutcome) -> dict[str, Any]:
    """The fields an audit entry records for a finished request."""
    fields: dict[str, Any] = {
        "kind": "request",
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
    """

    critical = True

    def __init__(
        self,
        db: GuardDB,
        *,
        signing_key: Ed25519PrivateKey | None = None,
        checkpoint_every: int = 100,
        clock: Any = time.time,
    ) -> None:
        if checkpoint_every < 1:
            raise UsageError("checkpoint_every must be >= 1.")
        self.db = db
        self.signing_key = signing_key
        self.kid = key_id(signing_key.public_key()) if signing_key is not None else ""
        self.checkpoint_every = int(checkpoint_every)
        self._clock = clock
        self._lock = threading.Lock()

    def record(self, outcome: GuardOutcome) -> None:
        """Append the request's entry (the pipeline calls this before answering)."""
        self.append(entry_fields(outcome))

    def _head(self, session: Session) -> tuple[int, str]:
        if self.db.dialect == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
        last = session.execute(
            select(AuditEntryRow.seq, AuditEntryRow.entry_hash)
            .order_by(AuditEntryRow.seq.desc())
            .limit(1)
        ).first()
        return (int(last[0]), str(last[1])) if last is not None else (0, GENESIS_HASH)

    def _checkpoint_row(self, seq: int, entry_hash: str) -> AuditCheckpointRow:
        assert self.signing_key is not None
        doc = {"seq": seq, "entry_hash": entry_hash, "time": _iso(self._clock()), "kid": self.kid}
        return AuditCheckpointRow(
            seq=seq,
            entry_hash=entry_hash,
            key_id=self.kid,
            body=canonical_json(doc),
            signature=sign_document(doc, self.signing_key),
        )

    def append(self, fields: dict[str, Any]) -> AuditEntry:
        """Append one entry in its own transaction; return its place in the chain."""
        clean = _plain(dict(fields))
        clean.pop("seq", None)
        clean.pop("prev", None)
        with self._lock, self.db.session("append to the audit log in", write=True) as session:
            seq, prev = self._head(session)
            seq += 1
            body = canonical_json({**clean, "seq": seq, "prev": prev})
            digest = sha256_hex(body)
            session.add(
                AuditEntryRow(
                    seq=seq,
                    request_id=str(clean.get("request_id", ""))[:64],
                    prev_hash=prev,
                    entry_hash=digest,
                    body=body,
                )
            )
            if self.signing_key is not None and seq % self.checkpoint_every == 0:
                session.add(self._checkpoint_row(seq, digest))
        return AuditEntry(seq=seq, entry_hash=digest)

    def checkpoint(self) -> int | None:
        """Sign the current head now (no-op without a key or when already signed)."""
        if self.signing_key is None:
            return None
        with self._lock, self.db.session("checkpoint the audit log in", write=True) as session:
            seq, head = self._head(session)
            if seq == 0 or session.get(AuditCheckpointRow, seq) is not None:
                return seq or None
            session.add(self._checkpoint_row(seq, head))
            return seq

    def close(self) -> None:
        """Write a final checkpoint (graceful shutdown)."""
        self.checkpoint()
