"""A separate process appending to the shared audit log (used by test_audit)."""

from __future__ import annotations


def append_many(url: str, worker: str, n: int) -> int:
    from bastion.guards import AuditLog, GuardDB

    with GuardDB(url) as db:
        log = AuditLog(db)
        for i in range(n):
            log.append({"request_id": f"{worker}-{i}", "decision": "allow"})
    return n
