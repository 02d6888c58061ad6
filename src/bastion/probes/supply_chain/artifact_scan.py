"""``supply_chain.artifact_scan``: scan the target's model file like ``bastion artifacts scan``.

Not an attack: a static check of the model file (and any extra ``paths``) with the
artifact scanner of :mod:`bastion.artifacts` -- a symbolic pickle interpreter with a
deny-by-default allowlist, content-based format detection and recursive archive
scanning (OWASP ML06; ATLAS AML.T0010 / AML.T0011, mitigated by AML.M0016
vulnerability scanning and AML.M0011 restricted loading). Nothing in the file is ever
imported or unpickled. One finding per file:

* **vulnerable**, with the worst issue's severity, when the file holds anything that
  is not proven safe to load;
* **vulnerable, low**, when it holds nothing unsafe but is *pickle-based* (a pickle,
  joblib or ``torch.save`` file): the scan proves what this copy holds, yet whoever
  loads it with ``pickle``, ``joblib.load`` or ``torch.load(weights_only=False)``
  runs whatever a later copy names, so the format is the weakness (AML.M0011). The
  remedy ``supply_chain.safe_reserialisation`` rewrites it as safetensors or skops;
* **not vulnerable** otherwise (safetensors, skops, ONNX, TorchScript, a Keras file
  without code).

A target built from a file records it as ``target.source_path``; a target without one
(an in-memory module, an HTTP endpoint) gets an ``inconclusive`` finding that says so,
unless ``paths`` names files to scan. The finding for the target's own file has the
variant ``source`` (``source/<relative path>`` for a folder), whatever the file is
called, so a run after re-serialisation is compared with the run before; files from
``paths`` keep their path as the variant.

Examples
--------
>>> import pickle, tempfile, pathlib
>>> from bastion.catalog import load_catalog
>>> from bastion.probes import ProbeContext
>>> from bastion.targets import FakeTarget
>>> from bastion.testing import check_probe
>>> check_probe(ArtifactScanProbe, load_catalog())
[]
>>> path = pathlib.Path(tempfile.mkdtemp()) / "model.pkl"
>>> _ = path.write_bytes(b"cbuiltins\\nexec\\n(S'import os'\\ntR.")
>>> target = FakeTarget.linear(n_features=4, n_classes=2)
>>> [f] = ArtifactScanProbe(paths=[str(path)]).run(target, None, ProbeContext())
>>> f.status.value, f.severity.value
('vulnerable', 'critical')
>>> _ = path.write_bytes(pickle.dumps({"w": [0.5]}))
>>> [f] = ArtifactScanProbe(paths=[str(path)]).run(target, None, ProbeContext())
>>> f.status.value, f.severity.value, f.variant == str(path)
('vulnerable', 'low', True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from bastion.artifacts.issues import CATALOG, FileReport
from bastion.artifacts.scanner import scan_paths
from bastion.errors import UsageError
from bastion.findings import Evidence, Finding, Metric, Severity, Status
from bastion.probes.base import Cost, Knowledge, Probe, ProbeMeta, ProbeParams
from bastion.probes.context import ProbeContext
from bastion.targets.base import Target

__all__ = ["ArtifactScanParams", "ArtifactScanProbe"]


class ArtifactScanParams(ProbeParams):
    """Parameters of :class:`ArtifactScanProbe`."""

    paths: list[str] = Field(
        default_factory=list, description="Extra files or folders to scan besides the model file."
    )
    allow: list[str] = Field(
        default_factory=list, description="Reviewed exceptions, module:qualname each."
    )


class ArtifactScanProbe(Probe):
    """Scan the target's model file (and ``paths``) for code that runs on load.

    Not an attack: a static scan with Bastion's artifact scanner (see the module
    docstring). Needs only the file, not queries.

    Parameters
    ----------
    paths : list of str, default []
        Extra files or folders to scan.
    allow : list of str, default []
        Reviewed exceptions (``module:qualname``), recorded in each finding.
    """

    meta: ClassVar[ProbeMeta] = ProbeMeta(
        id="supply_chain.artifact_scan",
        title="Model artifact scan: code or unknown imports on load",
        catalog=CATALOG,
        knowledge=Knowledge.WHITE_BOX,
        needs=frozenset(),
        cost=Cost.CHEAP,
        remedies=("AML.M0011", "AML.M0016", "AML.M0014"),
    )
    Params: ClassVar[type[ProbeParams]] = ArtifactScanParams

    def run(self, target: Target, data: Any, context: ProbeContext) -> list[Finding]:
        """Scan the files; one finding per file."""
        p: ArtifactScanParams = self.validated_params()
        files: list[str] = []
        source = getattr(target, "source_path", None)
        if source is not None:
            files.append(str(source))
        files.extend(p.paths)
        if not files:
            return [
                self.finding(
                    target,
                    context,
                    status=Status.INCONCLUSIVE,
                    summary=(
                        f"{target.name} does not say which file it was loaded from (no "
                        "source_path), so there is no artifact to scan; pass the model file "
                        "in the probe's 'paths' parameter."
                    ),
                )
            ]
        findings: list[Finding] = []
        with context.progress(total=len(files), description="artifact scan") as bar:
            for index, path in enumerate(files):
                if not Path(path).exists():
                    raise UsageError(f"supply_chain.artifact_scan: no file at {path}.")
                report = scan_paths([path], allow=p.allow)
                for r in report.files:
                    variant = _variant(path, r.path) if index == 0 and source else r.path
                    findings.append(self._finding(target, context, r, variant))
                bar.advance(1)
        return findings

    def _finding(
        self, target: Target, context: ProbeContext, r: FileReport, variant: str
    ) -> Finding:
        metrics = [
            Metric(
                name="issues",
                value=len(r.issues),
                unit="issues",
                definition="Issues the artifact scanner reported for the file.",
            ),
            Metric(
                name="members_scanned",
                value=r.members,
                unit="streams",
                definition="Archive members and nested streams the scanner read.",
            ),
            Metric(
                name="sha256",
                value=r.sha256,
                definition="SHA-256 of the whole file; pin it with safe_load.",
            ),
        ]
        evidence = [
            Evidence(
                kind="table",
                description="Issues found in the artifact, worst first.",
                data={
                    "path": r.path,
                    "pickle_based": r.pickle_based,
                    "issues": [
                        i.to_dict() for i in sorted(r.issues, key=lambda i: -i.severity.rank)
                    ][:50],
                    "formats": r.formats,
                    "allowed_by_user": r.allowed_by_user,
                },
            )
        ]
        formats = " > ".join(r.formats) or "data"
        if r.safe and r.pickle_based:
            return self.finding(
                target,
                context,
                status=Status.VULNERABLE,
                severity=Severity.LOW,
                variant=variant,
                severity_rationale=[
                    "Low: the scan proved that this copy holds nothing that runs code or "
                    "imports outside the allowlist; the weakness is the pickle-based format, "
                    "which lets a tampered copy run code in any loader but safe_load."
                ],
                summary=f"{r.path} ({formats}) scans clean, but it is pickle-based: loading "
                "it with pickle, joblib or torch.load runs whatever a later copy of the file "
                "names. Re-serialise it (`bastion artifacts convert`, or the remedy "
                "supply_chain.safe_reserialisation) as safetensors or skops, or load it only "
                "with bastion.artifacts.safe_load.",
                metrics=metrics,
                evidence=evidence,
            )
        if r.safe:
            return self.finding(
                target,
                context,
                status=Status.NOT_VULNERABLE,
                variant=variant,
                summary=f"{r.path} ({formats}) holds nothing that runs code or imports outside "
                "the allowlist when loaded, and is not pickle-based.",
                metrics=metrics,
                evidence=evidence,
            )
        worst = max(r.issues, key=lambda i: i.severity.rank)
        return self.finding(
            target,
            context,
            status=Status.VULNERABLE,
            severity=worst.severity,
            variant=variant,
            severity_rationale=[
                f"Worst issue: {worst.category.value} ({worst.severity.value} "
                "by the scanner's category table)."
            ],
            summary=f"{r.path} is not safe to load: {len(r.issues)} issue(s), worst at "
            f"{worst.location.describe()}: {worst.message}. Do not load it with pickle; "
            "scan it with `bastion artifacts scan` and load reviewed files with safe_load.",
            metrics=metrics,
            evidence=evidence,
        )


def _variant(source: str, scanned: str) -> str:
    """``source`` for the target's own file, ``source/<relative path>`` inside a folder."""
    root = Path(source)
    if not root.is_dir():
        return "source"
    try:
        return f"source/{Path(scanned).relative_to(root).as_posix()}"
    except ValueError:  # pragma: no cover - scan_paths reports files under the folder
        return scanned
