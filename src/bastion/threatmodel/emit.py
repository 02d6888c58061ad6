"""The assessment config a threat model emits: exactly the probes that check its threats.

``bastion threat-model system.yaml --emit-assessment assess.yaml`` writes a config that
:func:`bastion.runs.config.load_config` accepts and ``bastion assess`` runs:

* ``probes`` lists every installed probe whose metadata names an applicable threat
  (:attr:`~bastion.threatmodel.results.ThreatModel.plan`), each with a comment naming the
  threats it checks;
* ``target`` comes from the description: the model artefact's ``path`` when its format is
  one Bastion loads (TorchScript, torch.export, skops, ONNX), and ``access.url`` for an
  endpoint (both, as two targets, when both are given); ``security_decision`` from
  ``decisions.security``;
* ``data`` comes from ``data.evaluation``.

Whatever the description cannot supply is written as a value starting with
:data:`PLACEHOLDER` and a comment saying what to put there; the config still validates,
and ``bastion assess`` stops with a clear error until the placeholder is replaced.
Relative paths are rewritten relative to the emitted file's folder.

Examples
--------
>>> from pathlib import Path
>>> from bastion.runs.config import parse_config_text
>>> from bastion.threatmodel.analysis import analyse
>>> from bastion.threatmodel.loading import SystemFile
>>> from bastion.threatmodel.samples import minimal_description
>>> system = SystemFile(minimal_description(), "sample.yaml", Path("."))
>>> text, todo = assessment_text(analyse(system), system, Path("assess.yaml"))
>>> cfg = parse_config_text(text, "assess.yaml")
>>> cfg.targets[0].path.startswith(PLACEHOLDER), len(todo)
(True, 2)
>>> "robustness.noise" in [p.id for p in cfg.probes]
True
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from bastion import __version__
from bastion.errors import UsageError
from bastion.threatmodel.loading import SystemFile
from bastion.threatmodel.results import ThreatModel
from bastion.threatmodel.schema import Artefact

__all__ = ["LOADABLE_FORMATS", "PLACEHOLDER", "EmittedAssessment", "assessment_text", "write"]

#: Every value the user must replace starts with this.
PLACEHOLDER = "FILL-IN"
#: Artefact formats Bastion's target adapters load without running code.
LOADABLE_FORMATS = ("torchscript", "torch_export", "skops", "onnx")


@dataclass(frozen=True)
class EmittedAssessment:
    """What :func:`write` produced."""

    path: Path
    probes: list[str]
    placeholders: list[str]


def _q(value: str) -> str:
    """A YAML scalar: JSON strings are valid double-quoted YAML."""
    return json.dumps(value, ensure_ascii=False)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "system"


def _relative(system: SystemFile, path: str, out_dir: Path) -> str:
    absolute = system.resolve(path).resolve()
    try:
        return Path(os.path.relpath(absolute, out_dir.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return absolute.as_posix()


def _model_artefact(system: SystemFile) -> Artefact | None:
    """The deployed model's artefact: one with a path in a loadable format if any."""
    models = [a for a in system.description.artefacts if a.kind == "model"]
    ranked = sorted(models, key=lambda a: (a.path is None, a.format not in LOADABLE_FORMATS))
    return ranked[0] if ranked else None


