"""Exceptions raised by the guard pipeline and its client helpers.

Both derive from :class:`bastion.errors.BastionError`, so the command line maps them
to an exit code and a caller that handles every Bastion problem catches them too.

Examples
--------
>>> from bastion.errors import BastionError
>>> err = RequestDenied("Budget spent.", http_status=429, headers={"Retry-After": "3"})
>>> isinstance(err, BastionError), err.http_status, err.headers["Retry-After"]
(True, 429, '3')
"""

from __future__ import annotations

from collections.abc import Mapping

from bastion.errors import BastionError

__all__ = ["CredentialRejected", "RequestDenied", "SignatureInvalid"]


class RequestDenied(BastionError):
    """A guard refused a request made in-process through :class:`~bastion.guards.Guarded`.

    Parameters
    ----------
    message : str
        The guard's reason, one sentence.
    http_status : int
        The status the same denial would carry over HTTP (401, 403, 413, 422, 429, ...).
    guard : str or None
        Id of the guard that decided.
    headers : mapping or None
        Headers the denial carries, e.g. ``Retry-After``.
    request_id : str or None
        Id of the request, as recorded in the audit log.
    """

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        http_status: int = 403,
        guard: str | None = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.guard = guard
        self.headers = dict(headers or {})
        self.request_id = request_id


class SignatureInvalid(BastionError):
    """A signed model output does not verify: altered, truncated, stale or wrongly keyed."""

    exit_code = 1


class CredentialRejected(BastionError):
    """An API key or bearer token was missing, malformed, unknown, revoked, expired or
    not allowed for the model asked for.

    ``http_status`` is 401 when the credential is not valid and 403 when it is valid
    but not for this model.
    """

    exit_code = 1

    def __init__(self, message: str, *, http_status: int = 401) -> None:
        super().__init__(message)
        self.http_status = http_status
