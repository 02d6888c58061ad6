"""``supply_chain.environment``: do the libraries that run the model match what was installed?

Not an attack: the check of ``bastion env verify`` as a probe. OWASP ML06 (*AI
Supply Chain Attacks*), scenario 1, is an attacker who modifies a library the model
depends on, NumPy or scikit-learn, inside the environment: model, data and code are
all fine, the numbers are not (Microsoft failure mode FM11, exploiting software
dependencies; ATLAS AML.T0010.001, supply-chain compromise through ML software). The
attack class is surveyed by Ladisa et al., "SoK: Taxonomy of Attacks on Open-Source
Software Supply Chains" (IEEE S&P 2023). Every wheel-installed distribution records
each file with its hash in ``*.dist-info/RECORD`` (PEP 376, PEP 627), and
:func:`bastion.artifacts.env_verify.verify_environment` re-hashes them.

By default the distributions that decide what a model computes are checked, those of
``numpy, scipy, scikit-learn, torch, onnxruntime, joblib, skops, safetensors,
bastion-ml`` that are installed (``distributions: all`` checks everything), plus the
start-up hooks at the top of site-packages (``*.pth``, ``sitecustomize``), which
Python runs before any model code. One finding per target (the environment is the
process's, so all targets share one check, reused for ``reuse_seconds``):

* **vulnerable** (tampering, *important* on the severity bar) when a recorded file
  was modified or removed, a file no distribution installed sits in a package
  folder, or an unrecorded start-up hook is present; the summary names the files;
* **not vulnerable** when every recorded file matches (files RECORD lists without a
  hash are listed as unverifiable, not counted);
* **inconclusive** when none of the distributions is installed or none has a RECORD.

It cannot see an attacker who also rewrote RECORD; compare with hashes kept
elsewhere for that (``pip install --require-hashes``, a signed manifest).

Cost: the check parses every RECORD on ``sys.path`` (to know which files *some*
distribution installed) and hashes the selected files; with PyTorch installed it
takes seconds (see docs/signing.md), so the probe is marked expensive.

Examples
--------
A throwaway site-packages folder with one distribution, as an installer leaves it:

>>> import base64, hashlib, tempfile, pathlib
>>> from bastion.probes import ProbeContext
>>> from bastion.targets import FakeTarget
>>> site = pathlib.Path(tempfile.mkdtemp())
>>> (site / "fake").mkdir()
>>> _ = (site / "fake" / "__init__.py").write_bytes(b"SCALE = 1.0\\n")
>>> info = site / "fake-1.0.dist-info"
>>> info.mkdir()
>>> _ = (info / "METADATA").write_text("Metadata-Version: 2.1\\nName: fake\\nVersion: 1.0\\n")
>>> digest = hashlib.sha256(b"SCALE = 1.0\\n").digest()
>>> row = "fake/__init__.py,sha256=" + base64.urlsafe_b64encode(digest).decode().rstrip("=")
>>> _ = (info / "RECORD").write_text(
...     f"{row},12\\nfake-1.0.dist-info/METADATA,,\\nfake-1.0.dist-info/RECORD,,\\n")
>>> target = FakeTarget.linear(n_features=2, n_classes=2)
>>> probe = EnvironmentProbe(distributions=["fake"], site_dirs=[str(site)], reuse_seconds=0)
>>> probe.run(target, None, ProbeContext())[0].status.value
'not_vulnerable'
>>> _ = (site / "fake" / "__init__.py").write_bytes(b"SCALE = 1.1\\n")
>>> [f] = probe.run(target, None, ProbeContext())
>>> f.status.value, f.severity.value, "modified fake/__init__.py" in f.summary
('vulnerable', 'important', True)
"""

from __future__ import annotations

import importlib.metadata as metadata
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from bastion.artifacts.env_record import normalize_name, site_directories
from bastion.artifacts.env_verify import EnvReport, FileIssue, verify_environment
from bastion.catalog.severity import Effect, Effort
from bastion.findings import CatalogRefs, Evidence, Finding, Metric, Status
from bastion.probes.base import Cost, Knowledge, Probe, ProbeMeta, ProbeParams
from bastion.probes.context import ProbeContext
from bastion.targets.base import Target

__all__ = ["DEFAULT_DISTRIBUTIONS", "EnvironmentParams", "EnvironmentProbe"]

_ID = "supply_chain.environment"
DEFAULT_DISTRIBUTIONS: tuple[str, ...] = (
    "numpy",
    "scipy",
    "scikit-learn",
    "torch",
    "onnxruntime",
    "joblib",
    "skops",
    "safetensors",
    "bastion-ml",
)
"""Distributions whose code decides what a model computes, checked when installed."""
_NAMED = 10
_LISTED = 200