def _targets(system: SystemFile, out_dir: Path, todo: list[str]) -> list[str]:
    desc = system.description
    security = "true" if desc.decisions.security else "false"
    model = _model_artefact(system)
    entries: list[list[str]] = []
    if model is not None and model.path and model.format in LOADABLE_FORMATS:
        entries.append(
            [
                f"path: {_q(_relative(system, model.path, out_dir))}"
                f"   # artefact {model.name!r} ({model.format})"
            ]
        )
    elif model is not None and model.format not in LOADABLE_FORMATS:
        todo.append(f"target path: artefact {model.name!r} converted from {model.format}")
        entries.append(
            [
                f"# Artefact {model.name!r} is a {model.format} file, which Bastion does not",
                "# load; convert it to ONNX, TorchScript, torch.export or skops and give it here.",
                f"path: {_q(PLACEHOLDER + '/model.onnx')}",
            ]
        )
    if desc.access.url:
        entries.append(
            [
                f"url: {_q(desc.access.url)}   # access.url; request and response mapping",
                "# go under options (docs/configuration.md); a token in an environment",
                "# variable named by options.auth_env, never here",
            ]
        )
    if not entries:
        todo.append("target path: the model file (or an endpoint url)")
        entries.append(
            [
                "# The description gives no model path or endpoint: put the model file",
                "# (TorchScript, torch.export, skops or ONNX) or `url: https://...` here.",
                f"path: {_q(PLACEHOLDER + '/model.onnx')}",
            ]
        )
    lines = ["targets:"]
    for i, entry in enumerate(entries):
        suffix = "" if len(entries) == 1 else ("-file" if i == 0 else "-endpoint")
        lines.append(f"  - name: {_q(_slug(desc.name) + suffix)}")
        lines.extend(f"    {line}" for line in entry)
        lines.append(f"    security_decision: {security}   # decisions.security")
    return lines


def _data(system: SystemFile, out_dir: Path, todo: list[str]) -> list[str]:
    evaluation = system.description.data.evaluation
    if evaluation is None:
        todo.append("data: test data (.npz or .csv) and its label column")
        return [
            "data:",
            "  # The description has no data.evaluation: give test data in the model's",
            "  # raw input space (.npz, or .csv with a label column), or a builtin dataset.",
            f"  path: {_q(PLACEHOLDER + '/test-data.csv')}",
            f"  label: {_q(PLACEHOLDER + '-label-column')}",
        ]
    lines = ["data:   # data.evaluation"]
    if evaluation.builtin is not None:
        lines.append(f"  builtin: {evaluation.builtin}")
    else:
        lines.append(f"  path: {_q(_relative(system, evaluation.path or '', out_dir))}")
    if evaluation.label is not None:
        lines.append(f"  label: {_q(evaluation.label)}")
    if "test_size" in evaluation.model_fields_set:
        lines.append(f"  test_size: {evaluation.test_size}")
    if evaluation.classes is not None:
        lines.append(f"  classes: {json.dumps(evaluation.classes)}")
    return lines


def assessment_text(tm: ThreatModel, system: SystemFile, out_path: Path) -> tuple[str, list[str]]:
    """The config text and the list of placeholders the user must fill."""
    out_dir = Path(out_path).parent
    todo: list[str] = []
    targets = _targets(system, out_dir, todo)
    data = _data(system, out_dir, todo)
    checks = ", ".join(t.id for t in tm.ranked())
    header = (
        f"Assessment emitted by `bastion threat-model` (Bastion {__version__}) from "
        f"{system.source}. It runs the installed probes that check the threats this "
        f"system's threat model found applicable, highest risk first: {checks or 'none'}."
    )
    if tm.plan.untested:
        header += f" No installed probe checks {', '.join(tm.plan.untested)}."
    if todo:
        header += (
            f" Replace the {len(todo)} value(s) starting with {PLACEHOLDER} before running "
            "`bastion assess`."
        )
    lines = [f"# {line}" for line in textwrap.wrap(header, 86)]
    lines += [f"name: {_q(_slug(tm.system))}", "seed: 0", *targets, *data]
    if tm.plan.probes:
        lines.append("probes:")
        lines += [f"  - {p.id}   # checks {', '.join(p.checks)}" for p in tm.plan.probes]
    else:
        lines.append("probes: []   # no installed probe checks an applicable threat")
    lines += ["report:", f"  output: {_q('bastion-report-' + _slug(tm.system))}"]
    return "\n".join(lines) + "\n", todo


def write(tm: ThreatModel, system: SystemFile, out_path: Path) -> EmittedAssessment:
    """Write the config to ``out_path`` (its folder is created).

    Raises
    ------
    UsageError
        If the file cannot be written.
    """
    out_path = Path(out_path)
    text, todo = assessment_text(tm, system, out_path)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise UsageError(
            f"Cannot write the assessment config {out_path} ({err.strerror or err}); "
            "choose a path you can write to."
        ) from None
    return EmittedAssessment(out_path, [p.id for p in tm.plan.probes], todo)
