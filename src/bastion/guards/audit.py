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

import hashlib
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from bastion.errors import UsageError
from bastion.guards.audit_batch import GroupCommitter
from bastion.guards.canonical import canonical_json, canonical_json_str_keys, utc_stamp
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
_ATOMS = frozenset({str, int, bool, type(None)})  # exact types _plain keeps as they are


@dataclass(frozen=True)
class _Statements:
    """The SQL of an append, in the driver's parameter style (built once per log)."""

    lock: str  # PostgreSQL's advisory lock; empty on SQLite (BEGIN IMMEDIATE locks)
    head: str
    insert_entries: str
    insert_checkpoints: str

    @classmethod
    def for_db(cls, db: GuardDB) -> _Statements:
        q = db.placeholder
        entries, checkpoints = AuditEntryRow.__tablename__, AuditCheckpointRow.__tablename__
        return cls(
            lock=f"SELECT pg_advisory_xact_lock({q})" if db.dialect == "postgresql" else "",
            head=f"SELECT seq, entry_hash FROM {entries} ORDER BY seq DESC LIMIT 1",
            insert_entries=f"INSERT INTO {entries} (seq, request_id, prev_hash, entry_hash, body) "
            f"VALUES ({q}, {q}, {q}, {q}, {q})",
            insert_checkpoints=f"INSERT INTO {checkpoints} "
            f"(seq, entry_hash, key_id, body, signature) VALUES ({q}, {q}, {q}, {q}, {q})",
        )


@dataclass(frozen=True)
class AuditEntry:
    """Where an entry landed in the chain."""

    seq: int
    entry_hash: str


def _plain(value: Any) -> Any:
    """JSON-safe copy: NumPy to Python, non-finite floats to strings, unknowns to str.

    Dict keys become plain ``str``, so the result can be encoded by
    :func:`~bastion.guards.canonical.canonical_json_str_keys`. The common exact
    types are handled first, without the ``isinstance`` chain.
    """
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is dict:
        return {
            k if type(k) is str else str(k): v if type(v) in _ATOMS else _plain(v)
            for k, v in value.items()
        }
    if kind is list or kind is tuple:
        return [v if type(v) in _ATOMS else _plain(v) for v in value]
    if kind is float:
        return value if math.isfinite(value) else repr(value)
    return _plain_other(value)


def _plain_other(value: Any) -> Any:
    """:func:`_plain` of a value of any other type (subclasses, NumPy, unknown objects)."""
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


def entry_fields(outcome: GuardOutcome, *, kind: str = "request") -> dict[str, Any]:
    """The fields an audit entry records for a finished request.

    ``kind`` is ``"request"`` for requests that went through the pipeline and
    ``"rejected"`` for those the gateway refused before it (malformed, too large,
    unknown model).
    """
    fields = _raw_fields(outcome, kind)
    fields["events"] = _plain(fields["events"])
    return fields


def _raw_fields(outcome: GuardOutcome, kind: str) -> dict[str, Any]:
    """:func:`entry_fields` with the events as the guards raised them (not yet plain)."""
    fields: dict[str, Any] = {
        "kind": kind,
        "request_id": outcome.request_id,
        "time": utc_stamp(outcome.started_at),
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
        "events": outcome.events,
        "latency_us": round(outcome.latency_s * 1e6),
    }
    extra = outcome.fields
    if extra:
        signature = extra.get("signature")
        if isinstance(signature, dict) and isinstance(signature.get("signature"), str):
            fields["signature"] = signature["signature"]
        if "review_id" in extra:
            fields["review_id"] = str(extra["review_id"])
    return fields


def _clean(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A plain copy of an entry's fields without ``seq`` and ``prev`` (the chain sets them)."""
    clean: dict[str, Any] = _plain(fields if isinstance(fields, dict) else dict(fields))
    clean.pop("seq", None)
    clean.pop("prev", None)
    return clean


def _insert(cursor: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows``; one row with ``execute`` (psycopg's ``executemany`` costs a round
    trip more for its pipeline)."""
    if len(rows) == 1:
        cursor.execute(sql, rows[0])
    else:
        cursor.executemany(sql, rows)


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
        self._sql = _Statements.for_db(db)
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
        self._group.submit(_plain(_raw_fields(outcome, "request")))

    def append(self, fields: Mapping[str, Any]) -> AuditEntry:
        """Append one entry; return its place in the chain once it is committed.

        Entries appended concurrently from several threads share a transaction; this
        returns only after the transaction holding this entry has committed.

        Raises
        ------
        StoreError
            If the entry could not be committed.
        """
        return self._group.submit(_clean(fields))

    def append_many(self, entries: Sequence[Mapping[str, Any]]) -> list[AuditEntry]:
        """Append several entries in order, in one transaction where possible.

        Returns their places in the chain once committed (see :meth:`append`; at most
        ``max_batch`` entries share a transaction).

        Raises
        ------
        StoreError
            If an entry could not be committed.
        """
        return self._group.submit_many([_clean(fields) for fields in entries])

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
        doc = {
            "seq": seq,
            "entry_hash": entry_hash,
            "time": utc_stamp(self._clock()),
            "kid": self.kid,
        }
        return {
            "seq": seq,
            "entry_hash": entry_hash,
            "key_id": self.kid,
            "body": canonical_json(doc),
            "signature": sign_document(doc, self.signing_key),
        }

    def _commit(self, batch: Sequence[dict[str, Any]]) -> list[AuditEntry]:
        """Chain ``batch`` onto the head and write it in one transaction (no ORM)."""
        with self._lock:
            return self.db.run_write(
                "append to the audit log in", lambda cursor: self._chain(cursor, batch)
            )

    def _chain(self, cursor: Any, batch: Sequence[dict[str, Any]]) -> list[AuditEntry]:
        """Read the head, hash ``batch`` onto it and insert it (inside the transaction).

        Each entry dict is completed with its ``seq`` and ``prev`` in place: they are
        this log's own plain copies, and a retried transaction sets both again.
        """
        sql = self._sql
        if sql.lock:
            cursor.execute(sql.lock, (_PG_LOCK,))
        cursor.execute(sql.head)
        head = cursor.fetchone()
        seq, prev = (int(head[0]), str(head[1])) if head is not None else (0, GENESIS_HASH)
        every = self.checkpoint_every if self.signing_key is not None else 0
        rows: list[tuple[int, str, str, str, str]] = []
        marks: list[tuple[int, str, str, str, str]] = []
        placed: list[AuditEntry] = []
        for clean in batch:
            seq += 1
            clean["seq"] = seq
            clean["prev"] = prev
            body = canonical_json_str_keys(clean)  # _plain made every key a str
            if "\\u0000" in body:  # maybe a NumPy string, which canonical_json cuts at NULs
                body = canonical_json(clean)
            digest = hashlib.sha256(body.encode("ascii")).hexdigest()
            rows.append((seq, str(clean.get("request_id", ""))[:64], prev, digest, body))
            if every and seq % every == 0:
                cp = self._checkpoint_row(seq, digest)
                marks.append((seq, digest, cp["key_id"], cp["body"], cp["signature"]))
            placed.append(AuditEntry(seq=seq, entry_hash=digest))
            prev = digest
        _insert(cursor, sql.insert_entries, rows)
        if marks:
            _insert(cursor, sql.insert_checkpoints, marks)
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
