"""``bastion harden``: apply a remedy and verify it with the probes that found the weakness.

``bastion harden --demo`` trains the demo digits CNN and hardens it with adversarial
fine-tuning; ``bastion harden CONFIG --remedy ID [--param k=v]...`` does the same for
the (single) target of an assessment config. Both runs land in the results store
(``bastion runs diff BEFORE AFTER`` compares them), reports of the hardened run are
written to ``--output``, and a before/after table is printed. Exit code 0 when the
re-run verified an improvement, 1 when the remedy did not fix the finding, 2 and
above for errors (see :mod:`bastion.errors`).

Examples
--------
>>> import typer
>>> from typer.testing import CliRunner
>>> app = typer.Typer(); register(app); _ = app.command("noop")(lambda: None)
>>> CliRunner().invoke(app, ["harden", "--help"]).exit_code
0
"""

from __future__ import annotations

import hashlib
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
import typer
import yaml
from rich.table import Table

from bastion import __version__
from bastion.cli.console import err_console, out_console
from bastion.cli.progress import RichProgress
from bastion.errors import UsageError
from bastion.findings import Finding, Severity, Status
from bastion.plugins import Registry, default_registry
from bastion.remedies import BUILTIN_REMEDIES
from bastion.report import write_reports
from bastion.runs.harden import HardenOutcome, HardenRequest, run_harden
from bastion.runs.jobs import AssessmentJob
from bastion.store import open_store
from bastion.targets.torch_target import TorchTarget

__all__ = ["harden_registry", "parse_assignments", "register"]

STORE_HELP = "Results store URL (default: SQLite in ./.bastion/). Also BASTION_STORE_URL."
DEFAULT_REMEDY = "evasion.adversarial_training"


def harden_registry() -> Registry:
    """Installed plugins plus the built-in remedies and the probes verifying them.

    Entry points win; the built-ins fill in when the package metadata does not list
    them (e.g. an editable install made before they existed).
    """
    base = default_registry()
    probes: dict[str, Any] = {}
    missing = {p for cls in BUILTIN_REMEDIES.values() for p in cls.meta.verified_by}
    missing -= set(base.probes)
    if missing:
        from bastion.probes.evasion.gradient import APGDProbe, PGDProbe

        for cls in (PGDProbe, APGDProbe):
            if cls.meta.id in missing:
                probes[cls.meta.id] = cls
    remedies = {k: v for k, v in BUILTIN_REMEDIES.items() if k not in base.remedies}
    return base.with_plugins(probes=probes, remedies=remedies)


