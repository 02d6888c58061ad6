"""``bastion verify-response``: check a signed answer from the Bastion gateway.

``bastion verify-response response.json --public-key gateway.pem.pub`` checks the
Ed25519 signature over the response's signed document and that its ``outputs`` are
the signed ones; ``--inputs request.json`` also checks that it answers those inputs
(a JSON list of rows, or a request body with an ``inputs`` field), ``--model`` the
model id and ``--max-age`` its freshness. Exit 0 when valid, 1 when not (with the
reason). Give ``-`` to read the response from standard input.

Examples
--------
>>> import typer
>>> from typer.testing import CliRunner
>>> app = typer.Typer()
>>> register(app)
>>> CliRunner().invoke(app, ["--help"]).exit_code
0
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from bastion.cli.console import err_console, out_console
from bastion.errors import UsageError
from bastion.guards.errors import SignatureInvalid
from bastion.guards.signing import verify_signed_output
from bastion.guards.signing_keys import load_public_key

__all__ = ["register"]


def _read_json(source: str, what: str) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"Cannot read the {what} {source} ({err.strerror or err}).") from err
    try:
        return json.loads(text)
    except ValueError as err:
        raise UsageError(f"The {what} {source} is not JSON ({err}).") from err


def verify_response_command(
    response: str = typer.Argument(..., metavar="RESPONSE", help="Response JSON file, or -."),
    public_key: Path = typer.Option(..., "--public-key", "-k", help="Gateway public key (PEM)."),
    inputs: str | None = typer.Option(
        None, "--inputs", help="JSON file with the rows sent (or the request body)."
    ),
    dtype: str = typer.Option("float32", "--dtype", help="The model's input dtype."),
    model: str | None = typer.Option(None, "--model", help="Expected model id."),
    max_age: float | None = typer.Option(
        None, "--max-age", min=0, help="Refuse signatures older than this many seconds."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Verify the Ed25519 signature of a gateway response; exit 1 if it does not hold."""
    key = load_public_key(public_key)
    body = _read_json(response, "response")
    rows = None
    if inputs is not None:
        rows = _read_json(inputs, "inputs file")
        if isinstance(rows, dict):
            rows = rows.get("inputs")
    try:
        signed = verify_signed_output(
            body, key, inputs=rows, dtype=dtype, model=model, max_age_s=max_age
        )
    except SignatureInvalid as err:
        if as_json:
            out_console.print(
                json.dumps({"valid": False, "reason": str(err)}),
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        else:
            err_console.print(Text(f"INVALID: {err}"))
        raise typer.Exit(1) from None
    summary = {
        "valid": True,
        "request_id": signed.request_id,
        "model": signed.model,
        "model_version": signed.model_version,
        "timestamp": signed.timestamp.isoformat(),
        "key_id": signed.kid,
        "inputs_checked": rows is not None,
    }
    if as_json:
        out_console.print(
            json.dumps(summary, indent=2), markup=False, highlight=False, soft_wrap=True
        )
        return
    out_console.print(
        Text(
            f"Valid: signed by key {signed.kid} for model {signed.model!r} "
            f"(version {signed.model_version or '—'}) at {signed.timestamp:%Y-%m-%d %H:%M:%S} UTC"
            + ("; inputs match." if rows is not None else ".")
        )
    )


def register(app: typer.Typer) -> None:
    """Add the ``verify-response`` command to ``app``."""
    app.command(
        "verify-response",
        help="Verify the Ed25519 signature of a response from the Bastion gateway.",
    )(verify_response_command)
