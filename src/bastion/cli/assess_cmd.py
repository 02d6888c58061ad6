"""``bastion assess`` and ``bastion demo``."""

from __future__ import annotations

import hashlib
from contextlib import ExitStack
from pathlib import Path
from typing import Literal

import typer

from bastion import __version__
from bastion.cli.console import err_console
from bastion.cli.progress import RichProgress
from bastion.cli.summary import print_summary
from bastion.errors import UsageError
from bastion.findings import Severity
from bastion.plugins import default_registry
from bastion.report import write_reports
from bastion.runs.assessment import AssessmentRequest, run_assessment
from bastion.runs.config import (
    AssessmentConfig,
    ProbeSelection,
    load_config,
    parse_config_text,
)
from bastion.store import open_store

__all__ = ["register"]

STORE_HELP = "Results store URL (default: SQLite in ./.bastion/). Also BASTION_STORE_URL."


def _parse_fail_on(value: str | None) -> Severity | None:
    if value is None:
        return None
    severity = Severity.parse(value)
    if severity is Severity.NONE:
        raise UsageError("--fail-on must be low, moderate, important or critical.")
    return severity


def _config_from_options(
    target: str, data: str, label: str | None, kind: str | None, probes: str | None
) -> AssessmentConfig:
    lines = ["name: " + Path(target).stem, "target:"]
    key = "url" if target.startswith(("http://", "https://")) else "path"
    lines.append(f"  {key}: {target!r}")
    if kind:
        lines.append(f"  kind: {kind}")
    lines.append("data:")
    if data in ("digits", "breast_cancer"):
        lines.append(f"  builtin: {data}")
    else:
        lines.append(f"  path: {str(Path(data).resolve())!r}")
        if label:
            lines.append(f"  label: {label!r}")
    if probes:
        lines.append("probes: [" + ", ".join(repr(p.strip()) for p in probes.split(",")) + "]")
    return parse_config_text("\n".join(lines) + "\n", "command-line options", Path.cwd())


def _run(
    config: AssessmentConfig | None,
    *,
    demo: bool,
    output: Path | None,
    formats: str | None,
    fail_on: str | None,
    store_url: str | None,
    fresh: bool,
    quiet: bool,
    demo_probes: str | None = None,
) -> None:
    from bastion.runs.build import build_jobs
    from bastion.runs.demo import DEMO_FINGERPRINT_PREFIX, demo_jobs

    gate = _parse_fail_on(fail_on) if fail_on else (config.gate.fail_on if config else None)
    report_formats = (
        [f.strip() for f in formats.split(",")]
        if formats
        else (config.report.formats if config else ["json", "sarif", "html", "markdown"])
    )
    out_dir = output or (config.resolve(config.report.output) if config else Path("bastion-report"))
    store = open_store(store_url or (config.store if config else None))
    try:
        with RichProgress(disable=quiet) as progress, ExitStack() as stack:
            if demo:
                seed = 0
                selection: Literal["all"] | list[ProbeSelection] = "all"
                if demo_probes:
                    selection = [ProbeSelection(id=p.strip()) for p in demo_probes.split(",")]
                jobs = stack.enter_context(demo_jobs(seed, progress=progress))
                fingerprint = hashlib.sha256(
                    f"{DEMO_FINGERPRINT_PREFIX}|{seed}|{__version__}|{demo_probes}".encode()
                ).hexdigest()[:16]
                request = AssessmentRequest(
                    name="demo",
                    jobs=jobs,
                    fingerprint=fingerprint,
                    seed=seed,
                    probes=selection,
                    output_dir=out_dir,
                    fail_on=gate,
                    fresh=fresh,
                )
            else:
                assert config is not None
                jobs = build_jobs(config)
                for job in jobs:
                    stack.callback(job.target.close)
                request = AssessmentRequest(
                    name=config.name,
                    jobs=jobs,
                    fingerprint=config.fingerprint(),
                    seed=config.seed,
                    probes=config.probes,
                    exclude=config.exclude,
                    output_dir=out_dir,
                    fail_on=gate,
                    fresh=fresh,
                )
            outcome = run_assessment(
                request, store=store, registry=default_registry(), progress=progress
            )
        artifacts = {job.target.name: job.artifact for job in jobs if job.artifact}
        reports = write_reports(outcome.record, out_dir, report_formats, artifact_uri=artifacts)
    finally:
        store.close()
    print_summary(outcome.record, reports, outcome.resumed_from)
    raise typer.Exit(outcome.exit_code)


def assess(
    config_path: Path | None = typer.Argument(None, metavar="[CONFIG]", help="Assessment YAML."),
    target: str | None = typer.Option(None, "--target", help="Model file or http(s) URL."),
    data: str | None = typer.Option(
        None, "--data", help="Data file (.npz or .csv) or a built-in dataset name."
    ),
    label: str | None = typer.Option(None, "--label", help="Label column of a CSV file."),
    kind: str | None = typer.Option(None, "--kind", help="torch, sklearn, onnx or http."),
    probes: str | None = typer.Option(None, "--probes", help="Comma-separated probe ids."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Report folder."),
    formats: str | None = typer.Option(None, "--format", help="e.g. json,sarif,html,markdown"),
    fail_on: str | None = typer.Option(None, "--fail-on", help="Exit 1 at this severity."),
    store_url: str | None = typer.Option(
        None, "--store", envvar="BASTION_STORE_URL", help=STORE_HELP
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Start anew instead of resuming."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Assess a model: from a CONFIG file, or from --target and --data."""
    if config_path is not None and (target or data):
        raise UsageError("Give either a CONFIG file or --target/--data, not both.")
    if config_path is not None:
        config = load_config(config_path)
    elif target and data:
        config = _config_from_options(target, data, label, kind, probes)
    else:
        raise UsageError(
            "Nothing to assess: give a CONFIG file, or --target MODEL and --data DATA "
            "(try 'bastion demo' first)."
        )
    _run(
        config,
        demo=False,
        output=output,
        formats=formats,
        fail_on=fail_on,
        store_url=store_url,
        fresh=fresh,
        quiet=quiet,
    )


def demo(
    output: Path = typer.Option(Path("bastion-report"), "--output", "-o", help="Report folder."),
    fail_on: str | None = typer.Option(None, "--fail-on", help="Exit 1 at this severity."),
    store_url: str | None = typer.Option(
        None, "--store", envvar="BASTION_STORE_URL", help=STORE_HELP
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Start anew instead of resuming."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    probes: str | None = typer.Option(
        None, "--probes", help="Comma-separated probe ids (default: every probe that applies)."
    ),
) -> None:
    """Train the built-in demo models, assess them with every probe, write all reports."""
    err_console.print("Bastion demo: training three small models, then assessing them.")
    _run(
        None,
        demo=True,
        output=output,
        formats=None,
        fail_on=fail_on,
        store_url=store_url,
        fresh=fresh,
        quiet=quiet,
        demo_probes=probes,
    )


def register(app: typer.Typer) -> None:
    """Add ``assess`` and ``demo`` to the app."""
    app.command("assess")(assess)
    app.command("demo")(demo)
