"""``bastion keys``: API keys for the guard pipeline, and the gateway's signing key.

* ``bastion keys create --principal NAME --model M [--model M2 | --all-models]
  [--expires-in 30d] [--description TEXT]`` creates a key and prints its secret
  **once**; only an HMAC digest is stored (see :mod:`bastion.guards.apikeys`). The
  server-side pepper comes from ``BASTION_API_KEY_PEPPER`` (or the file named by
  ``BASTION_API_KEY_PEPPER_FILE``) and must be the one the gateway uses.
* ``bastion keys list [--active] [--json]`` lists keys without secrets.
* ``bastion keys revoke KEY_ID`` revokes a key at once (other gateway workers notice
  within their cache time, 2 s by default).
* ``bastion keys signing-key --out signing.pem`` writes a new Ed25519 private key
  (mode 0600) and ``signing.pem.pub`` for signed outputs and audit checkpoints.

Keys live in the results store (``--store`` or ``BASTION_STORE_URL``; default
``./.bastion/bastion.db``).

Examples
--------
>>> import json, os, typer
>>> from typer.testing import CliRunner
>>> app = typer.Typer()
>>> register(app)
>>> env = {"BASTION_API_KEY_PEPPER": "x" * 32}
>>> r = CliRunner(env=env).invoke(app, ["keys", "create", "--store", "sqlite://",
...                                     "--principal", "ci", "--model", "digits", "--json"])
>>> r.exit_code, json.loads(r.output)["secret"].startswith("bst_")
(0, True)
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from bastion.cli.console import err_console, out_console
from bastion.errors import UsageError
from bastion.guards.apikeys import ALL_MODELS, ApiKeyInfo, ApiKeyStore
from bastion.guards.db import GuardDB
from bastion.guards.signing_keys import key_id, write_signing_key
from bastion.store import STORE_URL_ENV

__all__ = ["parse_duration", "register"]

_STORE_HELP = (
    "Results store holding the keys: a SQLAlchemy URL or a SQLite path "
    f"(default ./.bastion/bastion.db). Also read from {STORE_URL_ENV}."
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"45s"`` or plain seconds as a timedelta.

    Examples
    --------
    >>> parse_duration("36h").total_seconds()
    129600.0
    """
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise UsageError(
            f"Cannot read the duration {text!r}; write a positive number with s, m, h, d or w, "
            "e.g. 30d."
        )
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def _store_option() -> str | None:
    return typer.Option(None, "--store", envvar=STORE_URL_ENV, help=_STORE_HELP)  # type: ignore[no-any-return]


def _info_dict(info: ApiKeyInfo) -> dict[str, object]:
    return {
        "key_id": info.key_id,
        "principal": info.principal,
        "models": list(info.models),
        "status": info.status(),
        "description": info.description,
        "created_at": info.created_at.isoformat(),
        "expires_at": info.expires_at.isoformat() if info.expires_at else None,
        "revoked_at": info.revoked_at.isoformat() if info.revoked_at else None,
    }


def _print_json(data: object) -> None:
    out_console.print(json.dumps(data, indent=2), markup=False, highlight=False, soft_wrap=True)


def create_command(
    principal: str = typer.Option(..., "--principal", "-p", help="Who the key belongs to."),
    models: list[str] = typer.Option(
        [], "--model", "-m", help="A model the key may query (repeat for several)."
    ),
    all_models: bool = typer.Option(False, "--all-models", help="Allow every model."),
    expires_in: str | None = typer.Option(
        None, "--expires-in", help="Lifetime, e.g. 30d, 12h (default: no expiry)."
    ),
    description: str = typer.Option("", "--description", help="A note shown by `keys list`."),
    store_url: str | None = _store_option(),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create an API key; its secret is printed once and never stored."""
    if all_models and models:
        raise UsageError("Give either --model (repeatable) or --all-models, not both.")
    scope = [ALL_MODELS] if all_models else models
    expires_at = datetime.now(UTC) + parse_duration(expires_in) if expires_in else None
    with GuardDB(store_url) as db:
        new = ApiKeyStore(db).create(
            principal, models=scope, expires_at=expires_at, description=description
        )
    if as_json:
        _print_json({**_info_dict(new.info), "secret": new.secret})
        return
    out_console.print(
        Text(
            f"Created key {new.info.key_id} for {principal!r} "
            f"(models: {', '.join(new.info.models)}"
            + (f"; expires {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "")
            + ")."
        )
    )
    out_console.print(Text("Secret (shown only now; store it in a secret manager):"))
    out_console.print(Text(new.secret), markup=False, highlight=False, soft_wrap=True)


def list_command(
    active: bool = typer.Option(False, "--active", help="Only keys that still work."),
    store_url: str | None = _store_option(),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List API keys (never their secrets)."""
    with GuardDB(store_url, create=False) as db:
        infos = ApiKeyStore(db).list_keys(include_inactive=not active)
    if as_json:
        _print_json([_info_dict(i) for i in infos])
        return
    if not infos:
        out_console.print("No API keys; create one with `bastion keys create`.")
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("Key id", "Principal", "Models", "Status", "Created (UTC)", "Expires (UTC)"):
        table.add_column(column)
    for i in infos:
        table.add_row(
            Text(i.key_id),
            Text(i.principal),
            Text(", ".join(i.models)),
            Text(i.status(), style="green" if i.status() == "active" else "red"),
            Text(f"{i.created_at:%Y-%m-%d %H:%M}"),
            Text(f"{i.expires_at:%Y-%m-%d %H:%M}" if i.expires_at else "—"),
        )
    out_console.print(table)


def revoke_command(
    key: str = typer.Argument(..., metavar="KEY_ID", help="Id of the key (from `keys list`)."),
    store_url: str | None = _store_option(),
) -> None:
    """Revoke an API key; requests with it are refused from now on."""
    with GuardDB(store_url, create=False) as db:
        info = ApiKeyStore(db).revoke(key)
    out_console.print(Text(f"Revoked key {info.key_id} of {info.principal!r}."))


def signing_key_command(
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the private key (PEM)."),
) -> None:
    """Write a new Ed25519 signing key (mode 0600) and its public key (OUT.pub)."""
    key = write_signing_key(out)
    out_console.print(
        Text(
            f"Wrote the private key to {out} and the public key to {out}.pub "
            f"(key id {key_id(key.public_key())})."
        )
    )
    err_console.print(
        Text(
            f"Keep {out} secret; give the gateway its path in BASTION_SIGNING_KEY_FILE and give "
            "consumers the .pub file."
        )
    )


def register(app: typer.Typer) -> None:
    """Add the ``keys`` command group to ``app``."""
    keys = typer.Typer(
        help="Manage the gateway's API keys (create, list, revoke) and its signing key.",
        no_args_is_help=True,
    )
    keys.command("create")(create_command)
    keys.command("list")(list_command)
    keys.command("revoke")(revoke_command)
    keys.command("signing-key")(signing_key_command)
    app.add_typer(keys, name="keys")
