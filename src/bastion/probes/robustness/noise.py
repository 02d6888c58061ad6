"""``robustness.noise``: accuracy under random input noise of increasing strength.

Not an attack. Random noise is the weakest perturbation there is: no optimisation,
no knowledge of the model. A model whose accuracy collapses under it will fail on
ordinary sensor noise, compression artefacts and transmission errors long before an
adversary shows up. This probe is the baseline for the *common corruption* failure
mode (Microsoft FM16, measured at scale by Hendrycks and Dietterich, "Benchmarking
Neural Network Robustness to Common Corruptions and Perturbations", ICLR 2019),
and the reference point against which adversarial robustness numbers should be read.

Three kinds of noise, each at a list of *levels* given as a fraction of every
feature's range (the declared bounds, or the data's range where a feature is
unbounded):

``gaussian``
    adds ``N(0, (level x range)^2)`` to every mutable feature;
``uniform``
    adds ``U(-level x range, +level x range)``;
``salt_pepper``
    replaces each mutable feature, with probability ``level``, by the lower or the
    upper end of its range.

Noisy inputs stay valid for the model: they are clipped to the declared bounds,
integer features are rounded, and immutable features and one-hot groups are left as
they were (:class:`~bastion.targets.spec.InputSpec`).

Examples
--------
>>> import numpy as np
>>> from bastion.targets.spec import InputSpec
>>> spec = InputSpec(shape=(3,), lower=0.0, upper=10.0, feature_names=["a", "b", "c"],
...                  immutable=["a"], integer=["b"])
>>> model = NoiseModel.build(spec, np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
>>> noisy = model.apply(np.array([[1.0, 2.0, 3.0]]), "gaussian", 0.2,
...                     np.random.default_rng(0))
>>> bool(noisy[0, 0] == 1.0), float(noisy[0, 1]).is_integer(), bool(0 <= noisy[0, 2] <= 10)
(True, True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from bastion.catalog.severity import Effect
from bastion.data.dataset import Dataset
from bastion.errors import DataError
from bastion.findings import CatalogRefs, Finding, Metric, Series, Status, wilson_interval
from bastion.probes.base import Cost, Knowledge, Probe, ProbeMeta, ProbeParams
from bastion.probes.context import ProbeContext, ProgressBar
from bastion.targets.base import Capability, Target
from bastion.targets.spec import InputSpec

__all__ = ["NoiseKind", "NoiseModel", "NoiseRobustnessParams", "NoiseRobustnessProbe"]

NoiseKind = Literal["gaussian", "uniform", "salt_pepper"]
_KINDS: tuple[NoiseKind, ...] = ("gaussian", "uniform", "salt_pepper")
_NAMES: dict[str, str] = {
    "gaussian": "Gaussian",
    "uniform": "uniform",
    "salt_pepper": "salt-and-pepper",
}
_BATCH = 512
_LEVEL_EPS = 1e-12


class NoiseRobustnessParams(ProbeParams):
    """Parameters of :class:`NoiseRobustnessProbe`."""

    kinds: list[NoiseKind] = Field(
        default_factory=lambda: list(_KINDS), min_length=1, description="Noise kinds to test."
    )
    levels: list[Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=lambda: [0.02, 0.05, 0.1, 0.2, 0.3],
        min_length=1,
        max_length=20,
        description="Noise strengths as fractions of each feature's range, in (0, 1].",
    )
    n_samples: int = Field(500, ge=10, le=100_000, description="Test rows to use.")
    repeats: int = Field(1, ge=1, le=20, description="Noise draws per row and level.")
    max_drop: float = Field(
        0.1, gt=0, le=1, description="Largest acceptable accuracy drop (absolute)."
    )
    tolerance_level: float = Field(
        0.1, gt=0, le=1, description="Noise level up to which the drop must stay acceptable."
    )

    @field_validator("kinds")
    @classmethod
    def _unique_kinds(cls, v: list[NoiseKind]) -> list[NoiseKind]:
        if len(set(v)) != len(v):
            raise ValueError("must not repeat a noise kind")
        return v

    @field_validator("levels")
    @classmethod
    def _sorted_levels(cls, v: list[float]) -> list[float]:
        if len(set(v)) != len(v):
            raise ValueError("must not repeat a level")
        return sorted(v)

    @model_validator(mode="after")
    def _level_within_tolerance(self) -> NoiseRobustnessParams:
        if min(self.levels) > self.tolerance_level + _LEVEL_EPS:
            raise ValueError(
                "needs at least one of 'levels' at or below 'tolerance_level' "
                f"({self.tolerance_level:g}) to judge the accuracy drop"
            )
        return self


@dataclass(frozen=True)
class NoiseModel:
    """Per-feature noise scales and constraints for one input spec.

    Build it with :meth:`build`; :meth:`apply` returns a noisy copy of a batch.

    Attributes
    ----------
    scale : numpy.ndarray
        Range of each flattened feature: declared ``upper - lower``, or the data's
        ``max - min`` where a bound is missing.
    low, high : numpy.ndarray
        Ends of that range (used by salt-and-pepper noise).
    clip_low, clip_high : numpy.ndarray
        Declared bounds (``-inf``/``inf`` where unset).
    mask : numpy.ndarray
        True for features noise may change: mutable and not in a one-hot group.
    integer : numpy.ndarray
        True for integer features.
    """

    scale: np.ndarray
    low: np.ndarray
    high: np.ndarray
    clip_low: np.ndarray
    clip_high: np.ndarray
    mask: np.ndarray
    integer: np.ndarray

    @classmethod
    def build(cls, spec: InputSpec, reference: np.ndarray) -> NoiseModel:
        """Scales from ``spec``'s bounds, falling back to the range of ``reference`` rows."""
        flat = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
        if flat.shape[1] != spec.n_features:
            raise DataError(
                f"The data rows have {flat.shape[1]} features but the model's input spec has "
                f"{spec.n_features}; use data that matches the model."
            )
        lo, hi = spec.bounds()
        data_lo, data_hi = flat.min(axis=0), flat.max(axis=0)
        low = np.where(np.isfinite(lo), lo, data_lo)
        high = np.where(np.isfinite(hi), hi, data_hi)
        mask = spec.mutable_mask().copy()
        for group in spec.one_hot_indices():
            mask[group] = False
        return cls(
            scale=high - low,
            low=low,
            high=high,
            clip_low=lo,
            clip_high=hi,
            mask=mask,
            integer=spec.integer_mask() & mask,
        )

    def apply(
        self, x: np.ndarray, kind: NoiseKind, level: float, rng: np.random.Generator
    ) -> np.ndarray:
        """A noisy copy of ``x`` with the same shape and dtype."""
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        size = flat.shape
        if kind == "gaussian":
            noisy = flat + rng.normal(size=size) * (level * self.scale)
        elif kind == "uniform":
            noisy = flat + rng.uniform(-1.0, 1.0, size=size) * (level * self.scale)
        else:
            hit = rng.random(size) < level
            salt = rng.random(size) < 0.5
            noisy = np.where(hit, np.where(salt, self.high, self.low), flat)
        noisy = np.clip(noisy, self.clip_low, self.clip_high)
        noisy = np.where(self.integer, np.round(noisy), noisy)
        noisy = np.clip(noisy, self.clip_low, self.clip_high)
        noisy = np.where(self.mask, noisy, flat)
        return np.asarray(noisy.reshape(x.shape).astype(x.dtype, copy=False))


