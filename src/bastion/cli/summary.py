"""The end-of-run summary the CLI prints: findings table, gate, report paths."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from bastion.cli.console import out_console
from bastion.findings import Severity, Status
from bastion.findings.run import RunRecord

__all__ = ["print_summary"]

SEVERITY_STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.IMPORTANT: "bold red",
    Severity.MODERATE: "yellow",
    Severity.LOW: "cyan",
    Severity.NONE: "dim",
}
STATUS_STYLE = {
    Status.VULNERABLE: "red",
    Status.NOT_VULNERABLE: "green",
    Status.INCONCLUSIVE: "yellow",
    Status.ERROR: "magenta",
}


def _headline(summary: str, limit: int = 140) -> str:
    """The first sentence of a summary, shortened for the terminal (reports have it all)."""
    first = summary.split("; ")[0].split(". ")[0].rstrip(".")
    return first if len(first) <= limit else first[: limit - 1] + "…"


def print_summary(record: RunRecord, reports: dict[str, Path], resumed_from: int = 0) -> None:
    """Print the findings of ``record`` and where its reports are."""
    table = Table(title=f"Bastion run {record.run_id} — {record.name}", expand=True)
    table.add_column("Severity", no_wrap=True)
    table.add_column("Finding", ratio=2, overflow="fold")
    table.add_column("Result", ratio=3, overflow="fold")
    ordered = sorted(
        record.findings, key=lambda f: (-f.severity.rank, f.status.value, f.target, f.probe_id)
    )
    for f in ordered:
        label = f.severity.value if f.is_vulnerable else f.status.value.replace("_", " ")
        style = SEVERITY_STYLE[f.severity] if f.is_vulnerable else STATUS_STYLE[f.status]
        variant = f" [dim]({f.variant})[/]" if f.variant else ""
        table.add_row(
            f"[{style}]{label}[/]",
            f"{f.probe_id}{variant}\n[dim]{f.target}[/]",
            _headline(f.summary),
        )
    out_console.print(table)
    if resumed_from:
        out_console.print(f"Resumed an interrupted run: {resumed_from} probe(s) were already done.")
    counts = ", ".join(f"{n} {sev}" for sev, n in record.severity_counts().items())
    out_console.print(f"Vulnerable findings by severity: {counts}.")
    for skipped in record.skipped:
        out_console.print(
            f"[dim]Skipped {skipped.probe_id} on {skipped.target}: {skipped.reason}.[/]"
        )
    gate = record.gate
    if gate.fail_on is None:
        out_console.print("Gate: none set (use --fail-on to fail a build on findings).")
    elif gate.passed:
        out_console.print(
            f"Gate: [green]passed[/] (nothing vulnerable at {gate.fail_on.value} or above)."
        )
    else:
        out_console.print(
            f"Gate: [bold red]failed[/] — {len(gate.failing)} finding(s) at "
            f"{gate.fail_on.value} or above."
        )
    for fmt, path in reports.items():
        out_console.print(f"{fmt.upper():>8} report: {path}")
    if "html" in reports:
        out_console.print(f"Open the HTML report: [bold]{reports['html'].resolve()}[/]")
