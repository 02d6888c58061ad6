"""From CERTIFY's answers to a finding: metrics, radius curve, evidence and verdict.

Used by ``evasion.certified_radius`` (:mod:`bastion.probes.evasion.certified`; Cohen,
Rosenfeld & Kolter, ICML 2019). Certified accuracy at radius ``r`` is the share of
sampled rows certified as their true class with a radius of at least ``r``; rates
carry Wilson 95% intervals over rows. The verdict rule is documented on the probe.

Examples
--------
>>> import numpy as np
>>> from bastion.certification import Certificate
>>> cert = Certificate(label=np.array([0, 1, -1]), radius=np.array([0.4, 0.1, 0.0]),
...                    p_lower=np.array([0.9, 0.6, 0.4]), top_count=np.array([9, 6, 4]),
...                    sigma=0.25, n0=2, n=10, alpha=0.01)
>>> int(cert.certified_correct(np.array([0, 1, 1]), 0.2).sum())
1
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.catalog.severity import Effect, Effort, Impact, rate
from bastion.certification.smoothing import Certificate, SmoothedClassifier
from bastion.findings import Evidence, Finding, Metric, Series, Status, wilson_interval
from bastion.probes.base import Probe
from bastion.probes.context import ProbeContext
from bastion.targets.base import Target

if TYPE_CHECKING:
    from bastion.probes.evasion.certified import CertifiedRadiusParams

__all__ = ["CertificationReport"]

_CURVE_POINTS = 60


class CertificationReport:
    """Metrics, curve, evidence and verdict of one certification run."""

    def __init__(
        self,
        p: CertifiedRadiusParams,
        cert: Certificate,
        y: np.ndarray,
        smoothed: SmoothedClassifier,
        subject: str,
        ceiling: float,
        n_classes: int,
    ) -> None:
        self.p, self.cert, self.y, self.subject = p, cert, y, subject
        self.ceiling, self.n_classes = ceiling, n_classes
        self.rows = len(y)
        self.units = smoothed.noise.describe()
        self.radii = sorted({0.0, *p.radii})
        self.correct0 = int(cert.certified_correct(y, 0.0).sum())
        self.how = (
            f"CERTIFY (Cohen et al. 2019; sigma {cert.sigma:g}, n0={cert.n0}, n={cert.n}, "
            f"alpha={cert.alpha:g})"
        )

    def at(self, radius: float) -> int:
        """Rows certified as their true class with a radius of at least ``radius``."""
        return int(self.cert.certified_correct(self.y, radius).sum())

    def metrics(self, clean_ok: int, queries: int) -> list[Metric]:
        """Certified accuracy per radius and the other metrics of the finding.

        ``clean_ok`` is the number of rows the base model gets right without noise,
        ``queries`` the base-model rows evaluated.
        """
        n, c, out = self.rows, self.cert, []
        for r in self.radii:
            k = self.at(r)
            never = (
                f"; no radius above {self.ceiling:.3g} can be certified" if r > self.ceiling else ""
            )
            out.append(
                Metric(
                    name=f"certified_accuracy@{r:g}",
                    value=round(k / n, 4),
                    unit="fraction",
                    interval=wilson_interval(k, n),
                    n=n,
                    definition=f"Share of the {n} sampled test rows that {self.how} certified as "
                    f"their true class with an L2 radius of at least {r:g} ({self.units}) for "
                    f"{self.subject}; each certificate holds with probability >= 1 - alpha; "
                    f"Wilson 95% interval over rows{never}.",
                )
            )
            if r > 0 and self.correct0:
                out.append(
                    Metric(
                        name=f"uncertified_rate@{r:g}",
                        value=round((self.correct0 - k) / self.correct0, 4),
                        unit="fraction",
                        interval=wilson_interval(self.correct0 - k, self.correct0),
                        n=self.correct0,
                        definition=f"Share of the {self.correct0} rows certified correct at "
                        f"radius 0 that have no certificate at L2 radius {r:g}; Wilson 95% "
                        "interval.",
                    )
                )
        abstained = int(c.abstained.sum())
        good = c.correct_radii(self.y)[c.certified_correct(self.y)]
        out += [
            Metric(
                name="clean_accuracy",
                value=round(clean_ok / n, 4),
                unit="fraction",
                interval=wilson_interval(clean_ok, n),
                n=n,
                definition=f"Share of the {n} rows the base model classifies correctly "
                "without noise; Wilson 95% interval.",
            ),
            Metric(
                name="abstention_rate",
                value=round(abstained / n, 4),
                unit="fraction",
                interval=wilson_interval(abstained, n),
                n=n,
                definition=f"Share of the {n} rows on which {self.how} abstained (lower bound "
                "on the top class's probability at most 1/2); Wilson 95% interval.",
            ),
            Metric(
                name="average_certified_radius",
                value=round(float(c.correct_radii(self.y).mean()), 4),
                unit="L2 radius",
                n=n,
                definition=f"Mean over the {n} rows of the certified radius, 0 for rows not "
                f"certified as their true class (Zhai et al. 2020), {self.units}.",
            ),
            Metric(
                name="median_certified_radius",
                value=round(float(np.median(good)), 4) if len(good) else None,
                unit="L2 radius",
                n=len(good),
                definition="Median certified radius of the rows certified as their true class.",
            ),
            Metric(
                name="max_certifiable_radius",
                value=round(self.ceiling, 4),
                unit="L2 radius",
                definition="Largest radius CERTIFY can return with these n, alpha and sigma "
                "(all n noisy copies agree).",
            ),
            Metric(name="sigma", value=c.sigma, unit=self.units, definition="Noise std. dev."),
            Metric(name="n0", value=c.n0, unit="samples", definition="Selection copies per row."),
            Metric(name="n", value=c.n, unit="samples", definition="Estimation copies per row."),
            Metric(
                name="alpha",
                value=c.alpha,
                unit="probability",
                definition="Chance that one row's certificate is wrong (one-sided "
                "Clopper–Pearson bound at level 1 - alpha).",
            ),
            Metric(name="rows", value=n, unit="rows", definition="Test rows certified."),
            Metric(
                name="queries",
                value=queries,
                unit="queries",
                definition="Base-model rows evaluated (noisy copies and the clean check), each "
                "one query.",
            ),
        ]
        return out

    def curve(self) -> Series:
        """Certified accuracy on a grid of radii: the distribution of certified radii."""
        top = max(self.ceiling, self.radii[-1])
        xs = [top * i / (_CURVE_POINTS - 1) for i in range(_CURVE_POINTS)]
        ks = [self.at(r) for r in xs]
        ivs = [wilson_interval(k, self.rows) for k in ks]
        return Series(
            name=f"certified accuracy vs L2 radius (distribution of certified radii, sigma "
            f"{self.cert.sigma:g})",
            x_label=f"L2 radius ({self.units})",
            y_label="certified accuracy",
            x=xs,
            y=[k / self.rows for k in ks],
            y_low=[iv.low for iv in ivs],
            y_high=[iv.high for iv in ivs],
        )

    def evidence(self, base: Target, smoothed: SmoothedClassifier) -> list[Evidence]:
        """The parameters (an observation) and CERTIFY's answer for each row (a table)."""
        c, names = self.cert, list(base.classes)
        params = {
            "sigma": c.sigma,
            "units": smoothed.units,
            "n0": c.n0,
            "n": c.n,
            "alpha": c.alpha,
            "rows": self.rows,
            "tolerance_radius": self.p.tolerance_radius,
            "certified": self.subject,
            "base_model": f"{base.name} ({base.kind}, "
            f"{'tensor fast path' if smoothed.f.white_box else 'predict API'})",
        }
        table = {
            "columns": ["row", "true class", "certified class", "radius", "pA lower bound"],
            "rows": [
                [
                    i + 1,
                    names[int(self.y[i])],
                    "abstain" if c.label[i] < 0 else names[int(c.label[i])],
                    round(float(c.radius[i]), 4),
                    round(float(c.p_lower[i]), 4),
                ]
                for i in range(self.rows)
            ],
        }
        return [
            Evidence(
                kind="observation",
                description=f"Certification parameters: {self.how}; noise {self.units}, on "
                "mutable features, clipped to the input bounds.",
                data=params,
            ),
            Evidence(kind="table", description="CERTIFY's answer for each row.", data=table),
        ]

    def finding(
        self, probe: Probe, target: Target, context: ProbeContext, fields: dict[str, Any]
    ) -> Finding:
        """The verdict (see :mod:`bastion.probes.evasion.certified`) with ``fields``."""
        p, n = self.p, self.rows
        tol, acc0 = p.tolerance_radius, self.correct0 / n
        chance = 1.0 / self.n_classes
        if acc0 < chance + 0.1:
            return probe.finding(
                target,
                context,
                status=Status.INCONCLUSIVE,
                summary=f"{self.how} certified only {acc0:.2f} of {n} rows correct at radius 0 "
                f"(chance {chance:.2f}) for {self.subject}: the base model does not work under "
                "this noise. Fine-tune it with noise (evasion.randomized_smoothing) or lower "
                "sigma.",
                **fields,
            )
        k = self.at(tol)
        rate_tol = (self.correct0 - k) / self.correct0
        head = (
            f"{self.how}: certified accuracy {k / n:.2f} at L2 radius {tol:g} ({self.units}) "
            f"against {acc0:.2f} at radius 0, for {self.subject}"
        )
        if rate_tol <= p.max_uncertified_rate:
            return probe.finding(
                target,
                context,
                status=Status.NOT_VULNERABLE,
                summary=f"{head}; {rate_tol:.0%} of the rows certified at 0 lose their "
                f"certificate by {tol:g} (accepted: {p.max_uncertified_rate:.0%}).",
                **fields,
            )
        rating = rate(
            Impact(
                Effect.EVASION,
                extent=rate_tol,
                effort=Effort.HIGH,
                security_decision=context.security_decision,
            ),
            owasp=list(probe.meta.catalog.owasp),
        )
        why = (
            f"Extent is the share of rows without a certificate at radius {tol:g} "
            f"({rate_tol:.0%}), not of rows an attack broke; effort is rated high because an "
            "attacker must still find the perturbation."
        )
        return probe.finding(
            target,
            context,
            status=Status.VULNERABLE,
            severity=rating.severity,
            severity_rationale=[why, *rating.rationale],
            summary=f"{head}; {rate_tol:.0%} of the rows certified at 0 have no certificate at "
            f"{tol:g} (accepted: {p.max_uncertified_rate:.0%}). Robustness there is not proven: "
            "fine-tune with noise at a larger sigma (evasion.randomized_smoothing) or raise n.",
            **fields,
        )
