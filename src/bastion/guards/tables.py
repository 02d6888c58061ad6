"""The guards' own tables in the results-store database.

They live beside the store's ``runs`` and ``findings`` tables, in the same SQLite
file or PostgreSQL schema, but on their own SQLAlchemy metadata: the store never
creates, migrates or reads them, and :class:`~bastion.guards.db.GuardDB` creates
them when missing.

``guard_api_keys``
    API keys: id, principal, allowed models, HMAC-SHA256 digest of the secret (never
    the secret), pepper fingerprint, creation, expiry and revocation times.
``guard_audit_log``
    The hash-chained audit log, one row per request; ``body`` is the exact canonical
    JSON that was hashed.
``guard_audit_checkpoints``
    Ed25519-signed checkpoints over the chain head.
``guard_review_queue``
    Requests withheld for human review, with their inputs and the model's answer.

Examples
--------
>>> sorted(GuardBase.metadata.tables)  # doctest: +NORMALIZE_WHITESPACE
['guard_api_keys', 'guard_audit_checkpoints', 'guard_audit_log', 'guard_review_queue']
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bastion.store.schema import UTCDateTime

__all__ = ["ApiKeyRow", "AuditCheckpointRow", "AuditEntryRow", "GuardBase", "ReviewRow"]

_BigId = BigInteger().with_variant(Integer(), "sqlite")


class GuardBase(DeclarativeBase):
    """Declarative base of the guard tables (separate from the store's metadata)."""

    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class ApiKeyRow(GuardBase):
    """One API key; the secret itself is never stored."""

    __tablename__ = "guard_api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    principal: Mapped[str] = mapped_column(String(256))
    models: Mapped[list[Any]]
    digest: Mapped[str] = mapped_column(String(64))
    pepper_id: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(512), default="")
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_guard_api_keys_principal", "principal"),)


class AuditEntryRow(GuardBase):
    """One entry of the hash chain."""

    __tablename__ = "guard_audit_log"

    seq: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=False)
    request_id: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_guard_audit_log_request_id", "request_id"),)


class AuditCheckpointRow(GuardBase):
    """A signed statement that the chain had ``entry_hash`` at ``seq``."""

    __tablename__ = "guard_audit_checkpoints"

    seq: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=False)
    entry_hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(128))


class ReviewRow(GuardBase):
    """A request withheld for human review."""

    __tablename__ = "guard_review_queue"

    review_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    principal: Mapped[str] = mapped_column(String(256))
    model: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    rows: Mapped[list[Any]]
    inputs: Mapped[list[Any]]
    outputs: Mapped[list[Any]]
    resolution: Mapped[dict[str, Any] | None]
    resolved_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_guard_review_queue_status", "status"),)