@dataclass(frozen=True)
class _Point:
    level: float
    correct: int
    n: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n


class NoiseRobustnessProbe(Probe):
    """Accuracy under Gaussian, uniform and salt-and-pepper noise of rising strength.

    Not an attack: a baseline for common corruptions (FM16; Hendrycks & Dietterich,
    ICLR 2019) that needs labels only. For each noise kind it measures accuracy on
    ``n_samples`` test rows at every level, with Wilson 95% intervals, and returns one
    finding per kind (variant = kind) with the accuracy curve as a series.

    Vulnerable when accuracy falls by more than ``max_drop`` (absolute) at some
    level no stronger than ``tolerance_level``; severity grows with the relative
    drop. A model whose clean accuracy is near chance gives an inconclusive finding.

    Parameters
    ----------
    kinds : list of {"gaussian", "uniform", "salt_pepper"}
    levels : list of float, default [0.02, 0.05, 0.1, 0.2, 0.3]
        Fractions of each feature's range; for salt-and-pepper, the share of features
        replaced.
    n_samples : int, default 500
    repeats : int, default 1
        Independent noise draws per row and level.
    max_drop : float, default 0.1
    tolerance_level : float, default 0.1

    Examples
    --------
    >>> NoiseRobustnessProbe(levels=[0.3, 0.05]).validated_params().levels
    [0.05, 0.3]
    """

    meta: ClassVar[ProbeMeta] = ProbeMeta(
        id="robustness.noise",
        title="Noise robustness: accuracy under random input noise",
        catalog=CatalogRefs(
            owasp=["ML01"],
            failure_modes=["FM16", "FM14"],
            atlas_mitigations=["AML.M0003"],
            cwe=["CWE-1039"],
        ),
        knowledge=Knowledge.BLACK_BOX,
        needs=frozenset({Capability.LABELS}),
        cost=Cost.MODERATE,
        remedies=("AML.M0003",),
    )
    Params: ClassVar[type[ProbeParams]] = NoiseRobustnessParams

    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        """Measure accuracy per noise kind and level; one finding per kind."""
        p: NoiseRobustnessParams = self.validated_params()
        x, y = data.test_sample(p.n_samples, seed=context.seed)
        reference = np.concatenate([data.x_train, data.x_test]) if len(data.x_train) else x
        model = NoiseModel.build(target.input_spec, reference)
        steps = 1 + len(p.kinds) * len(p.levels) * p.repeats
        findings: list[Finding] = []
        if not model.mask.any():
            return [
                self._inconclusive(target, context, kind, "every feature is immutable or one-hot")
                for kind in p.kinds
            ]
        with context.progress(total=steps, description="noise robustness") as bar:
            clean = _predict(target, x)
            bar.advance(1)
            baseline = _Point(0.0, int((clean == y).sum()), len(y))
            for k_index, kind in enumerate(p.kinds):
                rng = context.rng(stream=1 + k_index)
                points = [
                    self._measure(target, model, x, y, kind, level, p.repeats, rng, bar)
                    for level in p.levels
                ]
                findings.append(self._verdict(target, context, p, kind, baseline, points))
        return findings

    def _measure(
        self,
        target: Target,
        model: NoiseModel,
        x: np.ndarray,
        y: np.ndarray,
        kind: NoiseKind,
        level: float,
        repeats: int,
        rng: np.random.Generator,
        bar: ProgressBar,
    ) -> _Point:
        correct = 0
        for _ in range(repeats):
            pred = _predict(target, model.apply(x, kind, level, rng))
            correct += int((pred == y).sum())
            bar.advance(1)
        # Rows are the sampling unit: average over repeats, then count per row.
        return _Point(level, round(correct / repeats), len(y))

    # -- findings ---------------------------------------------------------------------
    def _inconclusive(
        self, target: Target, context: ProbeContext, kind: NoiseKind, why: str
    ) -> Finding:
        return self.finding(
            target,
            context,
            status=Status.INCONCLUSIVE,
            variant=kind,
            title=f"{self.meta.title} ({_NAMES[kind]})",
            summary=f"Noise robustness could not be measured: {why}.",
        )

    def _verdict(
        self,
        target: Target,
        context: ProbeContext,
        p: NoiseRobustnessParams,
        kind: NoiseKind,
        baseline: _Point,
        points: list[_Point],
    ) -> Finding:
        chance = 1.0 / target.n_classes
        metrics, series = _report(kind, baseline, points, p)
        fields: dict[str, Any] = {"variant": kind, "title": f"{self.meta.title} ({_NAMES[kind]})"}
        if baseline.accuracy < chance + 0.1:
            return self.finding(
                target,
                context,
                status=Status.INCONCLUSIVE,
                summary=(
                    f"Clean accuracy on the sample is {baseline.accuracy:.2f}, close to chance "
                    f"({chance:.2f}); check that the data matches the model's input space."
                ),
                metrics=metrics,
                series=series,
                **fields,
            )
        within = [pt for pt in points if pt.level <= p.tolerance_level + _LEVEL_EPS]
        worst = max(within, key=lambda pt: baseline.accuracy - pt.accuracy)
        drop = baseline.accuracy - worst.accuracy
        curve = ", ".join(f"{pt.accuracy:.2f}@{pt.level:g}" for pt in points)
        if drop <= p.max_drop:
            return self.finding(
                target,
                context,
                status=Status.NOT_VULNERABLE,
                summary=(
                    f"Accuracy under {_NAMES[kind]} noise stays within {p.max_drop:g} of the "
                    f"clean {baseline.accuracy:.2f} up to {_strength(kind, p.tolerance_level)} "
                    f"(largest drop {drop:.2f}); accuracy@level: {curve}."
                ),
                metrics=metrics,
                series=series,
                **fields,
            )
        relative = min(1.0, max(0.0, drop / baseline.accuracy))
        return self.vulnerable_finding(
            target,
            context,
            effect=Effect.DEGRADATION,
            extent=relative,
            summary=(
                f"Accuracy falls from {baseline.accuracy:.2f} to {worst.accuracy:.2f} under "
                f"{_NAMES[kind]} noise at only {_strength(kind, worst.level)} (a drop of "
                f"{drop:.2f}, more than the accepted {p.max_drop:g}); train with noise "
                "augmentation or validate inputs."
            ),
            metrics=metrics,
            series=series,
            **fields,
        )


