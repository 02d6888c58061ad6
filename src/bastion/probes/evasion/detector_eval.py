"""``evasion.detector_adaptive``: does a detector survive an attacker who knows it?

A detector that only meets attacks built without it proves little (Carlini & Wagner,
"Adversarial Examples Are Not Easily Detected: Bypassing Ten Detection Methods",
AISec 2017; Tramèr, Carlini, Brendel & Madry, "On Adaptive Attacks to Adversarial
Example Defenses", NeurIPS 2020). This probe evaluates one detector guard on a torch
target, chosen by ``detector``:

``squeezing``
    the feature-squeezing detector of :mod:`bastion.guards.squeezing` (Xu, Evans &
    Qi, NDSS 2018), attacked through straight-through squeezers (BPDA), see
    :mod:`.detector_squeezing`;
``ensemble``
    the ensemble-disagreement detector of :mod:`bastion.guards.ensemble`, with the
    target plus ``n_copies`` retrained members, attacked jointly, see
    :mod:`.detector_ensemble`.

For either:

1. **Calibrate** the threshold on ``n_calibration`` clean test rows at the stated
   false-positive rate ``fpr``, then **measure** the false-positive rate on other,
   held-out clean rows (Wilson 95% interval).
2. **Static attack** (for contrast): PGD against the model alone; detection rate =
   flagged / fooling examples.
3. **Adaptive attack**: PGD on the detector's adaptive loss for each ``lam`` in
   ``penalties`` (per-sample worst case; :mod:`.detector_attack`). A row is *evaded*
   when some iterate is misclassified and scores at or below the threshold. Reported
   per budget: the adaptive evasion rate (evaded / correctly classified rows) and the
   adaptive detection rate (flagged / rows the attack made misclassified), both with
   Wilson 95% intervals, next to the measured false-positive rate. Gradient and
   determinism checks on every model decide whether EoT is needed; the finding says
   how the gradients were obtained.

Budgets follow the one rule of :mod:`bastion.attacks.evasion.units` (``units``).
Verdict: *vulnerable* when the adaptive evasion rate exceeds ``max_success_rate`` at
some budget no larger than the tolerance (detector plus model can be evaded);
*inconclusive* when it does not but a gradient check fired. Shapes: rows
``(n, *shape)`` on the target's device.

Examples
--------
>>> from bastion.catalog import load_catalog
>>> from bastion.testing import check_probe
>>> check_probe(DetectorAdaptiveProbe, load_catalog())
[]
>>> DetectorAdaptiveParams(detector="ensemble").resolved_budgets()
[0.05, 0.1, 0.2]
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from bastion.attacks.evasion.budget import Domain
from bastion.attacks.evasion.model import as_model
from bastion.attacks.evasion.units import BudgetUnits
from bastion.catalog.severity import Effect, Effort, Impact, rate
from bastion.data.dataset import Dataset
from bastion.findings import Evidence, Finding, Metric, Series, Status
from bastion.guards.squeezing import DETECTOR_CATALOG, Squeezers, calibrate_threshold
from bastion.probes.base import Cost, Knowledge, Probe, ProbeMeta
from bastion.probes.context import ProbeContext
from bastion.probes.evasion.detector_attack import AdaptiveDetector, rate_metric, sweep
from bastion.probes.evasion.detector_ensemble import EnsembleDetector, train_members
from bastion.probes.evasion.detector_squeezing import SqueezingDetector, adaptive_squeeze_attack
from bastion.probes.evasion.evidence import units_evidence
from bastion.probes.evasion.runner import guarded, inconclusive
from bastion.probes.evasion.setup import EvasionParams, resolve_budgets
from bastion.targets.base import Capability, Target

__all__ = ["DetectorAdaptiveParams", "DetectorAdaptiveProbe", "adaptive_squeeze_attack"]

_CHECK_ROWS = 16


class DetectorAdaptiveParams(EvasionParams):
    """Parameters of :class:`DetectorAdaptiveProbe`."""

    detector: Literal["squeezing", "ensemble"] = Field(
        "squeezing", description="Detector to evaluate: feature squeezing or ensemble disagreement."
    )
    bits: int | None = Field(4, ge=1, le=16, description="Bit depth of the squeezer (None: off).")
    median: int | None = Field(2, ge=2, le=7, description="Median window (None: off).")
    n_copies: int = Field(
        2, ge=1, le=10, description="Ensemble members retrained besides the model (ensemble)."
    )
    fpr: float = Field(0.05, gt=0, lt=0.5, description="False-positive rate on clean rows.")
    n_calibration: int = Field(200, ge=20, le=100_000, description="Clean rows to calibrate on.")
    steps: int = Field(40, ge=1, le=10_000, description="PGD steps per attack.")
    penalties: list[float] = Field(
        [0.0, 1.0, 10.0],
        min_length=1,
        max_length=6,
        description="Weights lam of the detector terms of the adaptive loss (0: model alone).",
    )
    eot_samples: int = Field(
        8, ge=1, le=100, description="Gradient samples per step when a model is randomised (EoT)."
    )

    def resolved_budgets(
        self, units: BudgetUnits | None = None, *, who: str = "evasion.detector_adaptive"
    ) -> list[float]:
        """The budgets, ascending; defaults 0.05, 0.1, 0.2 (L∞) or 0.5, 1, 2 (L2) of the range."""
        if self.budgets:
            return sorted(self.budgets)
        defaults = [0.05, 0.1, 0.2] if self.norm == "linf" else [0.5, 1.0, 2.0]
        return defaults if units is None else units.from_fractions(defaults, who=who)


class DetectorAdaptiveProbe(Probe):
    """Detection rate of a detector guard at a fixed false-positive rate, under adaptive attack.

    Calibrates the detector of ``input.feature_squeezing`` or
    ``input.ensemble_disagreement`` on clean rows, then attacks model and detector
    together, as Carlini & Wagner (2017) and Tramèr et al. (2020) require of a detector
    evaluation (BPDA for the squeezers, Athalye et al. 2018; see the module docstring).
    Never reports a static detection rate alone.
    """

    meta: ClassVar[ProbeMeta] = ProbeMeta(
        id="evasion.detector_adaptive",
        title="Evasion: adversarial-input detector under adaptive attack",
        catalog=DETECTOR_CATALOG,
        knowledge=Knowledge.WHITE_BOX,
        needs=frozenset({Capability.GRADIENTS}),
        cost=Cost.MODERATE,
        remedies=("AML.M0003", "AML.M0015"),
    )
    Params: ClassVar[type[DetectorAdaptiveParams]] = DetectorAdaptiveParams

    def not_applicable_reason(self, target: Target) -> str | None:
        """The ensemble detector also needs a target that can train copies of itself."""
        p: DetectorAdaptiveParams = self.validated_params()
        if p.detector == "ensemble" and Capability.TRAINING not in target.capabilities:
            return (
                f"{self.meta.id} with detector 'ensemble' retrains members, and this target "
                "cannot train copies (give the torch target a module_factory or trainer)"
            )
        return super().not_applicable_reason(target)

    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        """Calibrate, attack statically and adaptively at each budget; one finding."""
        p: DetectorAdaptiveParams = self.validated_params()
        variant = f"{p.detector}-{p.norm}"
        return guarded(self, target, context, variant, lambda: self._run(target, data, context, p))

    def _detector(
        self, target: Target, data: Dataset, context: ProbeContext, p: DetectorAdaptiveParams
    ) -> AdaptiveDetector | str:
        spec, f = target.input_spec, as_model(target)
        if p.detector == "ensemble":
            members = train_members(target, data, p.n_copies, context.seed, who=self.meta.id)
            return EnsembleDetector(f, members)
        lo, hi = spec.bounds()
        if not (np.isfinite(lo).all() and np.isfinite(hi).all() and np.ptp(lo) == np.ptp(hi) == 0):
            return (
                "feature squeezing needs one finite range for every feature (e.g. images in [0, 1])"
            )
        if p.bits is None and (p.median is None or len(spec.shape) != 3):
            return "no squeezer applies to these rows"
        return SqueezingDetector(f, Squeezers(float(lo[0]), float(hi[0]), p.bits, p.median))

    def _run(
        self, target: Target, data: Dataset, context: ProbeContext, p: DetectorAdaptiveParams
    ) -> list[Finding]:
        target.require(Capability.GRADIENTS, who=f"The {self.meta.id} probe")
        variant, spec = f"{p.detector}-{p.norm}", target.input_spec
        if np.dtype(spec.dtype).kind != "f":
            return inconclusive(self, target, context, variant, "gradient attacks need floats")
        x_np, y_np = data.test_sample(p.n_samples + p.n_calibration, seed=context.seed)
        if len(x_np) < p.n_calibration + 10:
            why = (
                f"only {len(x_np)} test rows; calibration needs {p.n_calibration} plus at least 10"
            )
            return inconclusive(self, target, context, variant, why)
        spec.check(x_np, what="test data")
        device = torch.device(getattr(target, "device", "cpu"))
        reference = np.concatenate([data.x_train, data.x_test]) if len(data.x_train) else x_np
        domain = Domain.from_spec(
            spec, reference=reference, device=device, units=p.units, who=self.meta.id
        )
        budgets, tol = resolve_budgets(self.meta.id, p, domain)
        detector = self._detector(target, data, context, p)
        if isinstance(detector, str):
            return inconclusive(self, target, context, variant, detector)
        x_all = torch.from_numpy(np.ascontiguousarray(x_np, dtype=np.float32)).to(device)
        y_all = torch.from_numpy(np.asarray(y_np, dtype=np.int64)).to(device)
        xc, x, y = x_all[: p.n_calibration], x_all[p.n_calibration :], y_all[p.n_calibration :]
        threshold = calibrate_threshold(detector.scores(xc).cpu().double().numpy(), p.fpr)
        with torch.no_grad():
            false_pos = int((detector.scores(x) > threshold).sum())
            correct = detector.model(x).argmax(1) == y
        n, n_ok = len(x), int(correct.sum())
        if n_ok == 0:
            why = "no sampled row is classified correctly"
            return inconclusive(self, target, context, variant, why)
        detector.inspect(x[:_CHECK_ROWS], y[:_CHECK_ROWS], domain, p.eot_samples)
        if isinstance(detector, EnsembleDetector):
            detector.notes.append(detector.member_note(x, y, len(data.x_train), context.seed))
        metrics = [
            Metric(
                name="threshold",
                value=round(threshold, 6),
                unit=detector.score_unit,
                definition=f"The {detector.threshold_definition()}, calibrated as the "
                f"{1 - p.fpr:.0%} quantile of {p.n_calibration} clean test rows.",
            ),
            rate_metric(
                "false_positive_rate",
                false_pos,
                n,
                f"Share of {n} held-out clean test rows the detector flags (target {p.fpr:g}).",
            ),
            rate_metric(
                "clean_accuracy", n_ok, n, f"Share of {n} clean rows classified correctly."
            ),
        ]
        ok = correct.nonzero().squeeze(1)
        with context.progress(total=len(budgets), description=self.meta.id) as bar:
            swept, rates = sweep(
                detector,
                x[ok],
                y[ok],
                threshold=threshold,
                domain=domain,
                budgets=budgets,
                norm=p.norm,
                steps=p.steps,
                penalties=p.penalties,
                seed=context.seed,
                advance=bar.advance,
            )
        metrics += swept
        metrics.append(
            Metric(
                name="queries",
                value=detector.model.rows,
                unit="queries",
                definition="Rows of the target's model evaluated by this probe (the attacker's "
                "own ensemble members are not counted).",
            )
        )
        fpr = (false_pos, n)
        units = domain.units
        return [
            self._verdict(target, context, p, detector, units, budgets, tol, rates, metrics, fpr)
        ]

    def _verdict(
        self,
        target: Target,
        context: ProbeContext,
        p: DetectorAdaptiveParams,
        detector: AdaptiveDetector,
        units: BudgetUnits,
        budgets: list[float],
        tol: float,
        rates: dict[str, list[float]],
        metrics: list[Metric],
        false_positives: tuple[int, int],
    ) -> Finding:
        axis = units.axis_label(p.norm)
        series = [
            Series(
                name=f"detection rate vs budget ({name}, FPR {p.fpr:g})",
                x_label=axis,
                y_label="detection rate",
                x=list(budgets),
                y=rates[name],
            )
            for name in ("adaptive", "static")
        ] + [
            Series(
                name="undetected evasion rate vs budget (adaptive)",
                x_label=axis,
                y_label="evasion rate",
                x=list(budgets),
                y=rates["evasion"],
            )
        ]
        evidence = [Evidence(kind="observation", description=note) for note in detector.notes]
        evidence += [
            Evidence(
                kind="observation", description=f.message, data={"check": f.code, "value": f.value}
            )
            for f in detector.flags
        ]
        evidence.append(units_evidence(units))
        fields: dict[str, Any] = {
            "variant": f"{p.detector}-{p.norm}",
            "metrics": metrics,
            "series": series,
            "evidence": evidence,
        }
        label, evasion = detector.label, rates["evasion"]
        fpr = false_positives[0] / false_positives[1]
        bad = next(
            (
                i
                for i, (e, r) in enumerate(zip(budgets, evasion, strict=True))
                if e <= tol + 1e-12 and r > p.max_success_rate
            ),
            None,
        )
        if bad is None:
            worst = max(evasion[i] for i, e in enumerate(budgets) if e <= tol + 1e-12)
            status = Status.INCONCLUSIVE if detector.flags else Status.NOT_VULNERABLE
            caveat = (
                " The result may overstate the detector: "
                + "; ".join(f.message for f in detector.flags)
                if detector.flags
                else ""
            )
            summary = (
                f"An adaptive attack evaded model and {label} on at most {worst:.0%} of correctly "
                f"classified rows up to {units.budget_text(p.norm, tol)}, at a measured "
                f"false-positive rate of {fpr:.1%}.{caveat}"
            )
            return self.finding(target, context, status=status, summary=summary, **fields)
        eps_b, extent = budgets[bad], evasion[bad]
        rating = rate(
            Impact(
                Effect.EVASION,
                extent=extent,
                effort=Effort.LOW if eps_b <= tol / 2 else Effort.MEDIUM,
                security_decision=context.security_decision,
            ),
            owasp=list(self.meta.catalog.owasp),
        )
        return self.finding(
            target,
            context,
            status=Status.VULNERABLE,
            severity=rating.severity,
            severity_rationale=list(rating.rationale),
            summary=f"An adaptive attack evaded model and {label} on {extent:.0%} of correctly "
            f"classified rows within {units.budget_text(p.norm, eps_b)}, with the detector at a "
            f"measured {fpr:.1%} false-positive rate; static detection rate "
            f"{rates['static'][bad]:.0%} vs adaptive {rates['adaptive'][bad]:.0%}. "
            "Do not rely on the detector alone; harden the model.",
            **fields,
        )
