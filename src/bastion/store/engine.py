"""Engines for the results store: connection settings and error translation.

SQLite gets write-ahead logging (readers never block the writer), a busy timeout,
foreign keys and explicit transactions: write transactions start with
``BEGIN IMMEDIATE`` so two processes never deadlock upgrading a read lock.
PostgreSQL gets a connect timeout and pre-ping. Both encode JSON the same way,
keeping NaN and infinities (which plain JSON, and PostgreSQL, reject).

Every database error is turned into a :class:`~bastion.errors.StoreError` whose
message quotes the URL with its password masked.

Examples
--------
>>> from bastion.store.engine import dumps_json, loads_json
>>> text = dumps_json({"rate": float("nan"), "n": [1, float("inf")]})
>>> text
'{"rate":{"$bastion_float":"nan"},"n":[1,{"$bastion_float":"inf"}]}'
>>> loads_json(text)["n"]
[1, inf]
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from bastion.errors import StoreError
from bastion.store.url import redact_url, sqlite_file

__all__ = ["WRITE_OPTION", "dumps_json", "loads_json", "make_engine", "store_error"]

log = logging.getLogger(__name__)

WRITE_OPTION = "bastion_write"
"""Connection execution option marking a transaction that will write."""

_SQLITE_BUSY_TIMEOUT_S = 30.0
_PG_CONNECT_TIMEOUT_S = 10
_FLOAT_TAG = "$bastion_float"
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _tag_nonfinite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        word = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return {_FLOAT_TAG: word}
    if isinstance(value, dict):
        return {k: _tag_nonfinite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_tag_nonfinite(v) for v in value]
    return value


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _FLOAT_TAG in obj and obj[_FLOAT_TAG] in _NONFINITE:
        return _NONFINITE[obj[_FLOAT_TAG]]
    return obj


def dumps_json(value: Any) -> str:
    """Encode ``value`` as strict JSON, tagging NaN and infinities so they survive.

    Parameters
    ----------
    value : Any
        JSON-compatible data (dicts, lists, str, int, float, bool, None).

    Returns
    -------
    str
        Compact JSON text.
    """
    return json.dumps(_tag_nonfinite(value), allow_nan=False, separators=(",", ":"))


def loads_json(text: str | bytes) -> Any:
    """Decode text written by :func:`dumps_json`.

    Parameters
    ----------
    text : str or bytes
        JSON text.

    Returns
    -------
    Any
        The decoded data, with tagged non-finite floats restored.
    """
    return json.loads(text, object_hook=_untag)


def _reason(err: BaseException, url: URL) -> str:
    """The first line of a driver error, without any password it might quote."""
    orig = err.orig if isinstance(err, DBAPIError) and err.orig is not None else err
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    text = text.rstrip(".")
    if url.password:
        text = text.replace(str(url.password), "***")
    return text


def _hint(reason: str) -> str:
    low = reason.lower()
    if "not a database" in low or "malformed" in low:
        return "the file is not a Bastion store; point --store at another file"
    if "readonly" in low or "read-only" in low or "permission denied" in low:
        return "check that you may write to it (file, folder or database permissions)"
    if "unable to open" in low:
        return "check that its folder exists and is writable"
    if "locked" in low:
        return "another process holds a lock on it; try again when that process finishes"
    if "role" in low and "does not exist" in low:
        return "check the user name in the URL"
    if "password" in low or "authentication" in low:
        return "check the user name and password in the URL"
    if "does not exist" in low and "database" in low:
        return "create the database first (createdb) or fix its name in the URL"
    if any(word in low for word in ("refused", "timeout", "timed out", "resolve", "host")):
        return "check that the server is running and reachable at that address"
    return "check the store URL and that the database is reachable and writable"


def store_error(err: BaseException, url: URL, action: str) -> StoreError:
    """A :class:`StoreError` for ``err`` raised while doing ``action`` on ``url``.

    Parameters
    ----------
    err : BaseException
        The driver, SQLAlchemy or OS error.
    url : sqlalchemy.engine.URL
        The store URL (its password is never shown).
    action : str
        What was being done, e.g. ``"open"`` or ``"save run 3f2a…"``.

    Returns
    -------
    StoreError
        One sentence: what failed, why, and what to do.
    """
    reason = _reason(err, url)
    return StoreError(
        f"Cannot {action} the results store at {redact_url(url)} ({reason}); {_hint(reason)}."
    )


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event below issue BEGIN, not the sqlite3 module.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(_SQLITE_BUSY_TIMEOUT_S * 1000)}")
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.OperationalError as err:  # e.g. a read-only copy of a store
            log.debug("SQLite store stays in its journal mode: %s", err)
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: URL) -> Engine:
    """Create the engine for ``url`` with Bastion's connection settings.

    Parameters
    ----------
    url : sqlalchemy.engine.URL
        A URL returned by :func:`bastion.store.url.resolve_url`.

    Returns
    -------
    sqlalchemy.Engine
        The engine; nothing is connected yet.

    Raises
    ------
    StoreError
        If the URL's driver is not installed.
    """
    options: dict[str, Any] = {"json_serializer": dumps_json, "json_deserializer": loads_json}
    backend = url.get_backend_name()
    if backend == "sqlite":
        options["connect_args"] = {"timeout": _SQLITE_BUSY_TIMEOUT_S}
        if sqlite_file(url) is None:
            # In memory: one connection shared by the whole store, or each would
            # see its own empty database.
            options["poolclass"] = StaticPool
            options["connect_args"]["check_same_thread"] = False
    elif backend == "postgresql":
        options["pool_pre_ping"] = True
        if "connect_timeout" not in url.query:
            options["connect_args"] = {"connect_timeout": _PG_CONNECT_TIMEOUT_S}
    try:
        engine = create_engine(url, **options)
    except (NoSuchModuleError, ImportError) as err:
        raise StoreError(
            f"Cannot open the results store at {redact_url(url)} because its database driver "
            f"is not installed ({_reason(err, url)}); for PostgreSQL install "
            "'bastion-ml[postgres]' and use a 'postgresql+psycopg://' URL."
        ) from err
    except (SQLAlchemyError, ValueError, TypeError) as err:
        raise store_error(err, url, "open") from err
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    log.debug("store engine created for %s", redact_url(url))
    return engine
