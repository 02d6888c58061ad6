"""API keys: created once, stored as an HMAC digest, scoped to models, revocable, expiring.

A key looks like ``bst_<key id>_<secret>``: a 16-hex-digit public id used to find the
record and 32 random bytes (256 bits, base64url) of secret. The database keeps only
``HMAC-SHA256(pepper, key)``; the pepper is a server-side secret read from the
``BASTION_API_KEY_PEPPER`` environment variable (or the file named by
``BASTION_API_KEY_PEPPER_FILE``) and never written to the database or a config file.

Why HMAC with a pepper rather than a slow password hash (scrypt, Argon2): slow hashes
exist to make guessing *low-entropy, human-chosen* passwords expensive. These keys
are 256-bit random strings made by Bastion, so guessing is hopeless at any hash speed;
a deliberately slow hash would only add tens of milliseconds to every request and
hand an attacker a cheap way to burn server CPU. The pepper adds what the slow hash
would not: a stolen copy of the database alone cannot confirm a single guessed key.
Digests are compared with :func:`hmac.compare_digest` (constant time), and unknown
key ids are answered after the same HMAC work as known ones.

Verified keys are cached for ``cache_ttl_s`` seconds (default 2) to keep the
database off the hot path; a revocation is effective at once in the process that
made it and within that time in every other worker.

Examples
--------
>>> from bastion.guards.db import GuardDB
>>> store = ApiKeyStore(GuardDB("sqlite://"), pepper=b"p" * 32)
>>> new = store.create("alice", models=["digits"])
>>> new.secret.startswith("bst_"), "secret" in repr(new), new.secret in repr(new)
(True, True, False)
>>> store.verify(new.secret, model="digits").principal
'alice'
>>> store.verify(new.secret, model="cancer")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
bastion.guards.errors.CredentialRejected: This API key is not allowed to query model 'cancer'...
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from bastion.errors import UsageError
from bastion.guards.db import GuardDB
from bastion.guards.errors import CredentialRejected
from bastion.guards.tables import ApiKeyRow

__all__ = [
    "ALL_MODELS",
    "PEPPER_ENV",
    "PEPPER_FILE_ENV",
    "ApiKeyInfo",
    "ApiKeyStore",
    "NewApiKey",
    "load_pepper",
]

PEPPER_ENV = "BASTION_API_KEY_PEPPER"
"""Environment variable holding the server-side pepper (at least 32 characters)."""

PEPPER_FILE_ENV = "BASTION_API_KEY_PEPPER_FILE"
"""Environment variable naming a file that holds the pepper."""

ALL_MODELS = "*"
"""Scope entry that allows every model."""

_PREFIX = "bst_"
_TOKEN = re.compile(r"bst_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_MIN_PEPPER = 32
_PRINCIPAL = re.compile(r"[^\x00-\x1f\x7f]{1,256}")


def load_pepper(environ: Mapping[str, str] | None = None) -> bytes:
    """The pepper from ``BASTION_API_KEY_PEPPER`` or the file in ``BASTION_API_KEY_PEPPER_FILE``.

    Raises
    ------
    UsageError
        If neither is set or the pepper is shorter than 32 characters.
    """
    env = os.environ if environ is None else environ
    value = env.get(PEPPER_ENV, "")
    source = PEPPER_ENV
    if not value and env.get(PEPPER_FILE_ENV):
        path = Path(env[PEPPER_FILE_ENV]).expanduser()
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise UsageError(
                f"Cannot read the API-key pepper file {path} ({err.strerror or err}); check "
                f"{PEPPER_FILE_ENV}."
            ) from err
        source = str(path)
    if not value:
        raise UsageError(
            f"API keys need a server-side pepper: set {PEPPER_ENV} (or {PEPPER_FILE_ENV}) to a "
            "random secret of at least 32 characters, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
        )
    if len(value) < _MIN_PEPPER:
        raise UsageError(
            f"The API-key pepper from {source} has {len(value)} characters; use at least "
            f"{_MIN_PEPPER} random characters."
        )
    return value.encode("utf-8")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ApiKeyInfo:
    """What is known about a key, without its secret."""

    key_id: str
    principal: str
    models: tuple[str, ...]
    description: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    pepper_id: str

    def status(self, now: datetime | None = None) -> str:
        """``"active"``, ``"revoked"`` or ``"expired"``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and (now or _now()) >= self.expires_at:
            return "expired"
        return "active"

    def allows(self, model: str) -> bool:
        """True when the key may query ``model``."""
        return ALL_MODELS in self.models or model in self.models

    @classmethod
    def _from_row(cls, row: ApiKeyRow) -> ApiKeyInfo:
        return cls(
            key_id=row.key_id,
            principal=row.principal,
            models=tuple(str(m) for m in row.models),
            description=row.description,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            pepper_id=row.pepper_id,
        )


