"""The database the guards keep their state in: the results store's database.

:class:`GuardDB` resolves a store location exactly like the results store does
(:func:`bastion.store.url.resolve_url`: nothing means ``./.bastion/bastion.db``, a
path means a SQLite file, or a SQLAlchemy URL for SQLite or PostgreSQL), builds the
engine with the store's connection settings (:func:`bastion.store.engine.make_engine`)
and creates the guard tables (:mod:`bastion.guards.tables`) when they are missing.
Write transactions take SQLite's write lock up front (``BEGIN IMMEDIATE``), and every
database failure becomes a :class:`~bastion.errors.StoreError` with the password
masked. :meth:`GuardDB.raw_write` is the same transaction on a bare DB-API cursor,
for the one hot path that writes on every request (the audit log): the ORM session
costs several times more than the SQL it sends.

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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bastion.errors import StoreError
from bastion.guards.tables import GuardBase
from bastion.store.engine import WRITE_OPTION, make_engine, store_error
from bastion.store.url import redact_url, resolve_url, sqlite_file

__all__ = ["GuardDB"]

log = logging.getLogger(__name__)

_PG_LOCK = 0x6261737469677264  # "bastigrd": serialises table creation between processes

Synchronous = Literal["normal", "full"]


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
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        root: Path | None = None,
        create: bool = True,
        synchronous: Synchronous | None = None,
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
        self._closed = False
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

        The fast path for a write on every request: no ORM session. On SQLite the
        transaction starts with ``BEGIN IMMEDIATE`` (the write lock); the SQL must use
        the driver's placeholders (:attr:`placeholder`). Errors become StoreError.

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

    def close(self) -> None:
        """Release every connection."""
        if not self._closed:
            self._closed = True
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


def _rollback(conn: Any) -> None:
    try:
        conn.rollback()
    except Exception as err:  # the connection is invalidated by the pool on return
        log.debug("rollback failed: %s", err)
