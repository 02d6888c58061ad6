"""``evasion.certified_radius``: certified accuracy per L2 radius by randomized smoothing.

Cohen, Rosenfeld and Kolter, "Certified Adversarial Robustness via Randomized
Smoothing", ICML 2019. The probe runs CERTIFY (``n0`` selection and ``n`` estimation
noisy copies per row, one-sided Clopper–Pearson bound at level ``alpha``; see
:mod:`bastion.certification.smoothing`) on ``n_samples`` test rows and reports, per
requested L2 radius ``r``, the *certified accuracy*: the share of rows certified as
their true class with a radius of at least ``r`` (abstentions count as wrong). Each
row's certificate holds with probability at least ``1 - alpha``; the intervals are
Wilson 95% intervals over the sampled rows.

What is certified. A :class:`~bastion.certification.target.SmoothedTarget` (the
output of ``evasion.randomized_smoothing``) is certified at its own ``sigma`` and
units. Any other target is smoothed by the probe at ``sigma`` (default 0.25): the
finding is then about the model *as it would be if smoothed* -- which is how
``bastion harden`` compares a model before and after the remedy. Noise, units and
the features that get noise are described in :mod:`bastion.certification.noise`:
``sigma`` and radii are in raw input units by default (``units="range"`` for tabular
features with different ranges). Queries: every noisy copy is one query of the base
model (white-box torch models are sampled as tensors on their device; others through
``predict``), ``n_samples * (n0 + n + 1)`` in all.

Verdict, mirroring the white-box probes' tolerance rule: *vulnerable* when more than
``max_uncertified_rate`` of the rows certified correct at radius 0 have no
certificate at ``tolerance_radius``. An uncertified row is not a broken one -- the
perturbation still has to be found -- so the severity takes that share as its
extent with *high* effort. *Inconclusive* when the smoothed classifier is near chance
at radius 0 (the base model does not work under this noise). *Not vulnerable*
otherwise.

Examples
--------
>>> from bastion.catalog import load_catalog
>>> from bastion.testing import check_probe
>>> check_probe(CertifiedRadiusProbe, load_catalog())
[]
>>> CertifiedRadiusParams(radii=[0.5, 0.0]).radii
[0.0, 0.5]
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from bastion.certification.noise import NoiseUnits
from bastion.certification.smoothing import SmoothedClassifier
from bastion.certification.stats import max_certifiable_radius
from bastion.certification.target import SmoothedTarget
from bastion.data.dataset import Dataset
from bastion.errors import DataError, UsageError
from bastion.findings import CatalogRefs, Finding
from bastion.probes.base import Cost, Knowledge, Probe, ProbeMeta, ProbeParams
from bastion.probes.context import ProbeContext
from bastion.probes.evasion.certified_report import CertificationReport
from bastion.probes.evasion.runner import guarded, inconclusive
from bastion.targets.base import Capability, Target

__all__ = ["DEFAULT_RADII", "DEFAULT_SIGMA", "CertifiedRadiusParams", "CertifiedRadiusProbe"]

DEFAULT_SIGMA = 0.25
DEFAULT_RADII = [0.0, 0.25, 0.5, 0.75, 1.0]
_ID = "evasion.certified_radius"
_CURVE_POINTS = 60


class CertifiedRadiusParams(ProbeParams):
    """Parameters of :class:`CertifiedRadiusProbe`."""

    sigma: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="Noise standard deviation; None: the smoothed target's own, else 0.25.",
    )
    units: Literal["raw", "range"] | None = Field(
        None, description="Units of sigma and radii; None: the smoothed target's own, else raw."
    )
    n0: int = Field(100, ge=1, le=1_000_000, description="Selection noisy copies per row.")
    n: int = Field(1000, ge=1, le=10_000_000, description="Estimation noisy copies per row.")
    alpha: float = Field(0.001, gt=0, lt=1, description="Chance a row's certificate is wrong.")
    n_samples: int = Field(100, ge=1, le=100_000, description="Test rows to certify.")
    radii: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=lambda: list(DEFAULT_RADII),
        min_length=1,
        max_length=50,
        description="L2 radii to report certified accuracy at (sorted for you).",
    )
    tolerance_radius: float = Field(
        0.25, gt=0, allow_inf_nan=False, description="Radius the model should be certified at."
    )
    max_uncertified_rate: float = Field(
        0.1, ge=0, lt=1, description="Largest acceptable share of rows uncertified at tolerance."
    )
    batch_size: int = Field(1000, ge=1, le=1_000_000, description="Noisy rows per model call.")

    @field_validator("radii")
    @classmethod
    def _sorted(cls, v: list[float]) -> list[float]:
        if len(set(v)) != len(v):
            raise ValueError("must not repeat a radius")
        return sorted(v)

    @model_validator(mode="after")
    def _sizes(self) -> CertifiedRadiusParams:
        if self.n0 > self.n:
            raise ValueError(
                f"n0 ({self.n0}) must not exceed n ({self.n}): n0 copies only select the class"
            )
        return self


class CertifiedRadiusProbe(Probe):
    """Certified accuracy at L2 radii by randomized smoothing (Cohen et al., ICML 2019).

    Runs CERTIFY on a sample of test rows and reports certified accuracy per radius
    (Wilson intervals over rows; each certificate holds with probability at least
    ``1 - alpha``), the abstention rate, the average certified radius (Zhai et al.,
    ICLR 2020) and the distribution of certified radii as a curve.
    """

    meta: ClassVar[ProbeMeta] = ProbeMeta(
        id=_ID,
        title="Evasion: certified L2 robustness by randomized smoothing",
        catalog=CatalogRefs(
            owasp=["ML01"], failure_modes=["FM1"], atlas_mitigations=["AML.M0003"], cwe=["CWE-1039"]
        ),
        knowledge=Knowledge.BLACK_BOX,
        needs=frozenset({Capability.LABELS}),
        cost=Cost.EXPENSIVE,
        remedies=("evasion.randomized_smoothing", "AML.M0003"),
    )
    Params: ClassVar[type[ProbeParams]] = CertifiedRadiusParams

    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        """Certify ``n_samples`` test rows; one finding (variant ``l2``)."""
        p: CertifiedRadiusParams = self.validated_params()
        return guarded(self, target, context, "l2", lambda: self._run(target, data, context, p))

    def _subject(
        self, target: Target, p: CertifiedRadiusParams
    ) -> tuple[Target, float, NoiseUnits, str]:
        if not isinstance(target, SmoothedTarget):
            sigma = DEFAULT_SIGMA if p.sigma is None else p.sigma
            return target, sigma, p.units or "raw", f"the model smoothed at sigma {sigma:g}"
        if p.sigma is not None and not math.isclose(p.sigma, target.sigma, rel_tol=1e-9):
            raise UsageError(
                f"The 'sigma' parameter of {_ID} is {p.sigma:g}, but {target.name!r} is already "
                f"smoothed at sigma {target.sigma:g}; drop 'sigma' to certify it at its own."
            )
        if p.units is not None and p.units != target.units:
            raise UsageError(
                f"The 'units' parameter of {_ID} is {p.units!r}, but {target.name!r} is smoothed "
                f"in {target.units!r} units; drop 'units' to use its own."
            )
        subject = f"the smoothed target (sigma {target.sigma:g})"
        return target.base, target.sigma, target.units, subject

    def _run(
        self, target: Target, data: Dataset, context: ProbeContext, p: CertifiedRadiusParams
    ) -> list[Finding]:
        base, sigma, units, subject = self._subject(target, p)
        ceiling = max_certifiable_radius(p.n, p.alpha, sigma)
        if p.tolerance_radius > ceiling:
            raise UsageError(
                f"The 'tolerance_radius' parameter of {_ID} ({p.tolerance_radius:g}) exceeds "
                f"{ceiling:.3g}, the largest radius CERTIFY can return with n={p.n}, "
                f"alpha={p.alpha:g} and sigma={sigma:g}; raise n or sigma, or lower it."
            )
        x, y = data.test_sample(p.n_samples, seed=context.seed)
        if len(y) == 0:
            raise DataError(f"Dataset {data.name!r} has no test rows to certify.")
        if int(y.max()) >= base.n_classes:
            raise DataError(
                f"The data have labels up to {int(y.max())} but the model has {base.n_classes} "
                "classes; use data that matches the model."
            )
        base.input_spec.check(x, what="test data")
        needed = len(x) * (p.n0 + p.n + 1)
        left = base.budget.remaining
        if left is not None and needed > left:
            return inconclusive(
                self,
                target,
                context,
                "l2",
                f"certifying {len(x)} rows needs {needed} queries (n0={p.n0}, n={p.n}) but the "
                f"model's query budget has {left} left; lower n_samples or n",
            )
        parts = [a for a in (data.x_train, data.x_test) if len(a)]
        smoothed = SmoothedClassifier(
            base,
            sigma,
            units=units,
            reference=np.concatenate(parts),
            batch_size=p.batch_size,
            who=_ID,
        )
        rows = smoothed.rows(x)
        clean = [
            smoothed.f(rows[i : i + p.batch_size]).cpu().numpy()
            for i in range(0, len(rows), p.batch_size)
        ]
        clean_ok = int((np.concatenate(clean) == y).sum())
        with context.progress(total=len(x) * (p.n0 + p.n), description=_ID) as bar:
            cert = smoothed.certify(
                x,
                n0=p.n0,
                n=p.n,
                alpha=p.alpha,
                generator=smoothed.generator(context.seed),
                on_chunk=bar.advance,
            )
        report = CertificationReport(
            p, cert, np.asarray(y), smoothed, subject, ceiling, base.n_classes
        )
        fields: dict[str, Any] = {
            "variant": "l2",
            "metrics": report.metrics(clean_ok, smoothed.f.rows),
            "series": [report.curve()],
            "evidence": report.evidence(base, smoothed),
        }
        return [report.finding(self, target, context, fields)]
