"""``bastion artifacts``: supply-chain commands for model files.

``bastion artifacts scan PATH...`` scans model files and folders for anything that is
not proven safe to load (see ``docs/artifacts.md``): a Rich table by default,
``--format json`` or ``--format sarif`` for machines, ``--output FILE`` to write it,
``--allow module:qualname`` for a reviewed exception (recorded in the report).

Exit codes: 0 every file is clean, 1 something unsafe was found, 2 bad usage or a file
that cannot be read.

:data:`artifacts_app` is the ``artifacts`` sub-application; other modules add their
commands (sign, verify, convert) to it.

Examples
--------
>>> import pickle, tempfile, pathlib, typer
>>> from typer.testing import CliRunner
>>> from bastion.cli.artifacts_cmd import register
>>> app = typer.Typer()
>>> register(app)
>>> path = pathlib.Path(tempfile.mkdtemp()) / "ok.pkl"
>>> _ = path.write_bytes(pickle.dumps([1, 2, 3]))
>>> CliRunner().invoke(app, ["artifacts", "scan", str(path), "--format", "json"]).exit_code
0
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from bastion.artifacts.issues import ScanReport
from bastion.artifacts.limits import Limits
from bastion.artifacts.sarif import to_sarif
from bastion.artifacts.scanner import scan_paths
from bastion.cli.console import out_console
from bastion.errors import UsageError

__all__ = ["artifacts_app", "register", "scan_command"]

artifacts_app = typer.Typer(
    name="artifacts",
    help="Scan, sign, verify and convert model artifacts (supply chain).",
    no_args_is_help=True,
)


class OutputFormat(StrEnum):
    """Output formats of ``bastion artifacts scan``."""

    TABLE = "table"
    JSON = "json"
    SARIF = "sarif"


def register(app: typer.Typer) -> None:
    """Add the ``artifacts`` command group to ``app``."""
    app.add_typer(artifacts_app, name="artifacts")


def _limits(entries: list[str]) -> Limits:
    values: dict[str, Any] = {}
    known = set(Limits.__dataclass_fields__)
    for entry in entries:
        key, sep, raw = entry.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in known:
            raise UsageError(
                f"--limit takes NAME=VALUE with NAME one of {', '.join(sorted(known))}; "
                f"got {entry!r}."
            )
        try:
            values[key] = float(raw) if key == "max_ratio" else int(raw)
        except ValueError:
            raise UsageError(f"--limit {key} needs a number; got {raw!r}.") from None
    return Limits(**values)


@artifacts_app.command("scan")
def scan_command(
    paths: list[Path] = typer.Argument(..., help="Model files or folders (walked recursively)."),
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", "-f", case_sensitive=False, help="table, json or sarif."
    ),
    allow: list[str] = typer.Option(
        [], "--allow", help="A reviewed exception, module:qualname (repeatable)."
    ),
    limit: list[str] = typer.Option(
        [], "--limit", help="Override a scan limit, NAME=VALUE (repeatable), e.g. max_ratio=500."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the JSON or SARIF report to this file."
    ),
) -> None:
    """Scan model files for code, unknown imports and parser-confusion tricks."""
    report = scan_paths(paths, allow=allow, limits=_limits(limit))
    if output_format is OutputFormat.TABLE:
        if output is not None:
            raise UsageError("--output needs --format json or --format sarif.")
        _table(report)
    else:
        data = report.to_dict() if output_format is OutputFormat.JSON else to_sarif(report)
        text = json.dumps(data, indent=2, ensure_ascii=False)
        if output is None:
            out_console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)
        else:
            try:
                output.write_text(text + "\n", encoding="utf-8")
            except OSError as err:
                raise UsageError(f"Cannot write {output} ({err.strerror or err}).") from err
    if not report.safe:
        raise typer.Exit(1)


def _table(report: ScanReport) -> None:
    files = Table(title="Artifact scan", title_justify="left")
    for column in ("File", "Format", "Size", "Verdict", "Issues", "SHA-256"):
        files.add_column(column, overflow="fold")
    for f in report.files:
        verdict = Text("clean", style="green") if f.safe else Text(f.worst.value, style="bold red")
        files.add_row(
            Text(f.path),
            Text(" > ".join(f.formats) or "—"),
            Text(f"{f.size:,}"),
            verdict,
            Text(str(len(f.issues))),
            Text(f.sha256[:16]),
        )
    out_console.print(files)
    if report.issues:
        issues = Table(title="Issues", title_justify="left")
        for column in ("Severity", "Category", "Where", "Global", "Why"):
            issues.add_column(column, overflow="fold")
        for i in report.issues:
            count = f" (x{i.count})" if i.count > 1 else ""
            issues.add_row(
                Text(i.severity.value),
                Text(i.category.value),
                Text(i.location.describe()),
                Text(i.global_name or "—"),
                Text(i.message + count),
            )
        out_console.print(issues)
    exceptions = sorted({name for f in report.files for name in f.allowed_by_user})
    if exceptions:
        out_console.print(Text(f"Reviewed exceptions used (--allow): {', '.join(exceptions)}"))
    unsafe = sum(not f.safe for f in report.files)
    out_console.print(
        Text(
            f"{len(report.files)} file(s) scanned, {unsafe} unsafe, {len(report.issues)} issue(s)."
        )
    )
