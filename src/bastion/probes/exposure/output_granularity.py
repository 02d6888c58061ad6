"""``exposure.output_granularity``: how much of its scores a model gives away per answer.

Model inversion (Fredrikson et al., CCS 2015), membership inference (Shokri et al.,
S&P 2017) and model stealing (Tramèr et al., USENIX Security 2016) all work far
better, or only work, when an answer carries the model's confidence scores rather
than just a label. Tramèr et al. show that rounding scores and returning labels
only are the first line of defence; MITRE ATLAS lists it as *Passive ML Output
Obfuscation* (AML.M0002).

This probe is black-box and is not an attack: it queries the target on a sample of
test rows and measures, from the answers alone, what each answer exposes.

* whether scores come back at all (a label-only target is not vulnerable);
* how many classes get an informative score per row (detects top-k truncation);
* the numeric precision of the scores (decimal places in use, distinct values and
  the smallest gap between them);
* what the scores are: calibrated probabilities (in ``[0, 1]``, rows sum to 1),
  truncated probabilities, unnormalised scores, or raw logits.

Examples
--------
>>> from bastion.data import Dataset
>>> from bastion.probes import ProbeContext
>>> from bastion.targets import FakeTarget
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.random((40, 4)).astype(np.float32)
>>> data = Dataset(name="toy", x_train=x[:20], y_train=np.arange(20) % 3,
...                x_test=x[20:], y_test=np.arange(20) % 3, classes=["a", "b", "c"])
>>> target = FakeTarget.linear(n_features=4, n_classes=3, seed=0, decimals=2)
>>> [f] = OutputGranularityProbe(n_samples=20).run(target, data, ProbeContext())
>>> f.status.value, f.metric("effective_decimals").value
('vulnerable', 2)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from pydantic import Field

from bastion.catalog.severity import Effect
from bastion.data.dataset import Dataset
from bastion.findings import CatalogRefs, Evidence, Finding, Metric, Status
from bastion.probes.base import Cost, Knowledge, Probe, ProbeMeta, ProbeParams
from bastion.probes.context import ProbeContext
from bastion.targets.base import Capability, SupportsLogits, Target

__all__ = ["OutputGranularityParams", "OutputGranularityProbe", "ScoreExposure", "analyse_scores"]

_MAX_DECIMALS = 16  # beyond this float64 carries no more decimal information
_REL_TOL = 1.2e-7  # float32 round-off, so float32 outputs of rounded scores still count as rounded
_FULL_PRECISION_DECIMALS = 6  # decimals at which the precision part of the extent saturates
_BATCH = 256


class OutputGranularityParams(ProbeParams):
    """Parameters of :class:`OutputGranularityProbe`."""

    n_samples: int = Field(200, ge=1, le=100_000, description="Test rows to query.")
    allowed_scores_per_row: int = Field(
        0,
        ge=0,
        le=100_000,
        description="Scores per answer the deployment needs (0: a label is enough).",
    )
    allowed_decimals: int = Field(
        0, ge=0, le=_MAX_DECIMALS, description="Decimal places of scores the deployment needs."
    )


@dataclass(frozen=True)
class ScoreExposure:
    """What a batch of score vectors reveals, as measured by :func:`analyse_scores`.

    Attributes
    ----------
    n_rows, n_classes : int
    kind : str
        ``"probabilities"``, ``"truncated probabilities"``, ``"unnormalised scores"``
        or ``"logits"``.
    label_equivalent : bool
        True when every answer is a relabelled one-hot vector (same high and low value
        in every row), so the scores carry nothing beyond the label.
    scores_per_row_mean, scores_per_row_max : float, int
        Informative scores per row (non-zero for probability-like scores; not equal to
        a repeated row minimum for logits).
    effective_decimals : int
        Largest number of decimal places any informative score needs (capped at 16).
    median_decimals : float
    distinct_values : int
        Distinct informative score values.
    resolution : float or None
        Smallest gap between two distinct informative values.
    in_unit_interval : bool
    sums_to_one_share : float
        Share of rows whose scores sum to 1 within the rounding tolerance.
    """

    n_rows: int
    n_classes: int
    kind: str
    label_equivalent: bool
    scores_per_row_mean: float
    scores_per_row_max: int
    effective_decimals: int
    median_decimals: float
    distinct_values: int
    resolution: float | None
    in_unit_interval: bool
    sums_to_one_share: float


def _decimals_needed(values: np.ndarray) -> np.ndarray:
    """Decimal places each value needs to be written exactly (up to float32 round-off)."""
    v = np.asarray(values, dtype=np.float64)
    needed = np.full(v.shape, _MAX_DECIMALS, dtype=np.int64)
    open_ = np.ones(v.shape, dtype=bool)
    tol = _REL_TOL * np.abs(v) + 1e-15
    for d in range(_MAX_DECIMALS + 1):  # bounded: at most 17 passes
        hit = open_ & (np.abs(v - np.round(v, d)) <= tol)
        needed[hit] = d
        open_ &= ~hit
        if not open_.any():
            break
    return needed


def analyse_scores(scores: np.ndarray) -> ScoreExposure:
    """Measure what a batch of score vectors ``(n, n_classes)`` exposes.

    Parameters
    ----------
    scores : numpy.ndarray
        Finite scores as returned by :meth:`Target.predict_proba`.

    Returns
    -------
    ScoreExposure

    Examples
    --------
    >>> import numpy as np
    >>> e = analyse_scores(np.array([[0.25, 0.75, 0.0], [0.5, 0.0, 0.5]]))
    >>> e.kind, e.scores_per_row_max, e.effective_decimals, e.resolution
    ('probabilities', 2, 2, 0.25)
    >>> analyse_scores(np.array([[2.0, -1.0], [0.3, 1.7]])).kind
    'logits'
    """
    s = np.asarray(scores, dtype=np.float64)
    n, k = s.shape
    eps = 1e-6
    in_unit = bool(((s >= -eps) & (s <= 1 + eps)).all())
    row_min = s.min(axis=1, keepdims=True)
    if in_unit:
        informative = s > eps
    else:
        repeated_min = (np.isclose(s, row_min).sum(axis=1, keepdims=True)) >= 2
        informative = ~(repeated_min & np.isclose(s, row_min))
    per_row = informative.sum(axis=1)
    values = s[informative]
    decimals = _decimals_needed(values) if values.size else np.zeros(0, dtype=np.int64)
    d_eff = int(decimals.max()) if decimals.size else 0
    # Compare values at the precision in use, so float32 round-off is not read as detail.
    uniq = np.unique(np.round(values, d_eff) if d_eff < _MAX_DECIMALS else values)
    gaps = np.diff(uniq)
    resolution = float(gaps.min()) if gaps.size else None

    sum_tol = max(1e-4, k * 0.5 * 10.0 ** (-min(d_eff, _MAX_DECIMALS)))
    sums = s.sum(axis=1)
    sums_share = float(np.mean(np.abs(sums - 1.0) <= sum_tol))
    if not in_unit:
        kind = "logits"
    elif sums_share >= 0.95:
        kind = "probabilities"
    elif per_row.max(initial=0) < k and bool((sums <= 1 + sum_tol).all()):
        kind = "truncated probabilities"
    else:
        kind = "unnormalised scores"

    # Label-equivalent: one strict maximum per row, every other entry equal, and the
    # same (high, low) pair in every row -- a one-hot vector in disguise.
    top = s.max(axis=1)
    is_top = np.isclose(s, top[:, None])
    n_top = is_top.sum(axis=1)
    low_min = np.where(is_top, np.inf, s).min(axis=1)
    low_max = np.where(is_top, -np.inf, s).max(axis=1)
    label_equivalent = bool(
        n > 0
        and (n_top == 1).all()
        and np.allclose(low_min, low_max)
        and np.allclose(top, top[0])
        and np.allclose(low_min, low_min[0])
    )
    return ScoreExposure(
        n_rows=n,
        n_classes=k,
        kind=kind,
        label_equivalent=label_equivalent,
        scores_per_row_mean=float(per_row.mean()) if n else 0.0,
        scores_per_row_max=int(per_row.max(initial=0)),
        effective_decimals=d_eff,
        median_decimals=float(np.median(decimals)) if decimals.size else 0.0,
        distinct_values=int(uniq.size),
        resolution=None if resolution is None else float(f"{resolution:.6g}"),
        in_unit_interval=in_unit,
        sums_to_one_share=sums_share,
    )


def exposure_extent(e: ScoreExposure) -> float:
    """Extent in ``[0, 1]`` for the severity rules: precision and coverage, more for logits.

    Half comes from precision (decimal places, saturating at 6) and half from the
    share of classes that get a score; raw logits add 0.3.
    """
    precision = min(e.effective_decimals, _FULL_PRECISION_DECIMALS) / _FULL_PRECISION_DECIMALS
    coverage = e.scores_per_row_mean / e.n_classes if e.n_classes else 0.0
    extent = 0.5 * precision + 0.5 * coverage
    if e.kind == "logits":
        extent += 0.3
    return float(min(1.0, max(0.05, extent)))


class OutputGranularityProbe(Probe):
    """Measure how much score information each answer of the model exposes.

    Not an attack: a black-box measurement of the opening that model inversion
    (Fredrikson et al., 2015), membership inference (Shokri et al., 2017) and model
    stealing (Tramèr et al., 2016) need. It sends ``n_samples`` test rows, reads the
    answers and reports whether full score vectors, top-k scores or only labels come
    back, their precision, and whether they are probabilities or logits.

    Vulnerable when the answers carry more than the deployment needs: by default any
    score beyond the label; with ``allowed_scores_per_row`` and ``allowed_decimals``
    a deployment that needs, say, the top-1 confidence to 2 decimals can say so.
    Raw logits are always vulnerable: no client needs them.

    Parameters
    ----------
    n_samples : int, default 200
        Test rows to query (1..100000).
    allowed_scores_per_row : int, default 0
        Informative scores per answer the deployment needs; 0 means a label is enough.
    allowed_decimals : int, default 0
        Decimal places the deployment needs (0..16).

    Examples
    --------
    >>> from bastion.targets import FakeTarget
    >>> OutputGranularityProbe().not_applicable_reason(
    ...     FakeTarget.linear(n_features=2, n_classes=2)) is None
    True
    """

    meta: ClassVar[ProbeMeta] = ProbeMeta(
        id="exposure.output_granularity",
        title="Output granularity: scores exposed per answer",
        catalog=CatalogRefs(
            owasp=["ML03", "ML04", "ML05"],
            failure_modes=["FM3", "FM4", "FM5"],
            atlas_techniques=["AML.T0040", "AML.T0024.000", "AML.T0024.001", "AML.T0024.002"],
            atlas_mitigations=["AML.M0002"],
            cwe=["CWE-1039"],
        ),
        knowledge=Knowledge.BLACK_BOX,
        needs=frozenset({Capability.LABELS}),
        cost=Cost.CHEAP,
        remedies=("AML.M0002",),
    )
    Params: ClassVar[type[ProbeParams]] = OutputGranularityParams

    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        """Query the target on a sample of test rows and measure what the answers expose."""
        p: OutputGranularityParams = self.validated_params()
        if Capability.PROBABILITIES not in target.capabilities:
            return [self._label_only(target, context)]
        x, _ = data.test_sample(p.n_samples, seed=context.seed)
        batches = [x[i : i + _BATCH] for i in range(0, len(x), _BATCH)]
        # An endpoint that answers with logits is judged on what it sends (its adapter's
        # predict_proba would show them softmaxed); other targets on predict_proba.
        ask = target.predict_proba
        if (
            Capability.ENDPOINT in target.capabilities
            and Capability.LOGITS in target.capabilities
            and isinstance(target, SupportsLogits)
        ):
            ask = target.logits
        parts: list[np.ndarray] = []
        with context.progress(total=len(batches), description="output granularity") as bar:
            for batch in batches:
                parts.append(np.asarray(ask(batch), dtype=np.float64))
                bar.advance(1)
        scores = np.concatenate(parts)
        e = analyse_scores(scores)
        context.logger.debug("output granularity of %s: %s", target.name, e)
        return [self._scored(target, context, p, e, scores)]

    # -- findings ---------------------------------------------------------------------
    def _label_only(self, target: Target, context: ProbeContext) -> Finding:
        return self.finding(
            target,
            context,
            status=Status.NOT_VULNERABLE,
            summary=(
                f"{target.name} answers with labels only; no scores are exposed for "
                "inversion, membership inference or stealing to use."
            ),
            metrics=[
                Metric(
                    name="scores_exposed",
                    value=False,
                    definition="Whether the target returns class scores beyond the label "
                    "(from its declared capabilities).",
                )
            ],
        )

    def _scored(
        self,
        target: Target,
        context: ProbeContext,
        p: OutputGranularityParams,
        e: ScoreExposure,
        scores: np.ndarray,
    ) -> Finding:
        metrics = _metrics(e)
        evidence = [
            Evidence(
                kind="observation",
                description="The first answers exactly as the target returned them.",
                data={"scores": scores[:3].tolist(), "classes": list(target.classes)},
            )
        ]
        too_many = e.scores_per_row_max > p.allowed_scores_per_row
        too_precise = e.effective_decimals > p.allowed_decimals
        shape = (
            f"{e.kind} for {e.scores_per_row_mean:.1f} of {e.n_classes} classes per answer "
            f"(at most {e.scores_per_row_max}), with up to {e.effective_decimals} decimal "
            f"place(s)"
        )
        if e.label_equivalent:
            return self.finding(
                target,
                context,
                status=Status.NOT_VULNERABLE,
                summary=(
                    f"{target.name} returns score vectors, but every one is a one-hot vector "
                    "with fixed values, so it carries nothing beyond the label."
                ),
                metrics=metrics,
                evidence=evidence,
            )
        if e.kind != "logits" and not (too_many or too_precise):
            return self.finding(
                target,
                context,
                status=Status.NOT_VULNERABLE,
                summary=(
                    f"{target.name} returns {shape}, within the granularity the deployment "
                    f"declared it needs ({p.allowed_scores_per_row} score(s), "
                    f"{p.allowed_decimals} decimal(s))."
                ),
                metrics=metrics,
                evidence=evidence,
            )
        advice = (
            "return labels only"
            if p.allowed_scores_per_row == 0
            else f"return at most the top {p.allowed_scores_per_row} score(s) rounded to "
            f"{p.allowed_decimals} decimal(s)"
        )
        logit_note = (
            " Raw logits reveal the model's margins directly." if e.kind == "logits" else ""
        )
        return self.vulnerable_finding(
            target,
            context,
            effect=Effect.INFORMATION_EXPOSURE,
            extent=exposure_extent(e),
            summary=(
                f"{target.name} returns {shape}, more than a label; these scores feed model "
                f"inversion, membership inference and model stealing.{logit_note} "
                f"Obfuscate the output: {advice}."
            ),
            metrics=metrics,
            evidence=evidence,
        )


def _metrics(e: ScoreExposure) -> list[Metric]:
    return [
        Metric(
            name="scores_exposed",
            value=True,
            definition="Whether the target returns class scores beyond the label.",
        ),
        Metric(
            name="score_kind",
            value=e.kind,
            definition="Probabilities: all scores in [0, 1] and >=95% of rows sum to 1; "
            "truncated probabilities: in [0, 1], some classes zeroed, rows sum to at most 1; "
            "logits: any score outside [0, 1]; otherwise unnormalised scores.",
        ),
        Metric(
            name="label_equivalent",
            value=e.label_equivalent,
            definition="Every answer is a one-hot vector with the same high and low value, "
            "i.e. the scores say nothing beyond the label.",
        ),
        Metric(
            name="scores_per_row",
            value=round(e.scores_per_row_mean, 4),
            unit="classes",
            definition="Mean number of informative scores per answer: non-zero scores for "
            "probability-like output, entries not equal to a repeated row minimum for logits.",
            n=e.n_rows,
        ),
        Metric(
            name="top_k",
            value=e.scores_per_row_max,
            unit="classes",
            definition="Largest number of informative scores in any answer; below the class "
            "count it indicates top-k truncation.",
            n=e.n_rows,
        ),
        Metric(
            name="n_classes",
            value=e.n_classes,
            unit="classes",
            definition="Number of classes the target declares.",
        ),
        Metric(
            name="effective_decimals",
            value=e.effective_decimals,
            unit="decimal places",
            definition="Largest number of decimal places any informative score needs to be "
            f"written exactly, up to float32 round-off (capped at {_MAX_DECIMALS}).",
            n=e.n_rows,
        ),
        Metric(
            name="median_decimals",
            value=e.median_decimals,
            unit="decimal places",
            definition="Median decimal places over all informative scores.",
            n=e.n_rows,
        ),
        Metric(
            name="distinct_score_values",
            value=e.distinct_values,
            unit="values",
            definition="Number of distinct informative score values over all sampled answers.",
            n=e.n_rows,
        ),
        Metric(
            name="score_resolution",
            value=e.resolution,
            definition="Smallest gap between two distinct informative score values (None "
            "when fewer than two distinct values were seen).",
            n=e.n_rows,
        ),
        Metric(
            name="sums_to_one",
            value=round(e.sums_to_one_share, 4),
            unit="fraction",
            definition="Share of answers whose scores sum to 1 within the rounding tolerance "
            "(0.5 x 10^-decimals per class, at least 1e-4).",
            n=e.n_rows,
        ),
    ]
