"""Fixtures for guard tests: stores on SQLite and PostgreSQL, a real Redis, small data."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bastion.data.dataset import Dataset
from bastion.data.demo import load_digits_dataset
from bastion.guards.db import GuardDB
from bastion.store.testing import postgres_test_url, postgres_unreachable_reason, temporary_schema

REDIS_ENV = "BASTION_TEST_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store: a SQLite file, or a fresh PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'guards.db'}"
        return
    server = postgres_test_url()
    reason = postgres_unreachable_reason(server)
    if reason is not None:
        pytest.skip(reason)
    with temporary_schema(server, prefix="bastion_guards") as url:
        yield url


@pytest.fixture
def db(db_url: str) -> Iterator[GuardDB]:
    opened = GuardDB(db_url)
    try:
        yield opened
    finally:
        opened.close()


def redis_url() -> str:
    return os.environ.get(REDIS_ENV, "").strip() or DEFAULT_REDIS_URL


def redis_unreachable_reason(url: str) -> str | None:
    try:
        import redis
    except ImportError:
        return "redis-py is not installed; pip install redis"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
    except (redis.RedisError, ValueError, OSError) as err:
        return f"No Redis server answers at {url} ({err}); set {REDIS_ENV} to one tests may use."
    return None


@pytest.fixture
def redis_prefix() -> Iterator[tuple[Any, str]]:
    """A Redis client and a unique key prefix; every key under it is deleted afterwards."""
    url = redis_url()
    reason = redis_unreachable_reason(url)
    if reason is not None:
        pytest.skip(reason)
    import redis

    client = redis.Redis.from_url(url)
    prefix = f"bastion:test:{os.getpid()}:{secrets.token_hex(4)}:"
    try:
        yield client, prefix
    finally:
        for key in client.scan_iter(f"{prefix}*", count=1000):
            client.delete(key)
        client.close()


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load_digits_dataset(seed=0)


@pytest.fixture(scope="session")
def digits_flat(digits: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (
        digits.x_train.reshape(len(digits.x_train), -1),
        digits.y_train,
        digits.x_test.reshape(len(digits.x_test), -1),
        digits.y_test,
    )
