"""``bastion threat-model`` and ``bastion triage``.

* ``bastion threat-model system.yaml`` reads a system description, decides which OWASP
  ML Top 10 entries and failure modes apply, rates and ranks them, and writes
  ``threat-model.html``, ``.md`` and ``.json`` (``--format`` picks, ``--output`` says
  where); ``--emit-assessment assess.yaml`` also writes the assessment config that runs
  exactly the installed probes that check the applicable threats.
* ``bastion triage FINDING`` explains a finding's severity by the bug-bar rules. FINDING
  is a key or fingerprint of a finding in the latest run of the results store (or of
  ``--run``), or a JSON file holding a finding or a report (``--finding`` picks one).

Examples
--------
>>> import typer
>>> from typer.testing import CliRunner
>>> from bastion.cli.threatmodel_cmd import register
>>> app = typer.Typer()
>>> register(app)
>>> result = CliRunner().invoke(app, ["threat-model", "--help"])
>>> result.exit_code, "--emit-assessment" in result.output
(0, True)
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from bastion.cli.console import err_console, out_console
from bastion.store import STORE_URL_ENV
from bastion.threatmodel.analysis import analyse
from bastion.threatmodel.emit import PLACEHOLDER, write
from bastion.threatmodel.loading import load_description
from bastion.threatmodel.outputs import FORMATS, parse_formats, write_outputs
from bastion.threatmodel.results import ThreatModel
from bastion.threatmodel.triage import Triage, explain
from bastion.threatmodel.triage_lookup import from_file, from_store

__all__ = ["register", "threat_model_command", "triage_command"]

_STYLE = {
    "critical": "bold white on red",
    "important": "bold red",
    "moderate": "yellow",
    "low": "cyan",
    "none": "dim",
}


def register(app: typer.Typer) -> None:
    """Add ``threat-model`` and ``triage`` to ``app``."""
    app.command(
        "threat-model",
        help="Threat-model an ML system from its description (see examples/systems/).",
    )(threat_model_command)
    app.command(
        "triage",
        help="Explain a finding's severity by the bug-bar rules.",
    )(triage_command)


def _print_model(tm: ThreatModel) -> None:
    table = Table(title=f"Threat model — {tm.system}", title_justify="left")
    for column in ("#", "Threat", "Severity", "Risk", "Gaps", "Tested by"):
        table.add_column(column, overflow="fold", no_wrap=column in ("#", "Severity"))
    for t in tm.ranked():
        sev = t.severity.value
        table.add_row(
            str(t.rank),
            Text(f"{t.id} {t.name}"),
            Text(sev, style=_STYLE[sev]),
            f"{t.risk.score:.1f}" if t.risk else "—",
            str(len(t.gaps)),
            Text(", ".join(t.probes) or "—"),
        )
    out_console.print(table)
    na = [t.id for t in tm.threats if not t.applies]
    out_console.print(
        Text(f"{len(tm.applicable())} of {len(tm.threats)} threats apply; not applicable: ")
        + Text(", ".join(na) or "none", style="dim")
    )
    for w in tm.warnings:
        out_console.print(Text("Warning ", style="bold yellow") + Text(f"{w.code}: {w.message}"))


def threat_model_command(
    system: Path = typer.Argument(..., metavar="SYSTEM", help="System description YAML."),
    output: Path = typer.Option(
        Path("bastion-threat-model"), "--output", "-o", help="Folder for the reports."
    ),
    formats: str = typer.Option(
        ",".join(FORMATS), "--format", help="Any of html, markdown, json, comma-separated."
    ),
    emit_assessment: Path | None = typer.Option(
        None,
        "--emit-assessment",
        help="Also write an assessment config that runs the probes checking these threats.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the files written."),
) -> None:
    """Threat-model an ML system described in SYSTEM."""
    wanted = parse_formats(formats)
    loaded = load_description(system)
    tm = analyse(loaded)
    emitted = write(tm, loaded, emit_assessment) if emit_assessment is not None else None
    written = write_outputs(
        tm, output, wanted, assessment=str(emit_assessment) if emitted else None
    )
    if not quiet:
        _print_model(tm)
    for fmt, path in written.items():
        out_console.print(Text(f"{fmt.upper():>8} report: {path}"), soft_wrap=True)
    if emitted is not None:
        out_console.print(
            Text(f"Assessment config: {emitted.path} (probes: {', '.join(emitted.probes)})")
            if emitted.probes
            else Text(f"Assessment config: {emitted.path} (no installed probe applies)"),
            soft_wrap=True,
        )
        if emitted.placeholders:
            err_console.print(
                Text(
                    f"Fill in the {len(emitted.placeholders)} {PLACEHOLDER} value(s) in "
                    f"{emitted.path} before `bastion assess`: "
                    + "; ".join(emitted.placeholders)
                    + ".",
                    style="yellow",
                ),
                soft_wrap=True,
            )
        else:
            out_console.print(Text(f"Run it: bastion assess {emitted.path}"), soft_wrap=True)


def _triage_dict(t: Triage, where: str) -> dict[str, Any]:
    f = t.finding
    return {
        "finding": {
            "key": f.key,
            "fingerprint": f.fingerprint,
            "title": f.title,
            "status": f.status.value,
            "severity": f.severity.value,
            "source": where,
        },
        "severity_rationale": list(f.severity_rationale),
        "reconstructed": t.reconstructed,
        "inputs": t.determined,
        "row": t.row,
        "row_levels": t.row_levels,
        "owasp": [asdict(o) for o in t.owasp],
        "why_not_higher": t.why_not_higher,
        "what_would_lower_it": t.why_not_lower,
        "notes": t.notes,
    }


def _print_triage(t: Triage, where: str) -> None:
    f = t.finding
    sev = f.severity.value
    out_console.print(
        Text("Finding ", style="bold")
        + Text(f"{f.title} — {f.key}  ({f.fingerprint})")
        + Text(f"\nfrom {where}", style="dim"),
        soft_wrap=True,
    )
    out_console.print(
        Text(f"Status {f.status.value.replace('_', ' ')}, severity ") + Text(sev, style=_STYLE[sev])
    )
    if f.severity_rationale:
        out_console.print(Text(f"\nWhy {sev} (the rules that fired, in order):", style="bold"))
        for i, line in enumerate(f.severity_rationale, 1):
            out_console.print(Text(f"  {i}. {line}"))
    if t.reconstructed:
        inputs = Table(title="Bug-bar inputs", title_justify="left", show_header=False)
        inputs.add_column("input", style="bold")
        inputs.add_column("value", overflow="fold")
        for key, value in t.determined.items():
            inputs.add_row(key.replace("_", " "), Text(value))
        levels = ", ".join(f"{k} {v}" for k, v in t.row_levels.items())
        inputs.add_row("row", Text(f"{t.row}: {levels}"))
        out_console.print(inputs)
    for o in t.owasp:
        verdict = "raises the level (rule 5)" if o.raises else "does not raise it"
        out_console.print(
            Text(
                f"OWASP {o.id}: exploitability {o.exploitability}, detectability "
                f"{o.detectability} — {verdict}."
            )
        )
    if t.why_not_higher:
        out_console.print(Text("\nWhat would make it worse:", style="bold"))
        for line in t.why_not_higher:
            out_console.print(Text(f"  • {line}"))
    if t.why_not_lower:
        out_console.print(Text("What would make it less severe:", style="bold"))
        for line in t.why_not_lower:
            out_console.print(Text(f"  • {line}"))
    for note in t.notes:
        out_console.print(Text(note, style="yellow"))
    out_console.print(Text("The rules: docs/severity.md.", style="dim"))


def triage_command(
    finding: str = typer.Argument(
        ...,
        metavar="FINDING",
        help="A finding key or fingerprint from the store, or a JSON finding or report file.",
    ),
    pick: str | None = typer.Option(
        None, "--finding", help="Which finding of a JSON report (key or fingerprint)."
    ),
    run: str | None = typer.Option(None, "--run", help="Run id or prefix (default: latest)."),
    store_url: str | None = typer.Option(
        None, "--store", envvar=STORE_URL_ENV, help="Results store URL or SQLite file."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Explain FINDING's severity by the bug-bar rules."""
    path = Path(finding)
    if path.suffix.lower() == ".json" or path.is_file():
        found, where = from_file(path, pick)
    else:
        found, where = from_store(finding, store_url=store_url, run=run)
    result = explain(found)
    if as_json:
        out_console.out(json.dumps(_triage_dict(result, where), indent=2), highlight=False)
    else:
        _print_triage(result, where)
