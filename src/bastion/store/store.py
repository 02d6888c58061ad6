"""The results store: runs and their findings in SQLite or PostgreSQL.

An assessment saves its :class:`~bastion.findings.run.RunRecord` when it starts,
records every probe the moment it finishes (:meth:`Store.record_probe`, one
transaction per probe) and marks the run finished at the end. A run that is
killed half-way keeps every probe that completed; the next run with the same
config fingerprint finds it with :meth:`Store.find_resumable` and carries on.

Open a store with :func:`open_store`. One :class:`Store` may be shared by the
threads of one process; open a separate one in each process.

Examples
--------
>>> from bastion.findings import Finding, Severity, Status
>>> from bastion.findings.run import GateResult, RunRecord, RunStatus
>>> from bastion.store import open_store
>>> store = open_store("sqlite://")  # in memory; the default is .bastion/bastion.db
>>> run = RunRecord.new(name="demo", seed=0, config_fingerprint="cfg1",
...                     planned=["robustness.noise@cnn"])
>>> store.save_run(run)
>>> finding = Finding(probe_id="robustness.noise", title="Noise", target="cnn",
...                   status=Status.VULNERABLE, severity=Severity.LOW, summary="Fragile.")
>>> store.record_probe(run.run_id, "robustness.noise@cnn", [finding])
>>> store.find_resumable("cfg1").completed
['robustness.noise@cnn']
>>> store.finish_run(run.run_id, RunStatus.COMPLETED, GateResult())
>>> again = store.get_run(run.run_id[:6])
>>> again.status.value, again.findings == [finding], again.finished_at is not None
('completed', True, True)
>>> store.close()
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, delete, func, insert, inspect, select, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload

from bastion import __version__
from bastion.errors import StoreError, UsageError
from bastion.findings import Finding
from bastion.findings.run import GateResult, RunRecord, RunStatus
from bastion.store.engine import WRITE_OPTION, store_error
from bastion.store.schema import (
    STORE_SCHEMA_VERSION,
    Base,
    FindingRow,
    RunRow,
    SchemaVersionRow,
)
from bastion.store.url import redact_url

__all__ = ["Store"]

log = logging.getLogger(__name__)

_RESUMABLE = (RunStatus.RUNNING.value, RunStatus.INTERRUPTED.value)
_MAX_CANDIDATES = 10
# Serialises schema creation between processes opening one PostgreSQL database at once.
_PG_INIT_LOCK = 0x62617374696F6E  # "bastion"

Migration = Callable[[Connection], None]
# _MIGRATIONS[v] upgrades a database at version v - 1 to version v.
_MIGRATIONS: dict[int, Migration] = {}


def _now() -> datetime:
    return datetime.now(UTC)


class Store:
    """Runs and findings in a SQL database.

    Do not construct directly; use :func:`open_store`, which resolves the URL,
    creates the schema and turns connection problems into
    :class:`~bastion.errors.StoreError`.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        Engine made by :func:`bastion.store.engine.make_engine`.
    url : sqlalchemy.engine.URL
        The URL ``engine`` connects to.

    Notes
    -----
    Every method runs in its own transaction. Every database failure surfaces as
    :class:`~bastion.errors.StoreError` with the URL's password masked. The store
    is a context manager; leaving the block closes it.

    Examples
    --------
    >>> from bastion.store import open_store
    >>> with open_store("sqlite://") as store:
    ...     store.list_runs()
    []
    """

    def __init__(self, engine: Engine, url: URL) -> None:
        self._engine = engine
        self._url = url
        self._closed = False
        if engine.dialect.name == "postgresql":
            # One snapshot per read, so a run and its findings always agree.
            self._read_bind: Engine = engine.execution_options(isolation_level="REPEATABLE READ")
        else:
            self._read_bind = engine

    # -- lifecycle ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The store's URL, with any password masked."""
        return redact_url(self._url)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return str(self._engine.dialect.name)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release every connection. Later calls on this store raise StoreError."""
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    @contextmanager
    def _session(self, action: str, *, write: bool) -> Iterator[Session]:
        if self._closed:
            raise StoreError(f"Cannot {action}: the store at {self.url} is closed; open it again.")
        bind = self._engine if write else self._read_bind
        try:
            with Session(bind, expire_on_commit=False) as session, session.begin():
                session.connection(execution_options={WRITE_OPTION: write})
                yield session
        except StoreError:
            raise
        except (SQLAlchemyError, OSError) as err:
            raise store_error(err, self._url, action) from err

    def _initialise(self) -> None:
        """Create missing tables and bring the schema to this release's version."""
        with self._session("open", write=False) as session:
            version = self._schema_version(session)
        if version is not None and version > STORE_SCHEMA_VERSION:
            raise self._too_new(version)
        if version == STORE_SCHEMA_VERSION:
            return
        with self._session("create the schema of", write=True) as session:
            conn = session.connection()
            if self.dialect == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_INIT_LOCK})
            version = self._schema_version(session)  # another process may have won the race
            if version is not None and version > STORE_SCHEMA_VERSION:
                raise self._too_new(version)
            if version is not None:
                for target in range(version + 1, STORE_SCHEMA_VERSION + 1):
                    migrate = _MIGRATIONS.get(target)
                    if migrate is None:
                        raise StoreError(
                            f"The results store at {self.url} has schema version {version} and "
                            f"this Bastion has no migration to version {target}; open it with "
                            "the Bastion release that wrote it and export the runs."
                        )
                    log.info("migrating store %s to schema version %d", self.url, target)
                    migrate(conn)
                    session.add(self._version_row(target))
            Base.metadata.create_all(conn)
            if version is None:
                session.add(self._version_row(STORE_SCHEMA_VERSION))
                log.info("created results store at %s", self.url)

    @staticmethod
    def _version_row(version: int) -> SchemaVersionRow:
        return SchemaVersionRow(version=version, applied_at=_now(), bastion_version=__version__)

    @staticmethod
    def _schema_version(session: Session) -> int | None:
        """The database's schema version; None when any table is missing."""
        inspector = inspect(session.connection())
        if not all(inspector.has_table(name) for name in Base.metadata.tables):
            return None
        return session.scalar(select(func.max(SchemaVersionRow.version)))

    def _too_new(self, version: int) -> StoreError:
        return StoreError(
            f"The results store at {self.url} has schema version {version}, newer than this "
            f"Bastion understands ({STORE_SCHEMA_VERSION}); upgrade Bastion to read it."
        )

    # -- writing ----------------------------------------------------------------------

    def save_run(self, record: RunRecord) -> None:
        """Insert or update a run and replace all of its findings, in one transaction.

        Parameters
        ----------
        record : RunRecord
            The run as it stands; its ``findings`` become the run's only findings.
        """
        with self._session(f"save run {record.run_id} to", write=True) as session:
            row = session.get(RunRow, record.run_id, with_for_update=True)
            if row is None:
                row = RunRow(run_id=record.run_id)
                session.add(row)
            _fill_run_row(row, record)
            session.flush()
            session.execute(delete(FindingRow).where(FindingRow.run_id == record.run_id))
            _insert_findings(session, record.run_id, 0, record.findings)
        log.debug("saved run %s (%d findings)", record.run_id, len(record.findings))

    def record_probe(self, run_id: str, planned_key: str, findings: list[Finding]) -> None:
        """Append one probe's findings and mark it completed, in one transaction.

        This is what makes runs resumable: either both the findings and the
        ``completed`` entry are stored, or neither is. Recording a ``planned_key``
        that is already completed changes nothing (the first result wins), so an
        executor that may deliver a result twice can retry safely.

        Parameters
        ----------
        run_id : str
            A run saved earlier with :meth:`save_run`.
        planned_key : str
            The probe run's plan key, ``probe_id@target``.
        findings : list of Finding
            What the probe found, in order.

        Raises
        ------
        StoreError
            If the run is not in the store.
        """
        with self._session(f"record probe {planned_key} of run {run_id} in", write=True) as s:
            row = s.get(RunRow, run_id, with_for_update=True)
            if row is None:
                raise StoreError(
                    f"Cannot record probe {planned_key}: run {run_id!r} is not in the store at "
                    f"{self.url}; save the run with save_run() first."
                )
            if planned_key in row.completed:
                log.warning(
                    "probe %s of run %s was already recorded; keeping the first result",
                    planned_key,
                    run_id,
                )
                return
            last = s.scalar(
                select(func.max(FindingRow.position)).where(FindingRow.run_id == run_id)
            )
            _insert_findings(s, run_id, 0 if last is None else last + 1, findings)
            row.completed = [*row.completed, planned_key]
        log.debug("recorded %s for run %s (%d findings)", planned_key, run_id, len(findings))

    def finish_run(self, run_id: str, status: RunStatus, gate: GateResult) -> None:
        """Set a run's final status and gate, and its ``finished_at`` to now.

        Parameters
        ----------
        run_id : str
            The run's full id.
        status : RunStatus
            Usually ``completed``, ``interrupted`` or ``failed``.
        gate : GateResult
            The evaluated CI gate.

        Raises
        ------
        StoreError
            If the run is not in the store.
        """
        with self._session(f"finish run {run_id} in", write=True) as session:
            row = session.get(RunRow, run_id, with_for_update=True)
            if row is None:
                raise StoreError(
                    f"Cannot finish run {run_id!r}: it is not in the store at {self.url}; "
                    "save the run with save_run() first."
                )
            row.status = RunStatus(status).value
            row.gate = gate.model_dump(mode="json")
            row.finished_at = _now()

    # -- reading ----------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id or this unique id prefix, with all its findings.

        Parameters
        ----------
        run_id : str
            A full run id or its first characters.

        Returns
        -------
        RunRecord
            The stored run.

        Raises
        ------
        StoreError
            If no run matches, or the prefix matches several (they are listed).
        """
        ref = run_id.strip()
        if not ref:
            raise StoreError("An empty run id matches nothing; give a run id or its prefix.")
        with self._session(f"read run {ref} from", write=False) as session:
            row = session.get(RunRow, ref, options=[selectinload(RunRow.findings)])
            if row is not None:
                return self._to_record(row)
            query = (
                select(RunRow)
                .where(RunRow.run_id.startswith(ref, autoescape=True))
                .order_by(RunRow.started_at.desc(), RunRow.run_id)
                .limit(_MAX_CANDIDATES + 1)
                .options(selectinload(RunRow.findings))
            )
            rows = list(session.scalars(query))
            if len(rows) == 1:
                return self._to_record(rows[0])
        if not rows:
            raise StoreError(
                f"No run matches {ref!r} in the store at {self.url}; "
                "'bastion runs list' shows the run ids."
            )
        shown = ", ".join(r.run_id for r in rows[:_MAX_CANDIDATES])
        more = " and more" if len(rows) > _MAX_CANDIDATES else ""
        raise StoreError(
            f"The run id prefix {ref!r} is ambiguous: it matches {shown}{more}; "
            "give more characters."
        )

    def list_runs(self, limit: int = 20, *, name: str | None = None) -> list[RunRecord]:
        """The newest runs, newest first, each with all its findings.

        Findings are included (one extra query for all listed runs), so
        ``severity_counts()`` and ``status_counts()`` work on the results.

        Parameters
        ----------
        limit : int
            How many runs at most, at least 1.
        name : str or None
            Only runs with this name.

        Returns
        -------
        list of RunRecord
            Ordered by ``started_at``, newest first.
        """
        if limit < 1:
            raise UsageError(f"The run list limit must be at least 1; got {limit}.")
        query = select(RunRow).options(selectinload(RunRow.findings))
        if name is not None:
            query = query.where(RunRow.name == name)
        query = query.order_by(RunRow.started_at.desc(), RunRow.run_id.desc()).limit(limit)
        with self._session("list runs in", write=False) as session:
            return [self._to_record(row) for row in session.scalars(query)]

    def find_resumable(self, config_fingerprint: str) -> RunRecord | None:
        """The newest run with this fingerprint that is ``running`` or ``interrupted``.

        Parameters
        ----------
        config_fingerprint : str
            Fingerprint of the assessment config.

        Returns
        -------
        RunRecord or None
            The run to resume, with its findings and ``completed`` list.
        """
        query = (
            select(RunRow)
            .where(RunRow.config_fingerprint == config_fingerprint)
            .where(RunRow.status.in_(_RESUMABLE))
            .order_by(RunRow.started_at.desc(), RunRow.run_id.desc())
            .limit(1)
            .options(selectinload(RunRow.findings))
        )
        with self._session("search for a resumable run in", write=False) as session:
            row = session.scalars(query).first()
            return None if row is None else self._to_record(row)

    def latest_run(self, name: str | None = None) -> RunRecord | None:
        """The most recently started run, optionally only among runs called ``name``.

        Parameters
        ----------
        name : str or None
            Run name to filter on.

        Returns
        -------
        RunRecord or None
            None when the store holds no such run.
        """
        runs = self.list_runs(1, name=name)
        return runs[0] if runs else None

    def _to_record(self, row: RunRow) -> RunRecord:
        try:
            return RunRecord.model_validate(
                {
                    "schema_version": row.record_schema_version,
                    "run_id": row.run_id,
                    "name": row.name,
                    "started_at": row.started_at,
                    "finished_at": row.finished_at,
                    "status": row.status,
                    "seed": row.seed,
                    "config_fingerprint": row.config_fingerprint,
                    "bastion_version": row.bastion_version,
                    "targets": row.targets,
                    "datasets": row.datasets,
                    "planned": row.planned,
                    "completed": row.completed,
                    "skipped": row.skipped,
                    "findings": [f.data for f in row.findings],
                    "gate": row.gate,
                    "options": row.options,
                }
            )
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise StoreError(
                f"Run {row.run_id} in the store at {self.url} cannot be read ({where}: "
                f"{first['msg']}); it was probably written by an incompatible Bastion version."
            ) from err


def _fill_run_row(row: RunRow, record: RunRecord) -> None:
    data = record.model_dump(mode="json", exclude={"findings"})
    row.name = record.name
    row.status = record.status.value
    row.started_at = record.started_at
    row.finished_at = record.finished_at
    row.seed = record.seed
    row.config_fingerprint = record.config_fingerprint
    row.bastion_version = record.bastion_version
    row.record_schema_version = record.schema_version
    row.targets = data["targets"]
    row.datasets = data["datasets"]
    row.planned = data["planned"]
    row.completed = data["completed"]
    row.skipped = data["skipped"]
    row.gate = data["gate"]
    row.options = data["options"]


def _insert_findings(session: Session, run_id: str, start: int, findings: list[Finding]) -> None:
    if not findings:
        return
    rows: list[dict[str, Any]] = [
        {
            "run_id": run_id,
            "position": start + i,
            "key": f.key,
            "probe_id": f.probe_id,
            "target": f.target,
            "variant": f.variant,
            "status": f.status.value,
            "severity": f.severity.value,
            "data": f.model_dump(mode="json"),
        }
        for i, f in enumerate(findings)
    ]
    session.execute(insert(FindingRow), rows)
