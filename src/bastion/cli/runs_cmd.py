"""``bastion runs``: list, show and compare the runs in the results store.

``bastion runs list`` shows the newest runs, ``bastion runs show RUN`` one run in
full and ``bastion runs diff RUN_A RUN_B`` what changed between two runs. A run is
named by its id, any unique prefix of it, or ``latest``. Each command reads the
store given by ``--store`` or the ``BASTION_STORE_URL`` environment variable, and
``./.bastion/bastion.db`` otherwise; ``--json`` prints machine-readable output.

Examples
--------
>>> import typer
>>> from typer.testing import CliRunner
>>> from bastion.cli.runs_cmd import register
>>> app = typer.Typer()
>>> register(app)
>>> result = CliRunner().invoke(app, ["runs", "list", "--store", "sqlite://", "--json"])
>>> result.exit_code, result.output.strip()
(0, '[]')
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import typer
from rich import box
from rich.table import Table

from bastion.cli.console import out_console
from bastion.errors import StoreError
from bastion.findings import Finding, Severity, Status
from bastion.findings.run import RunRecord, RunStatus
from bastion.store import STORE_URL_ENV, FindingDelta, Store, default_store_path, diff_runs
from bastion.store import open_store as _open_store

__all__ = ["register"]

LATEST = "latest"

_SEVERITY_STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.IMPORTANT: "bold red",
    Severity.MODERATE: "yellow",
    Severity.LOW: "cyan",
    Severity.NONE: "dim",
}
_STATUS_STYLE = {
    Status.VULNERABLE: "red",
    Status.NOT_VULNERABLE: "green",
    Status.INCONCLUSIVE: "yellow",
    Status.ERROR: "magenta",
}
_RUN_STATUS_STYLE = {
    RunStatus.RUNNING: "cyan",
    RunStatus.COMPLETED: "green",
    RunStatus.INTERRUPTED: "yellow",
    RunStatus.FAILED: "red",
}

_STORE_HELP = (
    "Results store: a SQLAlchemy URL or a SQLite file path "
    f"(default: ./.bastion/bastion.db). Also read from {STORE_URL_ENV}."
)
_JSON_HELP = "Print JSON instead of tables."
_RUN_HELP = "A run id, a unique prefix of one, or 'latest'."


def _store_option() -> Any:
    return typer.Option(None, "--store", envvar=STORE_URL_ENV, help=_STORE_HELP)


def _json_option() -> Any:
    return typer.Option(False, "--json", help=_JSON_HELP)


def _open(url: str | None) -> Store:
    return _open_store(url, create=False)


def _resolve_run(store: Store, ref: str) -> RunRecord:
    if ref.strip().lower() == LATEST:
        latest = store.latest_run()
        if latest is None:
            raise StoreError(
                f"The store at {store.url} holds no runs yet; run an assessment first."
            )
        return latest
    return store.get_run(ref)


def _print_json(data: Any) -> None:
    out_console.out(json.dumps(data, indent=2, ensure_ascii=False), highlight=False)


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(record: RunRecord) -> str:
    if record.finished_at is None:
        return "—"
    seconds = max(0, round((record.finished_at - record.started_at).total_seconds()))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _gate(record: RunRecord, *, short: bool = False) -> str:
    gate = record.gate
    if gate.fail_on is None:
        return "—" if short else "none"
    if short:
        return "[green]pass[/]" if gate.passed else "[bold red]fail[/]"
    verdict = "[green]passed[/]" if gate.passed else "[bold red]failed[/]"
    return f"{verdict} (fail on {gate.fail_on.value})"


_SHORT = {"critical": "crit", "important": "imp", "moderate": "mod", "low": "low"}


def _vulnerable(record: RunRecord) -> str:
    """Vulnerable findings per severity, e.g. ``1 crit 2 low``; ``none`` when clean."""
    parts = [
        f"[{_SEVERITY_STYLE[Severity(sev)]}]{n} {_SHORT[sev]}[/]"
        for sev, n in record.severity_counts().items()
        if n
    ]
    return " ".join(parts) or "[dim]none[/]"


def _run_status(status: RunStatus) -> str:
    return f"[{_RUN_STATUS_STYLE[status]}]{status.value}[/]"


def _severity(sev: Severity) -> str:
    return f"[{_SEVERITY_STYLE[sev]}]{sev.value}[/]"


def _status(status: Status) -> str:
    return f"[{_STATUS_STYLE[status]}]{status.value.replace('_', ' ')}[/]"


def _probe(f: Finding) -> str:
    return f.probe_id + (f" [dim]({f.variant})[/]" if f.variant else "")


def _summary_dict(record: RunRecord) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "name": record.name,
        "status": record.status.value,
        "started_at": record.started_at.isoformat(),
        "finished_at": None if record.finished_at is None else record.finished_at.isoformat(),
        "config_fingerprint": record.config_fingerprint,
        "bastion_version": record.bastion_version,
        "planned": len(record.planned),
        "completed": len(record.completed),
        "findings": len(record.findings),
        "severity_counts": record.severity_counts(),
        "status_counts": record.status_counts(),
        "gate": record.gate.model_dump(mode="json"),
    }


# -- commands -----------------------------------------------------------------------------


def list_command(
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many runs to show."),
    name: str | None = typer.Option(None, "--name", help="Only runs with this name."),
    store_url: str | None = _store_option(),
    as_json: bool = _json_option(),
) -> None:
    """List the newest runs, newest first, with their vulnerable findings by severity."""
    if store_url is None and not default_store_path().exists():
        if as_json:
            _print_json([])
        else:
            out_console.print(
                f"No runs yet: there is no results store at {default_store_path()}. "
                "Run 'bastion assess' first, or pass --store."
            )
        return
    with _open(store_url) as store:
        runs = store.list_runs(limit, name=name)
        where = store.url
    if as_json:
        _print_json([_summary_dict(r) for r in runs])
        return
    if not runs:
        out_console.print(f"No runs in the store at {where}.")
        return
    table = Table(
        box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, caption=f"Store: {where}"
    )
    table.add_column("ID", no_wrap=True)
    table.add_column("Name", overflow="fold", min_width=8)
    table.add_column("Started (UTC)", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Probes", justify="right", no_wrap=True)
    table.add_column("Vulnerable", min_width=10)
    table.add_column("Gate", no_wrap=True)
    for record in runs:
        table.add_row(
            record.run_id,
            record.name,
            record.started_at.strftime("%Y-%m-%d %H:%M"),
            _run_status(record.status),
            f"{len(record.completed)}/{len(record.planned)}",
            _vulnerable(record),
            _gate(record, short=True),
        )
    out_console.print(table)


def show_command(
    run: str = typer.Argument(..., help=_RUN_HELP),
    store_url: str | None = _store_option(),
    as_json: bool = _json_option(),
) -> None:
    """Show one run: metadata, targets, skipped probes and every finding."""
    with _open(store_url) as store:
        record = _resolve_run(store, run)
    if as_json:
        out_console.out(record.model_dump_json(indent=2), highlight=False)
        return
    _print_run(record)


def _print_run(record: RunRecord) -> None:
    meta = Table.grid(padding=(0, 2))
    meta.add_column(style="bold", no_wrap=True)
    meta.add_column(overflow="fold")
    meta.add_row("Run", f"{record.run_id} — {record.name}")
    meta.add_row("Status", _run_status(record.status))
    meta.add_row("Started", _when(record.started_at))
    meta.add_row("Finished", f"{_when(record.finished_at)} (took {_duration(record)})")
    meta.add_row("Probes", f"{len(record.completed)} of {len(record.planned)} completed")
    meta.add_row("Seed", str(record.seed))
    meta.add_row("Config", record.config_fingerprint or "—")
    meta.add_row("Bastion", record.bastion_version or "—")
    counts = ", ".join(f"{n} {sev}" for sev, n in record.severity_counts().items())
    meta.add_row("Vulnerable", counts)
    meta.add_row("Gate", _gate(record))
    out_console.print(meta)

    if record.targets:
        targets = Table(title="Targets", title_justify="left")
        for column in ("Name", "Kind", "Dataset", "Classes", "Input", "Capabilities", "Budget"):
            targets.add_column(column, overflow="fold")
        for t in record.targets:
            targets.add_row(
                t.name,
                t.kind,
                t.dataset,
                str(len(t.classes)),
                "×".join(str(d) for d in t.input_shape) or "—",
                ", ".join(t.capabilities) or "—",
                "unlimited" if t.query_budget is None else str(t.query_budget),
            )
        out_console.print(targets)

    if record.skipped:
        skipped = Table(title="Skipped probes", title_justify="left")
        skipped.add_column("Probe", no_wrap=True)
        skipped.add_column("Target")
        skipped.add_column("Reason", overflow="fold")
        for s in record.skipped:
            skipped.add_row(s.probe_id, s.target, s.reason)
        out_console.print(skipped)

    pending = [key for key in record.planned if key not in set(record.completed)]
    if pending and record.status is not RunStatus.COMPLETED:
        out_console.print(f"Not yet run ({len(pending)}): " + ", ".join(pending))

    if not record.findings:
        out_console.print("No findings.")
        return
    findings = Table(title="Findings", title_justify="left")
    findings.add_column("Severity", no_wrap=True)
    findings.add_column("Status", no_wrap=True)
    findings.add_column("Probe")
    findings.add_column("Target")
    findings.add_column("Summary", overflow="fold")
    ordered = sorted(record.findings, key=lambda f: (-f.severity.rank, f.target, f.probe_id))
    for f in ordered:
        findings.add_row(_severity(f.severity), _status(f.status), _probe(f), f.target, f.summary)
    out_console.print(findings)


def diff_command(
    run_a: str = typer.Argument(..., help="The baseline run. " + _RUN_HELP),
    run_b: str = typer.Argument(..., help="The run to compare with it. " + _RUN_HELP),
    store_url: str | None = _store_option(),
    as_json: bool = _json_option(),
) -> None:
    """Compare two runs: new, fixed and changed findings (always exits 0)."""
    with _open(store_url) as store:
        a = _resolve_run(store, run_a)
        b = _resolve_run(store, run_b)
    diff = diff_runs(a, b)
    if as_json:
        _print_json(diff.to_dict())
        return
    out_console.print(
        f"Comparing [bold]{a.run_id}[/] ({a.name}, {_when(a.started_at)}) with "
        f"[bold]{b.run_id}[/] ({b.name}, {_when(b.started_at)})"
    )
    _delta_table("New vulnerable findings", diff.new, show_changes=False)
    _delta_table("Fixed findings", diff.fixed, show_changes=True)
    _delta_table("Changed findings", diff.changed, show_changes=True)
    if diff.added or diff.removed:
        out_console.print(
            f"[dim]{len(diff.added)} finding(s) only in {b.run_id} and {len(diff.removed)} "
            f"only in {a.run_id}, none of them vulnerable.[/]"
        )
    c = diff.counts()
    out_console.print(
        f"{c['new']} new, {c['fixed']} fixed, {c['changed']} changed, {c['unchanged']} unchanged."
    )


def _delta_table(title: str, deltas: tuple[FindingDelta, ...], *, show_changes: bool) -> None:
    if not deltas:
        return
    table = Table(title=f"{title} ({len(deltas)})", title_justify="left")
    table.add_column("Severity", no_wrap=True)
    table.add_column("Probe")
    table.add_column("Target")
    table.add_column("What changed" if show_changes else "Summary", overflow="fold")
    for d in deltas:
        f = d.finding
        # A fixed finding is shown at the severity it had while it was vulnerable.
        shown = f
        if d.before is not None and d.before.is_vulnerable and not f.is_vulnerable:
            shown = d.before
        if show_changes:
            detail = "; ".join(str(c) for c in d.changes) or (
                f"absent from {'the second' if d.after is None else 'the first'} run"
            )
        else:
            detail = f.summary
        table.add_row(_severity(shown.severity), _probe(f), f.target, detail)
    out_console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``runs`` command group (list, show, diff) to ``app``.

    Parameters
    ----------
    app : typer.Typer
        The root application.
    """
    runs = typer.Typer(
        name="runs",
        help="List, show and compare assessment runs in the results store.",
        no_args_is_help=True,
    )
    runs.command("list")(list_command)
    runs.command("show")(show_command)
    runs.command("diff")(diff_command)
    app.add_typer(runs, name="runs")
