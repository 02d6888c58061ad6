"""Where the results store lives: turning what a user typed into a database URL.

A store location can be given three ways:

* nothing — a SQLite file at ``.bastion/bastion.db`` under the working directory
  (or under ``root`` when one is given);
* a path without ``://`` — a SQLite file at that path;
* a SQLAlchemy URL — ``sqlite:///results.db``, ``sqlite://`` (in memory) or
  ``postgresql+psycopg://user:password@host:5432/dbname``. ``postgresql://`` and
  ``postgres://`` are read as ``postgresql+psycopg://``, the driver Bastion ships with.

Passwords never appear in logs or error messages: :func:`redact_url` masks them.

Examples
--------
>>> from pathlib import Path
>>> from bastion.store.url import redact_url, resolve_url
>>> redact_url("postgresql+psycopg://ci:s3cret@db.example:5432/bastion")
'postgresql+psycopg://ci:***@db.example:5432/bastion'
>>> resolve_url("postgres://ci@db.example/bastion").drivername
'postgresql+psycopg'
>>> resolve_url(None, root=Path("/srv/project")).database
'/srv/project/.bastion/bastion.db'
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from bastion.errors import StoreError

__all__ = [
    "DEFAULT_STORE_DIR",
    "DEFAULT_STORE_FILE",
    "STORE_URL_ENV",
    "default_store_path",
    "redact_url",
    "resolve_url",
    "sqlite_file",
]

STORE_URL_ENV = "BASTION_STORE_URL"
"""Environment variable the command line reads the store URL from."""

DEFAULT_STORE_DIR = ".bastion"
"""Folder, under the working directory, that holds the default store."""

DEFAULT_STORE_FILE = "bastion.db"
"""File name of the default SQLite store inside :data:`DEFAULT_STORE_DIR`."""

_SUPPORTED = ("sqlite", "postgresql")
_PG_ALIASES = {"postgres", "postgresql"}
# user:password@ in anything that looks like a URL, for text SQLAlchemy cannot parse.
_PASSWORD_IN_TEXT = re.compile(r"(?P<head>://[^:/@\s]*:)[^@\s]*(?=@)")


def default_store_path(root: Path | None = None) -> Path:
    """The default SQLite file: ``(root or cwd)/.bastion/bastion.db``.

    Parameters
    ----------
    root : Path or None
        Project folder; the current working directory when None.

    Returns
    -------
    Path
        An absolute path; the file may not exist yet.
    """
    base = (root if root is not None else Path.cwd()).resolve()
    return base / DEFAULT_STORE_DIR / DEFAULT_STORE_FILE


def redact_url(url: str | URL) -> str:
    """``url`` as text with its password replaced by ``***``.

    Works on text that is not a valid URL too, so error messages about a bad URL
    can quote it safely.

    Parameters
    ----------
    url : str or sqlalchemy.engine.URL
        The URL to show.

    Returns
    -------
    str
        The URL without its password.
    """
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _PASSWORD_IN_TEXT.sub(r"\g<head>***", url)


def resolve_url(url: str | None, *, root: Path | None = None) -> URL:
    """Turn a store location into a SQLAlchemy URL.

    Parameters
    ----------
    url : str or None
        A SQLAlchemy URL, a path to a SQLite file, or None for the default store.
    root : Path or None
        Folder the default store lives under; the working directory when None.
        Ignored when ``url`` is given.

    Returns
    -------
    sqlalchemy.engine.URL
        The URL to connect to. Relative SQLite paths are made absolute.

    Raises
    ------
    StoreError
        If ``url`` cannot be parsed or names a database Bastion does not support.
    """
    if url is None or not url.strip():
        return URL.create("sqlite", database=str(default_store_path(root)))
    text = url.strip()
    if "://" not in text:
        return URL.create("sqlite", database=str(Path(text).expanduser().resolve()))
    try:
        parsed = make_url(text)
    except (ArgumentError, ValueError) as err:
        raise StoreError(
            f"The store URL {redact_url(text)!r} cannot be parsed; write it as "
            "'sqlite:///path/to/file.db' or 'postgresql+psycopg://user@host:5432/dbname'."
        ) from err
    backend, _, driver = parsed.drivername.partition("+")
    if backend in _PG_ALIASES:
        return parsed.set(drivername=f"postgresql+{driver or 'psycopg'}")
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            parsed = parsed.set(database=str(Path(database).expanduser().resolve()))
        return parsed
    raise StoreError(
        f"The store URL {redact_url(parsed)!r} names the database {backend!r}, which Bastion "
        f"does not support; use one of: {', '.join(_SUPPORTED)}."
    )


def sqlite_file(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None for in-memory and non-SQLite URLs.

    Parameters
    ----------
    url : sqlalchemy.engine.URL
        A URL returned by :func:`resolve_url`.

    Returns
    -------
    Path or None
        The database file.
    """
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)
