"""The database tables of the results store, as a typed SQLAlchemy ORM.

Three tables:

``runs``
    One row per assessment run. Scalar fields of :class:`~bastion.findings.run.RunRecord`
    are columns; its structured metadata (targets, datasets, planned, completed,
    skipped, gate, options) are JSON columns.
``findings``
    One row per finding, in the order the run produced them (``position``). The
    columns the store filters on (``key``, ``probe_id``, ``target``, ``variant``,
    ``status``, ``severity``) sit beside the full finding as JSON
    (``Finding.model_dump(mode="json")``), which is what is read back.
``schema_version``
    One row per schema version applied to this database, so later releases can
    migrate an existing store in place.

Examples
--------
>>> from bastion.store.schema import Base, STORE_SCHEMA_VERSION
>>> sorted(Base.metadata.tables)
['findings', 'runs', 'schema_version']
>>> STORE_SCHEMA_VERSION
1
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

__all__ = [
    "STORE_SCHEMA_VERSION",
    "Base",
    "FindingRow",
    "RunRow",
    "SchemaVersionRow",
    "UTCDateTime",
]

STORE_SCHEMA_VERSION = 1
"""Version of the table layout this release writes; bump it with every migration."""

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
_BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (UTC).

    SQLite keeps no time zone, PostgreSQL converts to the session's zone; this type
    makes both return the same aware UTC value that was written. A naive value is
    taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC before writing (naive values are assumed UTC)."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach or convert to UTC after reading."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the store's tables."""

    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class SchemaVersionRow(Base):
    """One applied schema version; the highest is the database's current version."""

    __tablename__ = "schema_version"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    applied_at: Mapped[datetime]
    bastion_version: Mapped[str] = mapped_column(String(64), default="")


class RunRow(Base):
    """One assessment run."""

    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    seed: Mapped[int] = mapped_column(BigInteger)
    config_fingerprint: Mapped[str] = mapped_column(String, default="")
    bastion_version: Mapped[str] = mapped_column(String(64), default="")
    record_schema_version: Mapped[str] = mapped_column(String(16))
    targets: Mapped[list[Any]]
    datasets: Mapped[list[Any]]
    planned: Mapped[list[Any]]
    completed: Mapped[list[Any]]
    skipped: Mapped[list[Any]]
    gate: Mapped[dict[str, Any]]
    options: Mapped[dict[str, Any]]

    findings: Mapped[list[FindingRow]] = relationship(
        back_populates="run",
        order_by="FindingRow.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    __table_args__ = (
        Index("ix_runs_config_fingerprint", "config_fingerprint"),
        Index("ix_runs_started_at", "started_at"),
        Index("ix_runs_name", "name"),
    )


class FindingRow(Base):
    """One finding of one run."""

    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), ForeignKey("runs.run_id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String)
    probe_id: Mapped[str] = mapped_column(String)
    target: Mapped[str] = mapped_column(String)
    variant: Mapped[str] = mapped_column(String, default="")
    status: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]]

    run: Mapped[RunRow] = relationship(back_populates="findings")

    __table_args__ = (
        UniqueConstraint("run_id", "position", name="uq_findings_run_position"),
        Index("ix_findings_run_id", "run_id"),
        Index("ix_findings_key", "key"),
    )
