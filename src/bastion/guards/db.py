"""The database the guards keep their state in: the results store's database.

:class:`GuardDB` resolves a store location exactly like the results store does
(:func:`bastion.store.url.resolve_url`: nothing means ``./.bastion/bastion.db``, a
path means a SQLite file, or a SQLAlchemy URL for SQLite or PostgreSQL), builds the
engine with the store's connection settings (:func:`bastion.store.engine.make_engine`)
and creates the guard tables (:mod:`bastion.guards.tables`) when they are missing.
Write transactions take SQLite's write lock up front (``BEGIN IMMEDIATE``), and every
database failure becomes a :class:`~bastion.errors.StoreError` with the password
masked. :meth:`GuardDB.raw_write` is the same transaction on a bare DB-API cursor:
the ORM session costs several times more than the SQL it sends. :meth:`GuardDB.run_write`
runs such a transaction on a connection kept open for it, for the one hot path that
writes on every request (the audit log), which then pays neither for a pool checkout
(a round trip to PostgreSQL with its pre-ping) nor for the reset at check-in.

``synchronous`` chooses how durable a SQLite commit is (WAL mode either way):
``"normal"`` (the store's default) survives the process being killed but a power cut
or OS crash may lose the last commits; ``"full"`` also syncs the log file at every
commit, so committed data survives a power cut, at the price of one ``fsync`` per
transaction. PostgreSQL commits are durable whatever this says.

Examples
--------
>>> from sqlalchemy import select
>>> from bastion.guards.tables import ApiKeyRow
>>> with GuardDB("sqlite://") as db:
...     with db.session("list keys") as session:
...         session.scalars(select(ApiKeyRow)).all()
[]
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from bastion.errors import StoreError
from bastion.guards.tables import GuardBase
from bastion.guards.wal import disable_auto_checkpoint
from bastion.store.engine import WRITE_OPTION, make_engine, store_error
from bastion.store.url import redact_url, resolve_url, sqlite_file

__all__ = ["GuardDB"]

log = logging.getLogger(__name__)

_PG_LOCK = 0x6261737469677264  # "bastigrd": serialises table creation between processes

Synchronous = Literal["normal", "full"]
T = TypeVar("T")

_INHERITED: list[Any] = []
"""Writer connections a forked child found open: kept referenced, never used or closed
there (closing would end the parent's PostgreSQL session or touch its SQLite locks)."""


class GuardDB:
    """Engine and sessions for the guard tables.

    Parameters
    ----------
    url : str or None
        Store location: SQLAlchemy URL, SQLite path, or None for the default store.
    root : Path or None
        Folder of the default store (working directory when None).
    create : bool
        When False, a SQLite file that does not exist is an error (read-only commands).
    synchronous : {"normal", "full"} or None
        SQLite commit durability (see the module docstring); None keeps the store's
        default (``"normal"``). Ignored for PostgreSQL.
    background_checkpoints : bool
        SQLite: no WAL checkpoint inside commits; a
        :class:`~bastion.guards.wal.WalCheckpointer` must run them instead (the
        gateway does). Ignored for PostgreSQL and in-memory stores.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        root: Path | None = None,
        create: bool = True,
        synchronous: Synchronous | None = None,
        background_checkpoints: bool = False,
    ):
        if synchronous not in (None, "normal", "full"):
            raise StoreError(f"synchronous must be 'normal' or 'full'; got {synchronous!r}.")
        self._url = resolve_url(url, root=root)
        self.synchronous: Synchronous = synchronous or "normal"
        path = sqlite_file(self._url)
        if path is not None:
            if not path.exists() and not create:
                raise StoreError(
                    f"No results store at {path}; pass --store with the URL of the store the "
                    "gateway writes to."
                )
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StoreError(
                    f"Cannot create the folder {path.parent} for the store "
                    f"({err.strerror or err}); check its permissions or pass another --store."
                ) from err
        self.engine = make_engine(self._url)
        if synchronous == "full" and self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_full_sync)
        self.background_checkpoints = bool(
            background_checkpoints and self.dialect == "sqlite" and path is not None
        )
        if self.background_checkpoints:
            event.listen(self.engine, "connect", disable_auto_checkpoint)
        self._closed = False
        self._writer_lock = threading.Lock()
        self._writer: Any = None  # the DB-API connection of run_write, opened on first use
        self._writer_pid = 0
        self._sqlite = self.dialect == "sqlite"
        self._dbapi_error: type[Exception] = self.engine.dialect.loaded_dbapi.Error
        try:
            self._create_tables()
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        """The URL with any password masked."""
        return redact_url(self._url)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return str(self.engine.dialect.name)

    def _create_tables(self) -> None:
        with self.session("create the guard tables of", write=True) as session:
            if self.dialect == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
            GuardBase.metadata.create_all(session.connection())

    @contextmanager
    def session(self, action: str, *, write: bool = False) -> Iterator[Session]:
        """A session in one transaction, committed on success; errors become StoreError.

        Parameters
        ----------
        action : str
            What is being done, for the error message (``"revoke a key in"``).
        write : bool
            Take the write lock at the start (SQLite ``BEGIN IMMEDIATE``).
        """
        if self._closed:
            raise StoreError(f"Cannot {action} the store at {self.url}: it is closed.")
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                session.connection(execution_options={WRITE_OPTION: write})
                yield session
        except StoreError:
            raise
        except (SQLAlchemyError, OSError) as err:
            raise store_error(err, self._url, action) from err

    @contextmanager
    def raw_write(self, action: str) -> Iterator[Any]:
        """A DB-API cursor in one write transaction, committed on success.

        No ORM session, on a connection checked out of the pool for the transaction
        (:meth:`run_write` keeps one instead). On SQLite the transaction starts with
        ``BEGIN IMMEDIATE`` (the write lock); the SQL must use the driver's
        placeholders (:attr:`placeholder`). Errors become StoreError.

        Examples
        --------
        >>> with GuardDB("sqlite://") as db:
        ...     with db.raw_write("count keys in") as cur:
        ...         _ = cur.execute("SELECT count(*) FROM guard_api_keys")
        ...         cur.fetchone()[0]
        0
        """
        if self._closed:
            raise StoreError(f"Cannot {action} the store at {self.url}: it is closed.")
        try:
            conn = self.engine.raw_connection()
        except (SQLAlchemyError, OSError) as err:
            raise store_error(err, self._url, action) from err
        try:
            cursor = conn.cursor()
            try:
                if self.dialect == "sqlite":
                    cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                conn.commit()
            except BaseException:
                _rollback(conn)
                raise
            finally:
                cursor.close()
        except StoreError:
            raise
        except (SQLAlchemyError, OSError, self.engine.dialect.loaded_dbapi.Error) as err:
            raise store_error(err, self._url, action) from err
        finally:
            conn.close()

    @property
    def placeholder(self) -> str:
        """The driver's parameter placeholder for :meth:`raw_write` SQL (``?`` or ``%s``)."""
        return "?" if self.engine.dialect.paramstyle == "qmark" else "%s"

    def run_write(self, action: str, work: Callable[[Any], T]) -> T:
        """Run ``work(cursor)`` in one write transaction on the writer connection; commit.

        Like :meth:`raw_write`, but on one DB-API connection this store keeps open for
        it instead of one checked out of the pool per transaction; calls are serialised
        by a lock. After any error the connection is closed and the next call opens a
        new one. When the kept connection turns out to be dead before anything was
        committed (a PostgreSQL restart or idle timeout), the transaction is run once
        more on a new connection, so ``work`` must only depend on what it reads in the
        transaction. An in-memory SQLite store has a single connection; its writes go
        through :meth:`raw_write`.

        Parameters
        ----------
        action : str
            What is being done, for the error message (``"append to the audit log in"``).
        work : callable
            Gets the cursor (SQL with :attr:`placeholder` parameters; on SQLite the
            write lock is already taken) and returns the call's result.

        Raises
        ------
        StoreError
            If the transaction failed; nothing of it is stored.

        Examples
        --------
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp, GuardDB(f"{tmp}/s.db") as db:
        ...     db.run_write("count keys in", lambda cur: cur.execute(
        ...         "SELECT count(*) FROM guard_api_keys").fetchone()[0])
        0
        """
        if isinstance(self.engine.pool, StaticPool):
            with self.raw_write(action) as cursor:
                return work(cursor)
        errors = (SQLAlchemyError, OSError, self._dbapi_error)
        with self._writer_lock:
            if self._closed:
                raise StoreError(f"Cannot {action} the store at {self.url}: it is closed.")
            if self._writer is not None and self._writer_pid != os.getpid():
                _INHERITED.append(self._writer)  # forked: the parent's, not ours to use
                self._writer = None
            reused = self._writer is not None
            try:
                try:
                    return self._transaction(work)
                except _NotCommitted as failed:
                    if not (reused and failed.dead):
                        raise failed.cause from None
                    log.info("the store's writer connection was lost; reconnecting")
                try:
                    return self._transaction(work)
                except _NotCommitted as failed:
                    raise failed.cause from None
            except StoreError:
                raise
            except errors as err:
                raise store_error(err, self._url, action) from err

    def _transaction(self, work: Callable[[Any], T]) -> T:
        """One transaction on the writer connection, opened if needed, dropped on error.

        Raises
        ------
        _NotCommitted
            For a database error before COMMIT was sent (nothing of it is stored).
        """
        if self._writer is None:
            fairy = self.engine.raw_connection()  # connect events (SQLite pragmas) apply
            conn = fairy.dbapi_connection
            fairy.detach()  # no longer the pool's: it neither resets nor closes it
            self._writer, self._writer_pid = conn, os.getpid()
        conn = self._writer
        try:
            cursor = conn.cursor()
            try:
                if self._sqlite:
                    cursor.execute("BEGIN IMMEDIATE")
                result = work(cursor)
            finally:
                _close_quietly(cursor)
        except (SQLAlchemyError, OSError, self._dbapi_error) as err:
            dead = self._is_disconnect(err, conn)
            self._drop_writer()
            raise _NotCommitted(err, dead=dead) from err
        except BaseException:
            self._drop_writer()
            raise
        try:
            conn.commit()
        except BaseException:
            self._drop_writer()
            raise
        return result

    def _is_disconnect(self, err: BaseException, conn: Any) -> bool:
        """Whether ``err`` says ``conn`` is gone (the dialect's own judgement)."""
        try:
            return bool(self.engine.dialect.is_disconnect(cast(Any, err), conn, None))
        except Exception:  # the check must not hide the error itself
            return False

    def _drop_writer(self) -> None:
        conn, self._writer = self._writer, None
        if conn is not None:
            _rollback(conn)
            _close_quietly(conn)

    def close(self) -> None:
        """Release every connection."""
        if not self._closed:
            with self._writer_lock:
                self._closed = True
                if self._writer is not None and self._writer_pid == os.getpid():
                    _close_quietly(self._writer)
                self._writer = None
            self.engine.dispose()

    def __enter__(self) -> GuardDB:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GuardDB({self.url!r})"


def _sqlite_full_sync(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


class _NotCommitted(Exception):
    """A database error before COMMIT was sent: nothing of the transaction is stored."""

    def __init__(self, cause: BaseException, *, dead: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.dead = dead


def _close_quietly(resource: Any) -> None:
    try:
        resource.close()
    except Exception as err:  # already broken; nothing more to release
        log.debug("close failed: %s", err)


def _rollback(conn: Any) -> None:
    try:
        conn.rollback()
    except Exception as err:  # the connection is invalidated by the pool on return
        log.debug("rollback failed: %s", err)
