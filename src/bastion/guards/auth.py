"""``access.authentication``: who is asking, and may they query this model?

Reads a credential from ``Authorization: Bearer <credential>`` or ``X-API-Key``.
A Bastion API key (``bst_...``) is checked against the
:class:`~bastion.guards.apikeys.ApiKeyStore`; anything else is treated as a JWT and
checked by the :class:`~bastion.guards.jwt_tokens.JwtVerifier` when one is
configured. A missing, malformed, unknown, wrong, revoked or expired credential is
refused with 401 (and ``WWW-Authenticate: Bearer``); a valid credential that is not
scoped to the requested model with 403. On success the request is *transformed*:
its principal becomes the authenticated identity (whatever the caller claimed) and
the credential headers are removed, so no later guard, event or log ever sees the
secret. The audit event names the key id or token subject.

Not an attack: access control, ATLAS AML.M0019 (control access to ML models in
production), the precondition for per-principal budgets (AML.M0004).

Examples
--------
>>> import numpy as np
>>> from bastion.guards.apikeys import ApiKeyStore
>>> from bastion.guards.base import GuardRequest
>>> from bastion.guards.db import GuardDB
>>> keys = ApiKeyStore(GuardDB("sqlite://"), pepper=b"p" * 32)
>>> secret = keys.create("alice", models=["digits"]).secret
>>> guard = AuthGuard(keys=keys)
>>> req = GuardRequest(principal="anonymous", model="digits", inputs=np.zeros((1, 2)),
...                    headers={"authorization": f"Bearer {secret}"})
>>> decision = guard.before(req)
>>> decision.payload.principal, "authorization" in decision.payload.headers
('alice', False)
>>> guard.before(GuardRequest(principal="x", model="digits", inputs=np.zeros((1, 2)))).http_status
401
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from bastion.errors import UsageError
from bastion.findings import CatalogRefs
from bastion.guards.apikeys import ApiKeyStore
from bastion.guards.base import Action, Decision, Guard, GuardMeta, GuardRequest
from bastion.guards.errors import CredentialRejected
from bastion.guards.jwt_tokens import JwtVerifier
from bastion.guards.outcome import deny

__all__ = ["AuthGuard"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="bastion"'}


class AuthGuard(Guard):
    """Authenticates API keys and JWT bearer tokens and enforces their model scope.

    Not an attack: access control (ATLAS AML.M0019).

    Parameters
    ----------
    keys : ApiKeyStore or None
        Where API keys are checked.
    jwt : JwtVerifier or None
        How bearer tokens are checked.
    """

    meta: ClassVar[GuardMeta] = GuardMeta(
        id="access.authentication",
        title="Authentication with scoped API keys and JWT bearer tokens",
        catalog=CatalogRefs(
            owasp=["ML05"],
            failure_modes=["FM5"],
            atlas_techniques=["AML.T0040", "AML.T0024"],
            atlas_mitigations=["AML.M0019"],
        ),
        order=10,
    )

    def __init__(self, keys: ApiKeyStore | None = None, jwt: JwtVerifier | None = None) -> None:
        if keys is None and jwt is None:
            raise UsageError(
                "access.authentication needs an API key store, a JWT verifier or both."
            )
        self.keys = keys
        self.jwt = jwt

    @staticmethod
    def _split(headers: dict[str, str]) -> tuple[str | None, dict[str, str]]:
        """The credential (None if absent, ``""`` if malformed) and the other headers.

        Header names are matched case-insensitively; when a name appears in several
        cases, the last one wins. One pass over the headers.
        """
        auth, key = "", ""
        clean: dict[str, str] = {}
        for name, value in headers.items():
            lowered = name.lower()
            if lowered == "authorization":
                auth = value
            elif lowered == "x-api-key":
                key = value
            else:
                clean[name] = value
        auth = auth.strip()
        if auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                return value.strip(), clean
            return "", clean
        key = key.strip()
        return key or None, clean

    def before(self, request: GuardRequest) -> Decision:
        """Deny without a valid credential for this model; else set the principal."""
        token, clean = self._split(request.headers)
        if token is None:
            return deny(
                "Authentication required: send an API key (Authorization: Bearer bst_...) or a "
                "bearer token.",
                http_status=401,
                headers=_CHALLENGE,
            )
        try:
            is_key = token.startswith("bst_")
            if is_key and self.keys is not None:
                info = self.keys.verify(token, model=request.model)
                principal = info.principal
                event = {"reason": "authenticated", "credential": "api_key", "key_id": info.key_id}
            elif self.jwt is not None and not is_key:
                claims = self.jwt.verify(token, model=request.model)
                principal = claims.principal
                event = {"reason": "authenticated", "credential": "jwt", "subject": principal}
            else:
                raise CredentialRejected("The credential is not valid.", http_status=401)
        except CredentialRejected as err:
            headers = _CHALLENGE if err.http_status == 401 else {}
            return deny(str(err), http_status=err.http_status, headers=headers)
        authed = dataclasses.replace(request, principal=principal, headers=clean)
        return Decision(Action.TRANSFORM, reason="authenticated", payload=authed, events=(event,))