@dataclass(frozen=True)
class NewApiKey:
    """A freshly created key: the only time its secret exists outside the caller."""

    info: ApiKeyInfo
    secret: str

    def __repr__(self) -> str:
        return f"NewApiKey(key_id={self.info.key_id!r}, secret=<hidden>)"


class ApiKeyStore:
    """Create, list, revoke and verify API keys kept in the store database.

    Parameters
    ----------
    db : GuardDB
        The database.
    pepper : bytes or None
        Server-side pepper; read with :func:`load_pepper` when first needed if None.
    cache_ttl_s : float
        How long a key record is reused before it is read again (0 disables).
    clock : callable
        Monotonic clock for the cache (tests replace it).
    """

    def __init__(
        self,
        db: GuardDB,
        *,
        pepper: bytes | None = None,
        cache_ttl_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if pepper is not None and len(pepper) < _MIN_PEPPER:
            raise UsageError(f"The API-key pepper must be at least {_MIN_PEPPER} bytes long.")
        self.db = db
        self._pepper = pepper
        self.cache_ttl_s = float(cache_ttl_s)
        self._clock = clock
        self._cache: dict[str, tuple[float, ApiKeyInfo, str]] = {}
        self._lock = threading.Lock()
        # HMAC keyed with the pepper, copied per token (the key schedule runs once).
        self._mac: tuple[bytes, hmac.HMAC] | None = None

    # -- secrets ----------------------------------------------------------------------
    @property
    def pepper(self) -> bytes:
        if self._pepper is None:
            self._pepper = load_pepper()
        return self._pepper

    @property
    def pepper_id(self) -> str:
        """A fingerprint of the pepper, stored with each key to spot a changed pepper."""
        return hmac.new(self.pepper, b"bastion api-key pepper id", hashlib.sha256).hexdigest()[:16]

    def _digest(self, token: str) -> str:
        """``HMAC-SHA256(pepper, token)`` in hex, from a copy of the keyed HMAC."""
        pepper = self.pepper
        keyed = self._mac
        if keyed is None or keyed[0] is not pepper:
            keyed = self._mac = (pepper, hmac.new(pepper, digestmod=hashlib.sha256))
        mac = keyed[1].copy()
        mac.update(token.encode("utf-8"))
        return mac.hexdigest()

    # -- management -------------------------------------------------------------------
    def create(
        self,
        principal: str,
        *,
        models: Sequence[str],
        expires_at: datetime | None = None,
        description: str = "",
    ) -> NewApiKey:
        """Create a key for ``principal`` that may query ``models`` (``["*"]`` for all)."""
        if not isinstance(principal, str) or not _PRINCIPAL.fullmatch(principal):
            raise UsageError(
                "A key's principal must be 1 to 256 printable characters, e.g. 'team-fraud'."
            )
        scope = tuple(dict.fromkeys(str(m).strip() for m in models if str(m).strip()))
        if not scope:
            raise UsageError(
                "A key must name the models it may query (--model NAME, repeatable) or allow "
                "all of them explicitly (--all-models)."
            )
        if expires_at is not None:
            if expires_at.tzinfo is None:
                expires_at = expires_at.replace(tzinfo=UTC)
            if expires_at <= _now():
                raise UsageError(f"The expiry {expires_at.isoformat()} is in the past.")
        key_id = secrets.token_hex(8)
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
        token = f"{_PREFIX}{key_id}_{secret}"
        row = ApiKeyRow(
            key_id=key_id,
            principal=principal,
            models=list(scope),
            digest=self._digest(token),
            pepper_id=self.pepper_id,
            description=description[:512],
            created_at=_now(),
            expires_at=expires_at,
            revoked_at=None,
        )
        with self.db.session("create an API key in", write=True) as session:
            session.add(row)
        return NewApiKey(info=ApiKeyInfo._from_row(row), secret=token)

    def list_keys(self, *, include_inactive: bool = True) -> list[ApiKeyInfo]:
        """Every key, newest first (without revoked and expired ones unless asked)."""
        with self.db.session("list the API keys in") as session:
            rows = session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at.desc())).all()
            infos = [ApiKeyInfo._from_row(r) for r in rows]
        if include_inactive:
            return infos
        now = _now()
        return [i for i in infos if i.status(now) == "active"]

    def get(self, key_id: str) -> ApiKeyInfo:
        """One key by id (a ``bst_...`` key is accepted too and its id used)."""
        key_id = _key_id_of(key_id)
        with self.db.session("read an API key from") as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise UsageError(f"No API key {key_id!r}; `bastion keys list` shows the keys.")
            return ApiKeyInfo._from_row(row)

    def revoke(self, key_id: str) -> ApiKeyInfo:
        """Revoke a key (idempotent); it is refused from now on."""
        key_id = _key_id_of(key_id)
        with self.db.session("revoke an API key in", write=True) as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise UsageError(f"No API key {key_id!r}; `bastion keys list` shows the keys.")
            if row.revoked_at is None:
                row.revoked_at = _now()
            info = ApiKeyInfo._from_row(row)
        with self._lock:
            self._cache.pop(key_id, None)
        return info

    # -- verification -----------------------------------------------------------------
    def _lookup(self, key_id: str) -> tuple[ApiKeyInfo, str] | None:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key_id)
        if hit is not None and now - hit[0] < self.cache_ttl_s:
            return hit[1], hit[2]
        with self.db.session("verify an API key in") as session:
            row = session.get(ApiKeyRow, key_id)
            found = None if row is None else (ApiKeyInfo._from_row(row), row.digest)
        if found is not None and self.cache_ttl_s > 0:
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[key_id] = (now, found[0], found[1])
        return found

    def verify(self, token: str, *, model: str | None = None) -> ApiKeyInfo:
        """The key's record when ``token`` is a valid, active key allowed for ``model``.

        Raises
        ------
        CredentialRejected
            401 for a malformed, unknown, wrong, revoked or expired key; 403 when the
            key is valid but not for ``model``.
        """
        match = _TOKEN.fullmatch(token.strip()) if isinstance(token, str) else None
        key_id = match.group(1) if match else "0" * 16
        computed = self._digest(token if isinstance(token, str) else "")
        found = self._lookup(key_id) if match else None
        stored = found[1] if found is not None else "0" * 64
        if not hmac.compare_digest(computed, stored) or found is None:
            raise CredentialRejected("The API key is not valid.", http_status=401)
        info = found[0]
        status = info.status()
        if status != "active":
            raise CredentialRejected(f"The API key {info.key_id} is {status}.", http_status=401)
        if model is not None and not info.allows(model):
            raise CredentialRejected(
                f"This API key is not allowed to query model {model!r}; ask for a key scoped "
                "to it.",
                http_status=403,
            )
        return info


def _key_id_of(value: str) -> str:
    match = _TOKEN.fullmatch(value.strip())
    return match.group(1) if match else value.strip()
