"""``bastion audit``: check and read the tamper-evident audit log.

* ``bastion audit verify [--public-key gateway.pem.pub] [--json]`` walks the hash
  chain and the signed checkpoints and exits 0 when intact, 1 when an entry was
  modified, reordered or deleted — naming the first bad entry.
* ``bastion audit list [--limit 20] [--json]`` shows the newest entries.

The log lives in the results store (``--store`` or ``BASTION_STORE_URL``).

Examples
--------
>>> import typer
>>> from typer.testing import CliRunner
>>> app = typer.Typer()
>>> register(app)
>>> r = CliRunner().invoke(app, ["audit", "verify", "--store", "sqlite://", "--json"])
>>> r.exit_code, '"ok": true' in r.output
(0, True)
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich import box
from rich.table import Table
from rich.text import Text
from sqlalchemy import select

from bastion.cli.console import err_console, out_console
from bastion.guards.audit_verify import verify_audit_log
from bastion.guards.db import GuardDB
from bastion.guards.signing_keys import load_public_key
from bastion.guards.tables import AuditEntryRow
from bastion.store import STORE_URL_ENV

__all__ = ["register"]

_STORE_HELP = (
    "Results store holding the audit log: a SQLAlchemy URL or a SQLite path "
    f"(default ./.bastion/bastion.db). Also read from {STORE_URL_ENV}."
)


def verify_command(
    public_key: Path | None = typer.Option(
        None, "--public-key", "-k", help="The gateway's public key (PEM), to check checkpoints."
    ),
    store_url: str | None = typer.Option(None, "--store", envvar=STORE_URL_ENV, help=_STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check the audit log's hash chain and signed checkpoints; exit 1 if tampered with."""
    key = load_public_key(public_key) if public_key is not None else None
    with GuardDB(store_url, create=False) as db:
        report = verify_audit_log(db, key)
    if as_json:
        out_console.print(
            json.dumps(report.to_dict(), indent=2), markup=False, highlight=False, soft_wrap=True
        )
    elif report.ok:
        out_console.print(
            Text(
                f"Audit log intact: {report.entries} entries, {report.checkpoints} checkpoints "
                f"({report.checkpoints_verified} signatures verified)."
            )
        )
    else:
        err_console.print(Text(f"Audit log TAMPERED: first bad entry {report.first_bad_seq}."))
        err_console.print(Text(report.problem))
    if not as_json:
        for warning in report.warnings:
            err_console.print(Text(f"Warning: {warning}", style="yellow"))
    if not report.ok:
        raise typer.Exit(1)


def list_command(
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=10_000, help="Entries to show."),
    store_url: str | None = typer.Option(None, "--store", envvar=STORE_URL_ENV, help=_STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show the newest audit entries."""
    with GuardDB(store_url, create=False) as db, db.session("read the audit log in") as session:
        rows = session.scalars(
            select(AuditEntryRow).order_by(AuditEntryRow.seq.desc()).limit(limit)
        ).all()
        entries = [(r.seq, r.entry_hash, json.loads(r.body)) for r in rows]
    if as_json:
        data = [{"seq": s, "hash": h, **body} for s, h, body in entries]
        out_console.print(json.dumps(data, indent=2), markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("Seq", "Time (UTC)", "Model", "Principal", "Decision", "Status", "By"):
        table.add_column(column)
    for seq, _, body in entries:
        table.add_row(
            str(seq),
            Text(str(body.get("time", ""))[:23]),
            Text(str(body.get("model", ""))),
            Text(str(body.get("principal", ""))),
            Text(str(body.get("decision", ""))),
            str(body.get("status", "")),
            Text(str(body.get("decided_by") or "—")),
        )
    out_console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``audit`` command group to ``app``."""
    audit = typer.Typer(help="Verify and read the tamper-evident audit log.", no_args_is_help=True)
    audit.command("verify")(verify_command)
    audit.command("list")(list_command)
    app.add_typer(audit, name="audit")
