"""Checking the audit log: every modified, reordered or deleted entry is found.

:func:`verify_audit_log` walks the chain in order (in pages, so memory stays flat)
and stops at the first entry that is wrong, naming it:

* a gap in the sequence — the entry was **deleted**;
* a body whose SHA-256 is not the stored hash — the entry was **modified**;
* a body that names another sequence number — entries were **reordered**;
* a ``prev`` that is not the previous entry's hash — the chain was cut or rebuilt;
* an entry whose hash differs from a signed checkpoint at the same position — the
  chain was rebuilt after an edit (the first bad entry is then somewhere after the
  previous good checkpoint, which is what is reported);
* a checkpoint past the last entry — the newest entries were **deleted**;
* a checkpoint whose Ed25519 signature does not verify — the checkpoint was forged.

Without a public key the signatures are not checked (a warning says so), and
entries newer than the last checkpoint are protected by the chain alone.

Examples
--------
>>> from bastion.guards.audit import AuditLog
>>> from bastion.guards.db import GuardDB
>>> from bastion.guards.tables import AuditEntryRow
>>> db = GuardDB("sqlite://")
>>> log = AuditLog(db)
>>> for i in range(3):
...     _ = log.append({"request_id": f"r{i}", "decision": "allow"})
>>> with db.session("tamper with", write=True) as s:
...     s.get(AuditEntryRow, 2).body = s.get(AuditEntryRow, 2).body.replace("allow", "deny")
>>> report = verify_audit_log(db)
>>> report.ok, report.first_bad_seq, report.problem
(False, 2, 'Entry 2 was modified: its contents no longer match its hash.')
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from bastion.guards.audit import GENESIS_HASH
from bastion.guards.canonical import b64url_decode, canonical_json, sha256_hex
from bastion.guards.db import GuardDB
from bastion.guards.signing_keys import key_id
from bastion.guards.tables import AuditCheckpointRow, AuditEntryRow

__all__ = ["AuditVerification", "verify_audit_log"]


@dataclass(frozen=True)
class AuditVerification:
    """The result of checking the audit log."""

    ok: bool
    entries: int
    checkpoints: int
    checkpoints_verified: int
    first_bad_seq: int | None = None
    problem: str = ""
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "ok": self.ok,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "checkpoints_verified": self.checkpoints_verified,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "warnings": list(self.warnings),
        }


def _checkpoint_problem(row: AuditCheckpointRow, public_key: Ed25519PublicKey | None) -> str:
    try:
        doc = json.loads(row.body)
    except ValueError:
        return f"The checkpoint at entry {row.seq} is unreadable."
    if (
        not isinstance(doc, dict)
        or doc.get("seq") != row.seq
        or doc.get("entry_hash") != row.entry_hash
    ):
        return f"The checkpoint at entry {row.seq} does not match its signed contents."
    if public_key is None:
        return ""
    if doc.get("kid") != key_id(public_key):
        return (
            f"The checkpoint at entry {row.seq} was signed with key {doc.get('kid')!r}, not the "
            "given public key."
        )
    try:
        public_key.verify(b64url_decode(row.signature), canonical_json(doc).encode("ascii"))
    except (InvalidSignature, ValueError):
        return f"The checkpoint at entry {row.seq} has an invalid signature (forged or altered)."
    return ""


def verify_audit_log(
    db: GuardDB, public_key: Ed25519PublicKey | None = None, *, page: int = 2000
) -> AuditVerification:
    """Check the whole chain and its checkpoints; report the first bad entry.

    Parameters
    ----------
    db : GuardDB
    public_key : Ed25519PublicKey or None
        The gateway's public key, to verify checkpoint signatures.
    page : int
        Entries read per query.
    """
    with db.session("read the audit checkpoints in") as session:
        checkpoints = {
            row.seq: row
            for row in session.scalars(select(AuditCheckpointRow).order_by(AuditCheckpointRow.seq))
        }
    warnings: list[str] = []
    if public_key is None and checkpoints:
        warnings.append("Checkpoint signatures were not checked; pass the gateway's public key.")
    verified = 0
    for seq, cp_row in checkpoints.items():
        problem = _checkpoint_problem(cp_row, public_key)
        if problem:
            return AuditVerification(
                False,
                0,
                len(checkpoints),
                verified,
                first_bad_seq=seq,
                problem=problem,
                warnings=tuple(warnings),
            )
        verified += public_key is not None

    expected, prev, last_good_cp, count = 1, GENESIS_HASH, 0, 0

    def bad(seq: int, problem: str) -> AuditVerification:
        return AuditVerification(
            False,
            count,
            len(checkpoints),
            verified,
            first_bad_seq=seq,
            problem=problem,
            head_seq=expected - 1,
            head_hash=prev,
            warnings=tuple(warnings),
        )

    while True:
        with db.session("read the audit log in") as session:
            rows = session.scalars(
                select(AuditEntryRow)
                .where(AuditEntryRow.seq >= expected)
                .order_by(AuditEntryRow.seq)
                .limit(page)
            ).all()
        if not rows:
            break
        for row in rows:
            if row.seq != expected:
                return bad(expected, f"Entry {expected} is missing: it was deleted.")
            if sha256_hex(row.body) != row.entry_hash:
                return bad(
                    row.seq, f"Entry {row.seq} was modified: its contents no longer match its hash."
                )
            try:
                body = json.loads(row.body)
            except ValueError:
                return bad(row.seq, f"Entry {row.seq} is unreadable.")
            if not isinstance(body, dict) or body.get("seq") != row.seq:
                named = body.get("seq") if isinstance(body, dict) else None
                return bad(
                    row.seq,
                    f"Entry {row.seq} holds the contents of entry {named}: entries were reordered.",
                )
            if body.get("prev") != prev or row.prev_hash != prev:
                return bad(
                    row.seq,
                    f"Entry {row.seq} does not follow entry {row.seq - 1}: one of them was "
                    "rewritten, or entries were removed or reordered here.",
                )
            cp = checkpoints.get(row.seq)
            if cp is not None:
                if cp.entry_hash != row.entry_hash:
                    first = last_good_cp + 1
                    return bad(
                        first,
                        f"Entries {first}..{row.seq} were rewritten: entry {row.seq} no longer "
                        f"matches the signed checkpoint at {row.seq}.",
                    )
                last_good_cp = row.seq
            prev = row.entry_hash
            expected += 1
            count += 1
    head = expected - 1
    beyond = [seq for seq in checkpoints if seq > head]
    if beyond:
        return bad(
            head + 1,
            f"Entries {head + 1}..{max(beyond)} were deleted: a signed checkpoint names entry "
            f"{max(beyond)} but the log ends at {head}.",
        )
    if head > last_good_cp:
        warnings.append(
            f"Entries {last_good_cp + 1}..{head} come after the last signed checkpoint: the chain "
            "protects them, but deleting the newest of them would go unnoticed."
        )
    return AuditVerification(
        True,
        count,
        len(checkpoints),
        verified,
        head_seq=head,
        head_hash=prev,
        warnings=tuple(warnings),
    )
