"""``robustness.corruptions``: accuracy under common image corruptions at five severities.

Examples
--------
>>> CorruptionsProbe(corruptions=["jpeg", "rotate"]).validated_params().severities
[1, 2, 3, 4, 5]
>>> from bastion.targets import FakeTarget
>>> reason = CorruptionsProbe().not_applicable_reason(FakeTarget.linear(n_features=3, n_classes=2))
>>> print(reason)  # doctest: +NORMALIZE_WHITESPACE
robustness.corruptions applies to image-like inputs (C x H x W or H x W, at least
4 x 4); this target takes (3,) — use robustness.noise
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from bastion.attacks.evasion.corruptions import corrupt
from bastion.catalog.severity import Effect
from bastion.data.dataset import Dataset
from bastion.errors import UsageError
from bastion.findings import CatalogRefs, Evidence, Finding, Metric, Series, Status
from bastion.probes.base import Cost, Knowledge, Probe, ProbeMeta, ProbeParams
from bastion.probes.context import ProbeContext
from bastion.probes.evasion.blackbox_report import image_evidence, image_like, rate_metric
from bastion.targets.base import Capability, Target

__all__ = ["CorruptionName", "CorruptionsParams", "CorruptionsProbe"]

CorruptionName = Literal[
    "gaussian_noise",
    "shot_noise",
    "gaussian_blur",
    "box_blur",
    "brightness",
    "contrast",
    "rotate",
    "shift",
    "jpeg",
]
_BATCH = 512
_ALL: list[CorruptionName] = list(get_args(CorruptionName))


class CorruptionsParams(ProbeParams):
    """Parameters of :class:`CorruptionsProbe`."""

    corruptions: list[CorruptionName] = Field(
        default_factory=lambda: list(_ALL), min_length=1, description="Corruptions to apply."
    )
    severities: list[int] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5], min_length=1, description="Severities, 1-5."
    )
    n_samples: int = Field(500, ge=10, le=100_000, description="Test rows to use.")
    max_drop: float = Field(0.1, gt=0, le=1, description="Largest acceptable accuracy drop.")
    tolerance_severity: int = Field(
        2, ge=1, le=5, description="Severity up to which the drop must stay acceptable."
    )

    @field_validator("corruptions")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("must not repeat a corruption")
        return v

    @field_validator("severities")
    @classmethod
    def _severities(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v) or not all(1 <= s <= 5 for s in v):
            raise ValueError("must be distinct integers from 1 to 5")
        return sorted(v)

    @model_validator(mode="after")
    def _judgeable(self) -> CorruptionsParams:
        if min(self.severities) > self.tolerance_severity:
            raise ValueError(
                "needs at least one of 'severities' at or below 'tolerance_severity' "
                f"({self.tolerance_severity}) to judge the accuracy drop"
            )
        return self


class CorruptionsProbe(Probe):
    """Accuracy under common corruptions of images, per corruption and severity.

    Not an attack. Hendrycks and Dietterich, "Benchmarking Neural Network Robustness
    to Common Corruptions and Perturbations" (ICLR 2019) showed that accuracy on
    clean test images says little about accuracy on noisy, blurred, darker,
    low-contrast, slightly rotated or shifted, or JPEG-compressed ones -- the images a
    deployed model actually receives (failure modes FM16, common corruptions, and
    FM15, natural hard examples). The probe applies each corruption
    (:mod:`bastion.attacks.evasion.corruptions`) at each severity to ``n_samples``
    test images within the declared value range and asks the target for labels only,
    so it works on every target.

    Findings: one finding with accuracy per corruption and severity (Wilson 95%
    intervals), a curve per corruption, the mean accuracy over all corruptions and
    severities, the worst corruption, and as FM15 evidence the images that were right
    when clean but wrong under a mild (lowest tested severity) corruption. Vulnerable
    when some corruption at a severity up to ``tolerance_severity`` lowers accuracy
    by more than ``max_drop``. Not applicable to non-image inputs.
    """

    meta: ClassVar[ProbeMeta] = ProbeMeta(
        id="robustness.corruptions",
        title="Common corruptions: accuracy under noise, blur, light, geometry and JPEG",
        catalog=CatalogRefs(
            owasp=["ML01"],
            failure_modes=["FM16", "FM15"],
            atlas_mitigations=["AML.M0003", "AML.M0010"],
            cwe=["CWE-1039"],
        ),
        knowledge=Knowledge.BLACK_BOX,
        needs=frozenset({Capability.LABELS}),
        cost=Cost.MODERATE,
        remedies=("AML.M0003", "AML.M0010"),
    )
    Params: ClassVar[type[ProbeParams]] = CorruptionsParams

    def not_applicable_reason(self, target: Target) -> str | None:
        """Image-like inputs only."""
        if not image_like(target.input_spec.shape):
            return (
                f"{self.meta.id} applies to image-like inputs (C x H x W or H x W, at least "
                f"4 x 4); this target takes {tuple(target.input_spec.shape)} — use "
                "robustness.noise"
            )
        return super().not_applicable_reason(target)

    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        """Measure accuracy for every corruption and severity; one finding."""
        p: CorruptionsParams = self.validated_params()
        reason = self.not_applicable_reason(target)
        if reason is not None:
            raise UsageError(f"{reason}.")
        x, y = data.test_sample(p.n_samples, seed=context.seed)
        shape = tuple(target.input_spec.shape)
        lo_all, hi_all = target.input_spec.bounds()
        lo = float(lo_all.min()) if np.isfinite(lo_all).all() else float(x.min())
        hi = float(hi_all.max()) if np.isfinite(hi_all).all() else float(x.max())
        span = hi - lo if hi > lo else 1.0
        images = torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(len(x), -1, *shape[-2:])
        unit = (images - lo) / span
        dtype = np.dtype(target.input_spec.dtype)

        def predict(batch: torch.Tensor) -> np.ndarray:
            raw = (batch * span + lo).reshape(len(batch), *shape).numpy().astype(dtype)
            raw = target.input_spec.clip(raw)
            parts = [target.predict(raw[i : i + _BATCH]) for i in range(0, len(raw), _BATCH)]
            return np.concatenate(parts)

        total = 1 + len(p.corruptions) * len(p.severities)
        results: dict[str, list[int]] = {}
        hard = np.zeros(len(x), dtype=bool)
        hard_images: dict[int, np.ndarray] = {}
        with context.progress(total=total, description="common corruptions") as bar:
            clean = predict(unit) == y
            bar.advance(1)
            for c_index, name in enumerate(p.corruptions):
                gen = torch.Generator().manual_seed(context.seed * 1000 + c_index)
                results[name] = []
                for severity in p.severities:
                    bent = corrupt(unit, name, severity, gen)
                    ok = predict(bent) == y
                    results[name].append(int(ok.sum()))
                    if severity == p.severities[0]:
                        fresh = clean & ~ok & ~hard
                        for i in np.nonzero(fresh)[0][: max(0, 3 - len(hard_images))]:
                            hard_images[int(i)] = (bent[i] * span + lo).reshape(shape).numpy()
                        hard |= clean & ~ok
                    bar.advance(1)
        found = (int(clean.sum()), results, hard, hard_images)
        return [self._verdict(target, context, p, x, *found, (lo, hi))]

    def _verdict(
        self,
        target: Target,
        context: ProbeContext,
        p: CorruptionsParams,
        x: np.ndarray,
        n_clean: int,
        results: dict[str, list[int]],
        hard: np.ndarray,
        hard_images: dict[int, np.ndarray],
        bounds: tuple[float, float],
    ) -> Finding:
        n = len(x)
        base = n_clean / n
        metrics = [
            rate_metric(
                "clean_accuracy",
                n_clean,
                n,
                f"Share of {n} sampled test images classified correctly; Wilson 95% interval.",
            )
        ]
        series = []
        worst_name, worst_drop, worst_sev = "", -1.0, 0
        for name, counts in results.items():
            xs, ys, lows, highs = [0.0], [base], [metrics[0].interval], []
            for severity, correct in zip(p.severities, counts, strict=True):
                m = rate_metric(
                    f"accuracy@{name}:{severity}",
                    correct,
                    n,
                    f"Share of the {n} images classified correctly under {name.replace('_', ' ')} "
                    f"at severity {severity}; Wilson 95% interval.",
                )
                metrics.append(m)
                xs.append(float(severity))
                ys.append(correct / n)
                lows.append(m.interval)
                drop = base - correct / n
                if severity <= p.tolerance_severity and drop > worst_drop:
                    worst_name, worst_drop, worst_sev = name, drop, severity
            highs = [iv.high if iv else 1.0 for iv in lows]
            series.append(
                Series(
                    name=f"accuracy under {name.replace('_', ' ')}",
                    x_label="severity (0 = clean)",
                    y_label="accuracy",
                    x=xs,
                    y=ys,
                    y_low=[iv.low if iv else 0.0 for iv in lows],
                    y_high=highs,
                )
            )
        all_counts = [c for counts in results.values() for c in counts]
        mean_acc = float(np.mean(all_counts)) / n
        metrics += [
            Metric(
                name="mean_corruption_accuracy",
                value=round(mean_acc, 4),
                unit="fraction",
                definition="Accuracy averaged over every tested corruption and severity "
                "(Hendrycks & Dietterich's mean corruption accuracy, unnormalised).",
                n=n,
            ),
            Metric(
                name="worst_drop_within_tolerance",
                value=round(worst_drop, 4),
                unit="fraction",
                definition=f"Largest fall from clean accuracy at severities up to "
                f"{p.tolerance_severity} ({worst_name} at severity {worst_sev}).",
                n=n,
            ),
            rate_metric(
                "natural_hard_examples",
                int(hard.sum()),
                n,
                f"Share of images right when clean but wrong under some corruption at severity "
                f"{p.severities[0]} (FM15 natural hard examples); Wilson 95% interval.",
            ),
        ]
        evidence: list[Evidence] = []
        if hard_images:
            idx = list(hard_images)
            item = image_evidence(
                context,
                self.meta.id,
                "natural_hard_examples.png",
                x[idx],
                np.stack([hard_images[i] for i in idx]),
                f"Images classified correctly when clean and wrongly under a mild corruption "
                f"(severity {p.severities[0]}).",
                bounds=bounds,
                changed="corrupted input",
            )
            if item is not None:
                evidence.append(item)
        fields: dict[str, Any] = {"metrics": metrics, "series": series, "evidence": evidence}
        if base < 1.0 / target.n_classes + 0.1:
            return self.finding(
                target,
                context,
                status=Status.INCONCLUSIVE,
                summary=f"Clean accuracy on the sample is {base:.2f}, close to chance; check that "
                "the data matches the model's input space.",
                **fields,
            )
        ranked = sorted(results, key=lambda k: sum(results[k]))
        worst_overall = ", ".join(
            f"{k.replace('_', ' ')} {results[k][-1] / n:.2f}" for k in ranked[:3]
        )
        if worst_drop <= p.max_drop:
            return self.finding(
                target,
                context,
                status=Status.NOT_VULNERABLE,
                summary=f"Accuracy stays within {p.max_drop:g} of the clean {base:.2f} under every "
                f"corruption up to severity {p.tolerance_severity} (largest drop {worst_drop:.2f}, "
                f"{worst_name.replace('_', ' ')}); at severity {p.severities[-1]} the worst are "
                f"{worst_overall}.",
                **fields,
            )
        relative = min(1.0, max(0.0, worst_drop / base))
        return self.vulnerable_finding(
            target,
            context,
            effect=Effect.DEGRADATION,
            extent=relative,
            summary=f"Accuracy falls from {base:.2f} to {base - worst_drop:.2f} under "
            f"{worst_name.replace('_', ' ')} at severity {worst_sev} (more than the accepted "
            f"{p.max_drop:g}); at severity {p.severities[-1]} the worst are {worst_overall}. "
            "Train with corruption augmentation or restore inputs before the model.",
            **fields,
        )