class EnvironmentParams(ProbeParams):
    """Parameters of :class:`EnvironmentProbe`."""

    distributions: list[str] | Literal["all"] = Field(
        default_factory=lambda: list(DEFAULT_DISTRIBUTIONS),
        description="Distributions to check (those installed), or 'all'.",
    )
    site_dirs: list[str] = Field(
        default_factory=list,
        description="Site-packages folders (default: this interpreter's sys.path folders).",
    )
    startup_hooks: bool = Field(True, description="Also check top-level *.pth/sitecustomize.")
    reuse_seconds: float = Field(
        600.0, ge=0, allow_inf_nan=False, description="Reuse a check this recent; 0: never."
    )
    workers: int | None = Field(None, ge=1, description="Hashing threads (default: CPUs).")


@dataclass(frozen=True)
class _Check:
    report: EnvReport
    seconds: float
    finished: float  # time.monotonic() when the check ended
    not_installed: tuple[str, ...]


_CACHE: dict[tuple[Any, ...], _Check] = {}
_LOCK = threading.Lock()


class EnvironmentProbe(Probe):
    """Check the installed ML libraries against their RECORD hashes (OWASP ML06 #1).

    Not an attack: runs :func:`~bastion.artifacts.env_verify.verify_environment` on
    the distributions that decide a model's behaviour (see the module docstring).
    Needs no query and no target capability.

    Parameters
    ----------
    distributions : list of str or "all"
        Names to check (any spelling PEP 503 normalises alike); those not installed
        are listed in the finding. Default: :data:`DEFAULT_DISTRIBUTIONS`.
    site_dirs : list of str, default []
        Site-packages folders; by default every ``sys.path`` folder with metadata.
    startup_hooks : bool, default True
        Report unrecorded ``*.pth`` files and ``sitecustomize``/``usercustomize``.
    reuse_seconds : float, default 600
        A check of the same folders and names this recent is reused (all targets of
        one assessment share one environment); 0 checks every time.
    workers : int or None
        Hashing threads.
    """

    meta: ClassVar[ProbeMeta] = ProbeMeta(
        id=_ID,
        title="Python environment: ML libraries match their installed RECORD hashes",
        catalog=CatalogRefs(
            owasp=["ML06"], failure_modes=["FM11"], atlas_techniques=["AML.T0010.001"]
        ),
        knowledge=Knowledge.WHITE_BOX,
        needs=frozenset(),
        cost=Cost.EXPENSIVE,
        remedies=("AML.M0013", "AML.M0014"),
    )
    Params: ClassVar[type[ProbeParams]] = EnvironmentParams

    def run(self, target: Target, data: Any, context: ProbeContext) -> list[Finding]:
        """Check the environment (or reuse a recent check); one finding."""
        p: EnvironmentParams = self.validated_params()
        dirs = site_directories([Path(d).expanduser() for d in p.site_dirs] or None)
        check, reused = _checked(dirs, p, context)
        return [self._finding(target, context, check, reused, p)]

    def _finding(
        self,
        target: Target,
        context: ProbeContext,
        check: _Check,
        reused: bool,
        p: EnvironmentParams,
    ) -> Finding:
        report = check.report
        files = sum(d.files_checked for d in report.distributions)
        metrics = [
            Metric(
                name="distributions",
                value=len(report.distributions),
                unit="distributions",
                definition="Installed distributions checked against their RECORD.",
            ),
            Metric(
                name="files_checked",
                value=files,
                unit="files",
                definition="Recorded files re-hashed and compared with RECORD.",
            ),
            *(
                Metric(
                    name=kind,
                    value=report.count(kind),
                    unit="files",
                    definition=f"Files found {kind} (bastion env verify's definition).",
                )
                for kind in ("modified", "missing", "unrecorded", "unverifiable")
            ),
            Metric(
                name="seconds",
                value=round(check.seconds, 3),
                unit="s",
                definition="Wall-clock time of the check (RECORD parsing and hashing); "
                "reused is true when this finding reuses an earlier check of the process.",
            ),
            Metric(name="reused", value=reused, definition="The check was reused."),
        ]
        evidence = [_evidence(report, check.not_installed)]
        found = sorted({d.name for d in report.distributions})
        names = ", ".join(found) if len(found) <= _NAMED else f"{len(found)} distributions"
        names = names or "none"
        if report.tampered:
            return self.vulnerable_finding(
                target,
                context,
                effect=Effect.TAMPERING,
                extent=1.0,
                effort=Effort.MEDIUM,
                summary="The Python environment that runs the model differs from what its "
                f"installers recorded: {_describe(report)}. Reinstall the affected "
                "distributions from hashes you trust (pip install --force-reinstall "
                "--require-hashes -r a lock file), remove unrecorded files, and find out "
                "who could write to site-packages.",
                metrics=metrics,
                evidence=evidence,
            )
        if files == 0:
            asked = "every distribution" if p.distributions == "all" else ", ".join(p.distributions)
            return self.finding(
                target,
                context,
                status=Status.INCONCLUSIVE,
                summary=f"Nothing could be verified: of {asked}, none is installed with a "
                f"RECORD in {', '.join(str(d) for d in report.site_dirs)} (installed: "
                f"{names}); name installed distributions in 'distributions' or check "
                "'site_dirs'.",
                metrics=metrics,
                evidence=evidence,
            )
        unverifiable = report.count("unverifiable")
        extra = f"; {unverifiable} file(s) could not be verified (listed)" if unverifiable else ""
        hooks = " and no unrecorded start-up hook" if p.startup_hooks else ""
        return self.finding(
            target,
            context,
            status=Status.NOT_VULNERABLE,
            summary=f"All {files} recorded files of {names} match their RECORD hashes, with "
            f"no unrecorded file in their folders{hooks}{extra}. An attacker who also "
            "rewrote RECORD would not show here.",
            metrics=metrics,
            evidence=evidence,
        )


