"""Helpers for testing code that uses the results store against a real PostgreSQL.

Tests get their own PostgreSQL schema, created on entry and dropped with
everything in it on exit, so test runs never see each other's tables and leave
nothing behind. The server comes from the ``BASTION_TEST_POSTGRES_URL``
environment variable, or ``postgresql+psycopg://postgres@127.0.0.1:5432/test``.

Examples
--------
>>> from bastion.store.testing import postgres_test_url, with_search_path
>>> with_search_path("postgresql+psycopg://ci:pw@db/test", "bastion_test_1")
'postgresql+psycopg://ci:pw@db/test?options=-csearch_path%3Dbastion_test_1'
>>> postgres_test_url({"BASTION_TEST_POSTGRES_URL": "postgresql://u@h/x"})
'postgresql+psycopg://u@h/x'
"""

from __future__ import annotations

import functools
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from bastion.errors import StoreError, UsageError
from bastion.store.url import redact_url, resolve_url

__all__ = [
    "DEFAULT_TEST_POSTGRES_URL",
    "TEST_POSTGRES_ENV",
    "postgres_test_url",
    "postgres_unreachable_reason",
    "temporary_schema",
    "with_search_path",
]

TEST_POSTGRES_ENV = "BASTION_TEST_POSTGRES_URL"
"""Environment variable naming the PostgreSQL server tests use."""

DEFAULT_TEST_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
"""Server tests use when :data:`TEST_POSTGRES_ENV` is not set (trust authentication)."""

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def postgres_test_url(environ: Mapping[str, str] | None = None) -> str:
    """The PostgreSQL URL tests should use, from the environment or the default.

    Parameters
    ----------
    environ : Mapping or None
        Where to look for :data:`TEST_POSTGRES_ENV`; ``os.environ`` when None.

    Returns
    -------
    str
        A ``postgresql+psycopg://`` URL (with any password left in place).
    """
    env = os.environ if environ is None else environ
    raw = env.get(TEST_POSTGRES_ENV, "").strip() or DEFAULT_TEST_POSTGRES_URL
    return resolve_url(raw).render_as_string(hide_password=False)


def with_search_path(url: str, schema: str) -> str:
    """``url`` with the PostgreSQL ``search_path`` set to ``schema`` on every connection.

    Parameters
    ----------
    url : str
        A PostgreSQL URL without an ``options`` query parameter.
    schema : str
        Lower-case schema name.

    Returns
    -------
    str
        The URL, password included.
    """
    if not _SCHEMA_NAME.match(schema):
        raise UsageError(f"Schema name {schema!r} must be lower-case letters, digits and _.")
    parsed = resolve_url(url)
    if "options" in parsed.query:
        raise UsageError(
            f"The URL {redact_url(parsed)!r} already sets 'options'; remove it to use a "
            "temporary schema."
        )
    with_path = parsed.update_query_dict({"options": f"-csearch_path={schema}"})
    return with_path.render_as_string(hide_password=False)


def _admin_engine(url: str) -> Engine:
    parsed = resolve_url(url)
    return create_engine(parsed, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})


@functools.lru_cache(maxsize=8)
def postgres_unreachable_reason(url: str) -> str | None:
    """Why the PostgreSQL server at ``url`` cannot be used, or None when it can.

    The answer is cached per URL for the life of the process, so a test session
    tries to connect once.

    Parameters
    ----------
    url : str
        A PostgreSQL URL.

    Returns
    -------
    str or None
        A sentence suitable for ``pytest.skip``, with the password masked.
    """
    try:
        engine = _admin_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except (SQLAlchemyError, StoreError, ImportError, OSError) as err:
        first = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        return (
            f"PostgreSQL not reachable at {redact_url(url)} ({first}); "
            f"set {TEST_POSTGRES_ENV} to the URL of a server tests may use."
        )
    return None


@contextmanager
def temporary_schema(url: str, *, prefix: str = "bastion_test") -> Iterator[str]:
    """Create a uniquely named schema, yield a URL that uses it, then drop it.

    Parameters
    ----------
    url : str
        A PostgreSQL URL whose user may create schemas in its database.
    prefix : str
        Start of the schema name; a random suffix is added.

    Yields
    ------
    str
        ``url`` with its ``search_path`` set to the new schema.
    """
    schema = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    scoped = with_search_path(url, schema)
    engine = _admin_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield scoped
        finally:
            with engine.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()
