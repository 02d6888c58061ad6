"""``bastion env verify``: are the installed Python packages the ones that were installed?

Re-hashes every file each installed distribution recorded in its ``RECORD`` and
reports modified, missing and unrecorded files (a tampered NumPy or scikit-learn,
OWASP ML06 scenario 1); see :mod:`bastion.artifacts.env_verify` for exactly what is
checked and what is not. ``--package`` limits the check to some distributions,
``--path`` checks another environment's site-packages folder, ``--format json``
prints machine-readable output.

Exit codes: 0 nothing tampered, 1 something modified, missing or unrecorded (or, with
``--strict``, anything that could not be verified), 2 bad usage.

Examples
--------
>>> import typer
>>> from typer.testing import CliRunner
>>> from bastion.cli.env_cmd import register
>>> app = typer.Typer()
>>> register(app)
>>> result = CliRunner().invoke(app, ["env", "verify", "--package", "PyYAML", "--format", "json"])
>>> result.exit_code
0
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from bastion.artifacts.env_verify import EnvReport, verify_environment
from bastion.cli.console import err_console, out_console

__all__ = ["register", "verify_command"]

_KIND_STYLE = {
    "modified": "bold red",
    "missing": "red",
    "unrecorded": "yellow",
    "unverifiable": "dim",
}


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


def register(app: typer.Typer) -> None:
    """Add the ``env`` command group (with ``verify``) to ``app``."""
    env_app = typer.Typer(
        name="env",
        help="Check the Python environment that runs your models.",
        no_args_is_help=True,
    )
    env_app.command(
        "verify",
        help=(
            "Check installed Python packages against the hashes in their RECORD files; "
            "report modified, missing and unrecorded files."
        ),
    )(verify_command)
    app.add_typer(env_app, name="env")


def verify_command(
    package: list[str] | None = typer.Option(
        None, "--package", "-p", help="Only this distribution (repeatable), e.g. numpy."
    ),
    path: list[Path] | None = typer.Option(
        None,
        "--path",
        help="A site-packages folder to check instead of this interpreter's (repeatable).",
    ),
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", case_sensitive=False, help="table or json."
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Also fail (exit 1) when a file could not be verified."
    ),
    show_all: bool = typer.Option(
        False, "--all", help="List every distribution, not only those with issues."
    ),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Hashing threads."),
) -> None:
    """Verify installed distributions against their RECORD hashes."""
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    with progress:
        task = progress.add_task("Hashing installed files", total=None)
        report = verify_environment(
            path or None,
            packages=package or None,
            workers=workers,
            on_total=lambda n: progress.update(task, total=n),
            progress=lambda n: progress.advance(task, n),
        )
    if output_format is OutputFormat.JSON:
        out_console.print(
            json.dumps(report.to_dict(), indent=2), markup=False, highlight=False, soft_wrap=True
        )
    else:
        _print_table(report, show_all=show_all)
    failed = report.tampered or (strict and report.count("unverifiable") > 0)
    if failed:
        raise typer.Exit(code=1)


def _print_table(report: EnvReport, *, show_all: bool) -> None:
    table = Table(title="Installed distributions", title_justify="left")
    table.add_column("Distribution", no_wrap=True, style="bold")
    table.add_column("Version", no_wrap=True)
    table.add_column("Issue", no_wrap=True)
    table.add_column("Path", overflow="fold")
    table.add_column("Detail", overflow="fold")
    rows = 0
    for dist in report.distributions:
        if not dist.issues:
            if show_all:
                table.add_row(
                    Text(dist.name),
                    Text(dist.version),
                    Text("ok", style="green"),
                    Text(f"{dist.files_checked} files"),
                    Text(""),
                )
                rows += 1
            continue
        for issue in dist.issues:
            table.add_row(
                Text(dist.name),
                Text(dist.version),
                Text(issue.kind, style=_KIND_STYLE[issue.kind]),
                Text(issue.path),
                Text(issue.detail),
            )
            rows += 1
    for issue in report.unowned:
        table.add_row(
            Text("(site-packages)"),
            Text(""),
            Text(issue.kind, style=_KIND_STYLE[issue.kind]),
            Text(issue.path),
            Text(issue.detail),
        )
        rows += 1
    if rows:
        out_console.print(table)
    files = sum(d.files_checked for d in report.distributions)
    summary = (
        f"Checked {files} files of {len(report.distributions)} distributions in "
        f"{len(report.site_dirs)} folder(s): {report.count('modified')} modified, "
        f"{report.count('missing')} missing, {report.count('unrecorded')} unrecorded, "
        f"{report.count('unverifiable')} unverifiable."
    )
    verdict = (
        Text("TAMPERED: ", style="bold red") if report.tampered else Text("OK: ", style="green")
    )
    out_console.print(verdict + Text(summary))