def _value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_assignments(items: list[str], option: str) -> dict[str, Any]:
    """``["k=v", ...]`` as a dict, values read as YAML scalars (``0.1``, ``true``, ``l2``).

    >>> parse_assignments(["eps=0.05", "method=trades"], "--param")
    {'eps': 0.05, 'method': 'trades'}
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} takes KEY=VALUE; got {item!r}.")
        out[key.strip()] = _value(value.strip())
    return out


def _probe_params(items: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        probe, sep, rest = item.partition(":")
        if not sep or not probe:
            raise UsageError(f"--probe-param takes PROBE:KEY=VALUE; got {item!r}.")
        out.setdefault(probe, {}).update(parse_assignments([rest], "--probe-param"))
    return out


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def _verdict_text(finding: Finding) -> str:
    if finding.severity is Severity.NONE:
        return finding.status.value
    return f"{finding.status.value} ({finding.severity.value})"


def _print_table(outcome: HardenOutcome) -> None:
    table = Table(title=f"bastion harden: {outcome.after.options['remedy']['id']}")
    kinds = {b.metric for c in outcome.changes for b in c.budgets}
    measured = "certified acc." if kinds == {"certified_accuracy"} else "robust acc."
    if kinds == {"robust_accuracy", "certified_accuracy"}:
        measured = "robust/certified acc."
    for col in ("probe", "budget", f"{measured} before", "after", "change"):
        table.add_column(col)
    for c in outcome.changes:
        for b in c.budgets:
            mark = " (significant)" if b.improved else (" (worse)" if b.worsened else "")
            table.add_row(
                f"{c.probe_id} ({c.variant})",
                f"{b.budget:g}",
                _fmt(b.before),
                _fmt(b.after),
                f"{b.after - b.before:+.3f}{mark}",
            )
        after = c.after
        table.add_row(
            f"{c.probe_id} ({c.variant})",
            "clean",
            _fmt(c.clean_accuracy(c.before)),
            _fmt(c.clean_accuracy(after)),
            "",
        )
        verdict_after = "—" if after is None else _verdict_text(after)
        table.add_row(
            f"{c.probe_id} ({c.variant})",
            "verdict",
            _verdict_text(c.before),
            verdict_after,
            "",
            end_section=True,
        )
    out_console.print(table)
    ch = outcome.remedy.changes
    if "clean_accuracy_before" in ch:
        out_console.print(
            f"Clean test accuracy: {ch['clean_accuracy_before']:.3f} -> "
            f"{ch['clean_accuracy_after']:.3f} ({ch.get('test_rows')} rows); training took "
            f"{ch.get('train_seconds')} s."
        )
    elif outcome.remedy.notes:
        out_console.print(outcome.remedy.notes)
    out_console.print(
        f"Runs: before {outcome.before.run_id}, after {outcome.after.run_id} "
        f"(compare with 'bastion runs diff {outcome.before.run_id} {outcome.after.run_id}')."
    )
    if outcome.verified:
        out_console.print(f"[green]Verified[/green]: {outcome.reason}.")
    else:
        inconclusive = any(
            c.after and c.after.status is Status.INCONCLUSIVE for c in outcome.changes
        )
        extra = " The re-run is inconclusive; see its findings." if inconclusive else ""
        out_console.print(
            f"[red]Not verified[/red]: the remedy did not fix the finding — {outcome.reason}."
            + extra
        )


def _save(outcome: HardenOutcome, path: Path) -> None:
    target = outcome.remedy.target
    if not isinstance(target, TorchTarget):
        raise UsageError("--save writes TorchScript and needs a torch target; drop --save.")
    example = torch.zeros((1, *target.input_spec.shape), device=target.device)
    try:
        scripted = torch.jit.trace(target.module.eval(), example)  # type: ignore[no-untyped-call]
    except Exception as err:  # tracing raises assorted errors for exotic modules
        raise UsageError(
            f"The hardened model could not be traced to TorchScript ({err}); drop --save."
        ) from err
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(scripted, str(path))
    out_console.print(f"Hardened model saved as TorchScript: {path}")


def harden(
    config_path: Path | None = typer.Argument(None, metavar="[CONFIG]", help="Assessment YAML."),
    demo: bool = typer.Option(False, "--demo", help="Harden the built-in digits CNN."),
    remedy_id: str = typer.Option(DEFAULT_REMEDY, "--remedy", help="Remedy id."),
    param: list[str] = typer.Option([], "--param", help="Remedy parameter KEY=VALUE."),
    probe_param: list[str] = typer.Option(
        [], "--probe-param", help="Verifying probe parameter PROBE:KEY=VALUE (before and after)."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Report folder."),
    save: Path | None = typer.Option(None, "--save", help="Write the hardened model here."),
    store_url: str | None = typer.Option(
        None, "--store", envvar="BASTION_STORE_URL", help=STORE_HELP
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Apply a remedy, re-run the probes that verify it, and show before/after."""
    from bastion.data.demo import load_digits_dataset
    from bastion.demo import train_digits_cnn
    from bastion.runs.build import build_jobs
    from bastion.runs.config import load_config

    if demo == (config_path is not None):
        raise UsageError("Give either a CONFIG file or --demo (try 'bastion harden --demo').")
    registry = harden_registry()
    if remedy_id not in registry.remedies:
        known = ", ".join(registry.remedies) or "none"
        raise UsageError(f"No remedy {remedy_id!r} is installed; known remedies: {known}.")
    remedy = registry.remedies[remedy_id](**parse_assignments(param, "--param"))
    probe_params = _probe_params(probe_param)
    config = load_config(config_path) if config_path is not None else None
    if config is not None:
        for sel in config.probes if config.probes != "all" else []:
            if sel.id in remedy.meta.verified_by:
                probe_params[sel.id] = {**sel.params, **probe_params.get(sel.id, {})}
    out_dir = output or (config.resolve(config.report.output) if config else Path("bastion-report"))
    store = open_store(store_url or (config.store if config else None))
    try:
        with RichProgress(disable=quiet) as progress, ExitStack() as stack:
            if config is None:
                seed = 0
                err_console.print("Bastion harden demo: training the digits CNN.")
                data = load_digits_dataset(seed)
                job = AssessmentJob(
                    train_digits_cnn(data, seed=seed),
                    data,
                    description="Small CNN on scikit-learn's 8x8 digits (inputs in [0, 1]).",
                )
                fingerprint = hashlib.sha256(f"demo|{seed}|{__version__}".encode()).hexdigest()
                name = "harden-demo"
            else:
                jobs = build_jobs(config)
                for j in jobs:
                    stack.callback(j.target.close)
                if len(jobs) != 1:
                    raise UsageError("bastion harden takes a config with exactly one target.")
                job, seed, name, fingerprint = (
                    jobs[0],
                    config.seed,
                    config.name,
                    config.fingerprint(),
                )
            eps = getattr(remedy, "params", {}).get("eps", None)
            budget = float(eps) if isinstance(eps, int | float) else _default_budget(remedy)
            outcome = run_harden(
                HardenRequest(
                    name=name,
                    job=job,
                    remedy=remedy,
                    fingerprint=fingerprint[:16],
                    seed=seed,
                    probe_params=probe_params,
                    output_dir=out_dir,
                    budget=budget,
                ),
                store=store,
                registry=registry,
                progress=progress,
            )
        write_reports(outcome.after, out_dir)
    finally:
        store.close()
    _print_table(outcome)
    out_console.print(f"Reports of the hardened run: {out_dir}")
    if save is not None:
        _save(outcome, save)
    raise typer.Exit(outcome.exit_code)


def _default_budget(remedy: Any) -> float | None:
    fields = getattr(getattr(remedy, "Params", None), "model_fields", {})
    default = getattr(fields.get("eps"), "default", None)
    return float(default) if isinstance(default, int | float) else None


def register(app: typer.Typer) -> None:
    """Add ``harden`` to the app."""
    app.command("harden")(harden)