def _strength(kind: NoiseKind, level: float) -> str:
    """A noise level in words, e.g. 'sigma 10% of the range' or '10% of features'."""
    if kind == "salt_pepper":
        return f"{level:.0%} of features replaced"
    what = "sigma" if kind == "gaussian" else "amplitude"
    return f"{what} {level:.0%} of the input range"


def _predict(target: Target, x: np.ndarray) -> np.ndarray:
    parts = [target.predict(x[i : i + _BATCH]) for i in range(0, len(x), _BATCH)]
    return np.concatenate(parts)


def _report(
    kind: NoiseKind, baseline: _Point, points: list[_Point], p: NoiseRobustnessParams
) -> tuple[list[Metric], list[Series]]:
    how = (
        f"{kind} noise at that fraction of each feature's range"
        if kind != "salt_pepper"
        else "that share of features set to the ends of their range"
    )
    per_row = f" over {baseline.n} test rows" + (
        f", averaged over {p.repeats} noise draws per row" if p.repeats > 1 else ""
    )
    metrics = []
    xs, ys, lows, highs = [], [], [], []
    for pt in [baseline, *points]:
        iv = wilson_interval(pt.correct, pt.n)
        xs.append(pt.level)
        ys.append(pt.accuracy)
        lows.append(iv.low)
        highs.append(iv.high)
        name = "clean_accuracy" if pt is baseline else f"accuracy@{pt.level:g}"
        what = "without noise" if pt is baseline else f"with {how}"
        metrics.append(
            Metric(
                name=name,
                value=round(pt.accuracy, 4),
                unit="fraction",
                definition=f"Share of rows classified correctly {what}{per_row}; "
                "Wilson 95% interval over rows.",
                interval=iv,
                n=pt.n,
            )
        )
    within = [pt for pt in points if pt.level <= p.tolerance_level + _LEVEL_EPS]
    worst_drop = max(baseline.accuracy - pt.accuracy for pt in within)
    breaking = next(
        (pt.level for pt in points if baseline.accuracy - pt.accuracy > p.max_drop), None
    )
    metrics += [
        Metric(
            name="max_drop_within_tolerance",
            value=round(worst_drop, 4),
            unit="fraction",
            definition=f"Largest fall in accuracy from the clean value at levels up to "
            f"{p.tolerance_level:g} of the range.",
            n=baseline.n,
        ),
        Metric(
            name="relative_drop",
            value=round(worst_drop / baseline.accuracy, 4) if baseline.correct else None,
            unit="fraction",
            definition="That fall divided by the clean accuracy.",
            n=baseline.n,
        ),
        Metric(
            name="breaking_level",
            value=breaking,
            unit="fraction of range",
            definition=f"Smallest tested level at which accuracy falls by more than "
            f"{p.max_drop:g} (None: never within the tested levels).",
        ),
    ]
    series = Series(
        name=f"accuracy under {_NAMES[kind]} noise",
        x_label="noise level (fraction of feature range)"
        if kind != "salt_pepper"
        else "share of features replaced",
        y_label="accuracy",
        x=xs,
        y=ys,
        y_low=lows,
        y_high=highs,
    )
    return metrics, [series]
