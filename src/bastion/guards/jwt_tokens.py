"""JWT bearer tokens: issuer, audience, expiry and signature checked, model scope enforced.

:class:`JwtVerifier` accepts tokens signed with HS256 (a shared secret of at least
32 bytes) and/or EdDSA (an Ed25519 public key), decoded with PyJWT. The algorithm
is taken from the token header but only ever matched against the keys configured,
so a token cannot pick its own verification key or the ``none`` algorithm. Every
token must carry ``exp``, ``iss``, ``aud`` and ``sub``; ``sub`` becomes the
principal, and the ``models`` claim (a list of model ids, or ``"*"``) says which
models it may query. Lifetimes above ``max_lifetime_s`` are refused, so a token
minted with a far-future expiry does not live forever.

Examples
--------
>>> import time, jwt
>>> secret = b"s" * 32
>>> verifier = JwtVerifier(issuer="https://idp", audience="bastion", hs256_secret=secret)
>>> now = int(time.time())
>>> token = jwt.encode({"iss": "https://idp", "aud": "bastion", "sub": "svc-a", "iat": now,
...                     "exp": now + 60, "models": ["digits"]}, secret, algorithm="HS256")
>>> verifier.verify(token, model="digits").principal
'svc-a'
>>> verifier.verify(token, model="cancer")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
bastion.guards.errors.CredentialRejected: The bearer token is not allowed to query model 'cancer'...
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bastion.errors import UsageError
from bastion.guards.errors import CredentialRejected

__all__ = ["JwtVerifier", "TokenClaims"]

_MAX_TOKEN_CHARS = 8192


@dataclass(frozen=True)
class TokenClaims:
    """The checked claims of a bearer token."""

    principal: str
    models: tuple[str, ...]
    expires_at: float
    issuer: str


class JwtVerifier:
    """Verifies JWT bearer tokens.

    Parameters
    ----------
    issuer : str
        Required ``iss``.
    audience : str
        Required ``aud`` (one of the token's audiences).
    hs256_secret : bytes or None
        Shared secret for HS256, at least 32 bytes.
    ed25519_public_key : Ed25519PublicKey or None
        Public key for EdDSA tokens.
    leeway_s : float
        Clock-skew allowance for ``exp``, ``nbf`` and ``iat``.
    max_lifetime_s : float or None
        Refuse tokens whose ``exp`` is further than this past ``iat`` (or now).
    scope_claim : str
        Claim listing the models a token may query.
    clock : callable
        UNIX time (tests replace it).
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        hs256_secret: bytes | None = None,
        ed25519_public_key: Ed25519PublicKey | None = None,
        leeway_s: float = 0.0,
        max_lifetime_s: float | None = 24 * 3600.0,
        scope_claim: str = "models",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not issuer or not audience:
            raise UsageError("A JWT verifier needs both an issuer and an audience to check.")
        if hs256_secret is None and ed25519_public_key is None:
            raise UsageError(
                "A JWT verifier needs a key: an HS256 secret (>= 32 bytes) or an Ed25519 "
                "public key."
            )
        if hs256_secret is not None and len(hs256_secret) < 32:
            raise UsageError("The HS256 secret for JWT bearer tokens must be at least 32 bytes.")
        if ed25519_public_key is not None and not isinstance(ed25519_public_key, Ed25519PublicKey):
            raise UsageError("ed25519_public_key must be an Ed25519PublicKey.")
        self.issuer = issuer
        self.audience = audience
        self._keys: dict[str, Any] = {}
        if hs256_secret is not None:
            self._keys["HS256"] = hs256_secret
        if ed25519_public_key is not None:
            self._keys["EdDSA"] = ed25519_public_key
        self.leeway_s = float(leeway_s)
        self.max_lifetime_s = max_lifetime_s
        self.scope_claim = scope_claim
        self._clock = clock

    def verify(self, token: str, *, model: str | None = None) -> TokenClaims:
        """The token's claims when it is valid (and allowed for ``model``).

        Raises
        ------
        CredentialRejected
            401 when the token is malformed, badly signed, expired, not yet valid, for
            another issuer or audience, or missing a required claim; 403 when it is
            valid but not for ``model``.
        """
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_CHARS:
            raise CredentialRejected("The bearer token is malformed.", http_status=401)
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            raise CredentialRejected("The bearer token is malformed.", http_status=401) from None
        key = self._keys.get(alg) if isinstance(alg, str) else None
        if key is None or not isinstance(alg, str):
            raise CredentialRejected(
                f"The bearer token uses an algorithm this server does not accept ({alg!r}).",
                http_status=401,
            )
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"], "verify_iat": True},
            )
        except jwt.ExpiredSignatureError:
            raise CredentialRejected("The bearer token has expired.", http_status=401) from None
        except jwt.ImmatureSignatureError:
            raise CredentialRejected(
                "The bearer token is not valid yet.", http_status=401
            ) from None
        except jwt.InvalidAudienceError:
            raise CredentialRejected(
                "The bearer token is for another audience.", http_status=401
            ) from None
        except jwt.InvalidIssuerError:
            raise CredentialRejected(
                "The bearer token is from another issuer.", http_status=401
            ) from None
        except jwt.MissingRequiredClaimError as err:
            raise CredentialRejected(
                f"The bearer token lacks the {err.claim!r} claim.", http_status=401
            ) from None
        except jwt.PyJWTError:
            raise CredentialRejected(
                "The bearer token's signature does not verify.", http_status=401
            ) from None
        return self._claims(claims, model)

    def _claims(self, claims: dict[str, Any], model: str | None) -> TokenClaims:
        now = self._clock()
        exp = float(claims["exp"])
        if exp + self.leeway_s <= now:  # PyJWT checks too; keep the injected clock honest
            raise CredentialRejected("The bearer token has expired.", http_status=401)
        if self.max_lifetime_s is not None:
            start = float(claims.get("iat", now))
            if exp - start > self.max_lifetime_s + self.leeway_s:
                raise CredentialRejected(
                    f"The bearer token lives longer than the {self.max_lifetime_s:g} s this "
                    "server accepts; issue shorter-lived tokens.",
                    http_status=401,
                )
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise CredentialRejected("The bearer token's 'sub' claim is empty.", http_status=401)
        raw = claims.get(self.scope_claim)
        if raw == "*":
            models: tuple[str, ...] = ("*",)
        elif isinstance(raw, list) and all(isinstance(m, str) for m in raw):
            models = tuple(raw)
        else:
            raise CredentialRejected(
                f"The bearer token names no models in its {self.scope_claim!r} claim.",
                http_status=403,
            )
        if model is not None and "*" not in models and model not in models:
            raise CredentialRejected(
                f"The bearer token is not allowed to query model {model!r}; ask for a token "
                "scoped to it.",
                http_status=403,
            )
        return TokenClaims(principal=sub, models=models, expires_at=exp, issuer=self.issuer)