def _checked(
    dirs: Sequence[Path], p: EnvironmentParams, context: ProbeContext
) -> tuple[_Check, bool]:
    """Run the check, or reuse one of the same folders and names within reuse_seconds."""
    asked = "all" if p.distributions == "all" else tuple(p.distributions)
    key = (tuple(str(d) for d in dirs), asked, p.startup_hooks)
    with _LOCK:  # one check at a time; concurrent targets wait for it and reuse it
        cached = _CACHE.get(key)
        if cached is not None and time.monotonic() - cached.finished <= p.reuse_seconds:
            return cached, True
        packages: tuple[str, ...] | None = None
        not_installed: tuple[str, ...] = ()
        if p.distributions != "all":
            installed = _installed(dirs)
            wanted = list(dict.fromkeys(p.distributions))
            packages = tuple(n for n in wanted if normalize_name(n) in installed)
            not_installed = tuple(n for n in wanted if normalize_name(n) not in installed)
        started = time.perf_counter()
        if packages == () and not p.startup_hooks:
            report = EnvReport(tuple(dirs), ())  # nothing installed, nothing to check
        else:
            with context.progress(total=None, description="environment check") as bar:
                report = verify_environment(
                    dirs,
                    packages=packages,
                    workers=p.workers,
                    startup_hooks=p.startup_hooks,
                    on_total=lambda n: bar.update(total=n),
                    progress=bar.advance,
                )
        check = _Check(report, time.perf_counter() - started, time.monotonic(), not_installed)
        _CACHE[key] = check
        return check, False


def _installed(dirs: Sequence[Path]) -> set[str]:
    """Normalised names of the distributions installed in ``dirs`` (no RECORD read)."""
    found = set()
    for dist in metadata.distributions(path=[str(d) for d in dirs]):
        name = dist.metadata["Name"]
        if name:
            found.add(normalize_name(name))
    return found


def _tampering(report: EnvReport) -> list[tuple[str, FileIssue]]:
    issues = [(d.name, i) for d in report.distributions for i in d.issues]
    issues += [("start-up hook", i) for i in report.unowned]
    return [(owner, i) for owner, i in issues if i.kind != "unverifiable"]


def _describe(report: EnvReport) -> str:
    found = _tampering(report)
    named = "; ".join(f"{owner}: {i.kind} {i.path}" for owner, i in found[:_NAMED])
    more = f"; and {len(found) - _NAMED} more (listed)" if len(found) > _NAMED else ""
    return f"{len(found)} file(s): {named}{more}"


def _evidence(report: EnvReport, not_installed: Sequence[str]) -> Evidence:
    full = report.to_dict()
    problems = [d for d in full["distributions"] if d["issues"]]
    for d in problems:
        d["issues"] = d["issues"][:_LISTED]
    return Evidence(
        kind="table",
        description="Distributions checked, those with issues (modified, missing, "
        "unrecorded, unverifiable files), start-up hooks nobody installed, and the "
        "names asked for that are not installed.",
        data={
            "site_dirs": full["site_dirs"],
            "summary": full["summary"],
            "checked": sorted(f"{d.name}=={d.version}" for d in report.distributions),
            "not_installed": list(not_installed),
            "with_issues": problems[:_LISTED],
            "unowned": full["unowned"][:_LISTED],
        },
    )
