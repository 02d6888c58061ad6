"""``evasion.hop_skip_jump``: decision-based black-box evasion from labels alone.

Examples
--------
>>> HopSkipJumpProbe(norm="linf").resolved_budgets()
[0.05, 0.1, 0.2]
>>> HopSkipJumpProbe(n_samples=0).validated_params()  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
bastion.errors.UsageError: The 'n_samples' parameter of evasion.hop_skip_jump ...
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from bastion.attacks.evasion.hop_skip_jump import hop_skip_jump
from bastion.attacks.evasion.queries import bounds_tensors, label_oracle, target_device
from bastion.attacks.evasion.units import BudgetUnits, Units
from bastion.data.dataset import Dataset
from bastion.errors import QueryBudgetExceeded
from bastion.findings import CatalogRefs, Evidence, Finding, Metric, Series, Status
from bastion.probes.base import Cost, Knowledge, Probe, ProbeMeta, ProbeParams
from bastion.probes.context import ProbeContext
from bastion.probes.evasion.blackbox_report import (
    blackbox_budgets,
    evasion_rating,
    image_evidence,
    image_like,
    query_metrics,
    rate_metric,
    table_evidence,
)
from bastion.probes.evasion.evidence import units_evidence
from bastion.targets.base import Capability, Target

__all__ = ["HopSkipJumpParams", "HopSkipJumpProbe"]

_DEFAULT_BUDGETS = {"linf": [0.05, 0.1, 0.2], "l2": [0.5, 1.0, 2.0]}


class HopSkipJumpParams(ProbeParams):
    """Parameters of :class:`HopSkipJumpProbe`."""

    norm: Literal["l2", "linf"] = Field("l2", description="Norm of the perturbation.")
    budgets: list[Annotated[float, Field(gt=0)]] | None = Field(
        None,
        min_length=1,
        max_length=10,
        description="Radii at which to report robust accuracy (default per norm).",
    )
    units: Units = Field(
        "auto",
        description="Budget units: 'auto' (raw when every feature shares one finite range, "
        "else 'range'), 'raw' or 'range' (fractions of each feature's range).",
    )
    n_samples: int = Field(20, ge=1, le=2000, description="Test rows to attack.")
    max_queries: int = Field(2000, ge=50, le=100_000, description="Label queries per row.")
    max_success_rate: float = Field(
        0.1, ge=0, lt=1, description="Largest acceptable share of attacked rows evaded."
    )

    @field_validator("budgets")
    @classmethod
    def _sorted(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("must not repeat a budget")
        return None if v is None else sorted(v)


class HopSkipJumpProbe(Probe):
    """Smallest evading perturbations from labels alone, with HopSkipJump.

    Chen, Jordan and Wainwright, "HopSkipJumpAttack: A Query-Efficient
    Decision-Based Attack", IEEE S&P 2020. The attacker sees only the predicted label
    -- the hardest black-box setting, and the one a label-only API leaves open. For
    each of ``n_samples`` test rows the attack looks for the closest misclassified
    input with at most ``max_queries`` label queries; robust accuracy at any budget
    follows from those distances, so the finding has the whole curve.

    Findings: robust accuracy at each budget (Wilson 95% intervals over the sampled
    rows) and on a fine grid as a series, the distribution of minimal perturbations
    (median, quartiles), queries to reach each budget, and the closest adversarial
    examples as evidence. Bounds and immutable features are respected; for tabular
    rows integer and one-hot features are held fixed (use ``evasion.tabular`` for a
    constrained attack that changes them). Vulnerable when the share of correctly
    classified rows evaded within the largest budget exceeds ``max_success_rate``.
    """

    meta: ClassVar[ProbeMeta] = ProbeMeta(
        id="evasion.hop_skip_jump",
        title="Black-box evasion: HopSkipJump (labels only)",
        catalog=CatalogRefs(
            owasp=["ML01"],
            failure_modes=["FM1"],
            atlas_techniques=["AML.T0043", "AML.T0043.001", "AML.T0015", "AML.T0040"],
            atlas_mitigations=["AML.M0003", "AML.M0015", "AML.M0010"],
            cwe=["CWE-1039"],
        ),
        knowledge=Knowledge.BLACK_BOX,
        needs=frozenset({Capability.LABELS}),
        cost=Cost.EXPENSIVE,
        remedies=("AML.M0003", "AML.M0015", "AML.M0010"),
    )
    Params: ClassVar[type[ProbeParams]] = HopSkipJumpParams

    def resolved_budgets(self, units: BudgetUnits | None = None) -> list[float]:
        """The budgets to report, defaults (fractions of the range) converted to ``units``."""
        p: HopSkipJumpParams = self.validated_params()
        if p.budgets:
            return list(p.budgets)
        defaults = list(_DEFAULT_BUDGETS[p.norm])
        return defaults if units is None else units.from_fractions(defaults, who=self.meta.id)

    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        """Find minimal adversarial perturbations and report robust accuracy per budget."""
        p: HopSkipJumpParams = self.validated_params()
        x_np, y_np = data.test_sample(p.n_samples, seed=context.seed)
        spec = target.input_spec
        reference = np.concatenate([data.x_train, data.x_test]) if len(data.x_train) else x_np
        budgets, scale_np, units = blackbox_budgets(
            self.meta.id, spec, p.units, reference, p.budgets, _DEFAULT_BUDGETS[p.norm], p.norm
        )
        dev = target_device(target)
        x = torch.as_tensor(np.asarray(x_np, dtype=np.float32), device=dev)
        y = torch.as_tensor(np.asarray(y_np, dtype=np.int64), device=dev)
        lo, hi = bounds_tensors(target, device=dev)
        ref = torch.as_tensor(np.asarray(reference, dtype=np.float32), device=dev)
        lo = torch.where(torch.isfinite(lo), lo, ref.amin(dim=0))
        hi = torch.where(torch.isfinite(hi), hi, ref.amax(dim=0))
        mutable = spec.mutable_mask()
        held = ""
        if len(spec.shape) == 1 and (spec.integer or spec.one_hot_groups):
            mutable &= ~spec.integer_mask()
            for group in spec.one_hot_indices():
                mutable[group] = False
            held = " Integer and one-hot features were held fixed."
        if not mutable.any():
            return [self._inconclusive(target, context, "no feature may be changed")]
        mask = torch.as_tensor(mutable.reshape(spec.shape), device=dev)
        with context.progress(total=None, description="hop-skip-jump") as bar:
            try:
                r = hop_skip_jump(
                    label_oracle(target),
                    x,
                    y,
                    norm=p.norm,
                    lower=lo,
                    upper=hi,
                    max_queries=p.max_queries,
                    seed=context.seed,
                    scale=None if scale_np is None else torch.as_tensor(scale_np, device=dev),
                    mask=mask,
                    budgets=budgets,
                    max_total_queries=target.budget.remaining,
                    progress=lambda _: bar.advance(1),
                )
            except QueryBudgetExceeded as err:
                return [self._inconclusive(target, context, str(err).rstrip("."))]
        partial = (
            " Partial result: the target's query budget ran out."
            if r.stopped == "query_budget"
            else ""
        )
        return [
            self._verdict(
                target, context, p, budgets, units, held + partial, x_np, r, bool(partial)
            )
        ]

    def _inconclusive(self, target: Target, context: ProbeContext, why: str, **kw: Any) -> Finding:
        return self.finding(
            target,
            context,
            status=Status.INCONCLUSIVE,
            summary=f"HopSkipJump was inconclusive: {why}.",
            **kw,
        )

    def _verdict(
        self,
        target: Target,
        context: ProbeContext,
        p: HopSkipJumpParams,
        budgets: list[float],
        units: BudgetUnits,
        note: str,
        x: np.ndarray,
        r: Any,
        partial: bool,
    ) -> Finding:
        n = len(x)
        correct = r.clean_correct.cpu().numpy()
        dist = r.distance.cpu().numpy()
        n_correct = int(correct.sum())
        words = units.describe()
        how = f"HopSkipJump ({p.norm}, {words}, at most {p.max_queries} label queries per row)"
        metrics = [
            rate_metric(
                "clean_accuracy",
                n_correct,
                n,
                f"Share of {n} sampled rows classified correctly without attack; Wilson 95% "
                "interval.",
            )
        ]
        for eps in budgets:
            broken = int((correct & (dist <= eps * (1 + 1e-6))).sum())
            metrics.append(
                rate_metric(
                    f"robust_accuracy@{eps:g}",
                    n_correct - broken,
                    n,
                    f"Share of {n} sampled rows for which {how} found no misclassified input "
                    f"within radius {eps:g}; Wilson 95% interval.",
                )
            )
        found = dist[correct & np.isfinite(dist)]
        for key, label, pct in (("median", "Median", 50), ("q1", "First quartile", 25)):
            metrics.append(
                Metric(
                    name=f"min_perturbation_{key}",
                    value=float(np.percentile(found, pct)) if len(found) else None,
                    unit=f"{p.norm} norm",
                    definition=f"{label} of the smallest evading perturbation {how} found per "
                    f"correctly classified row ({len(found)} rows with one).",
                    n=len(found),
                )
            )
        top = budgets[-1]
        hits = r.queries_to_budget[:, -1].cpu().numpy()
        won = correct & (hits >= 0)
        metrics += query_metrics(hits[won], f"HopSkipJump to reach radius {top:g}")
        success = int(won.sum())
        metrics.append(
            rate_metric(
                "attack_success_rate",
                success,
                n_correct,
                f"Share of the {n_correct} correctly classified rows {how} misclassified within "
                f"radius {top:g}; Wilson 95% interval.",
            )
        )
        grid = np.linspace(0, top * 1.5, 31)
        curve = [(n_correct - int((correct & (dist <= g)).sum())) / n for g in grid]
        series = [
            Series(
                name="robust accuracy under HopSkipJump",
                x_label=f"{p.norm} radius ({words})",
                y_label="robust accuracy",
                x=[float(g) for g in grid],
                y=curve,
            )
        ]
        evidence = [
            *self._evidence(target, context, x, r.x_adv.cpu().numpy(), correct, dist),
            units_evidence(units),
        ]
        fields: dict[str, Any] = {"metrics": metrics, "series": series, "evidence": evidence}
        if n_correct / n < 1.0 / target.n_classes + 0.1:
            return self._inconclusive(
                target,
                context,
                f"clean accuracy on the sample is {n_correct / n:.2f}, close to chance; check "
                "that the data matches the model's input space",
                **fields,
            )
        rate_ = success / n_correct
        median = float(np.median(found)) if len(found) else float("inf")
        if rate_ <= p.max_success_rate:
            return self.finding(
                target,
                context,
                status=Status.INCONCLUSIVE if partial else Status.NOT_VULNERABLE,
                summary=f"With labels alone, HopSkipJump evaded {success} of {n_correct} correctly "
                f"classified rows ({rate_:.0%}) within {p.norm} radius {top:g} ({words}), within "
                f"the accepted {p.max_success_rate:.0%}; median smallest perturbation {median:.3g}."
                + note,
                **fields,
            )
        q = hits[won]
        rating = evasion_rating(
            rate_, float(np.median(q)) if len(q) else None, context, list(self.meta.catalog.owasp)
        )
        return self.finding(
            target,
            context,
            status=Status.VULNERABLE,
            severity=rating.severity,
            severity_rationale=list(rating.rationale),
            summary=f"Label-only evasion: HopSkipJump misclassified {success} of {n_correct} "
            f"correctly classified rows ({rate_:.0%}) within {p.norm} radius {top:g} ({words}); "
            f"the median smallest evading perturbation is {median:.3g}. Harden the model "
            "(adversarial training) and limit or monitor queries." + note,
            **fields,
        )

    def _evidence(
        self,
        target: Target,
        context: ProbeContext,
        x: np.ndarray,
        x_adv: np.ndarray,
        correct: np.ndarray,
        dist: np.ndarray,
    ) -> list[Evidence]:
        order = np.argsort(np.where(correct & np.isfinite(dist), dist, np.inf))
        pick = [i for i in order[:3] if correct[i] and np.isfinite(dist[i])]
        if not pick:
            return []
        spec = target.input_spec
        if image_like(spec.shape):
            lo, hi = spec.bounds()
            bounds = (
                float(np.min(lo)) if np.isfinite(lo).all() else float(x.min()),
                float(np.max(hi)) if np.isfinite(hi).all() else float(x.max()),
            )
            item = image_evidence(
                context,
                self.meta.id,
                "hop_skip_jump_examples.png",
                x[pick],
                x_adv[pick],
                "The closest adversarial examples HopSkipJump found from labels alone.",
                bounds=bounds,
            )
            return [item] if item is not None else []
        if len(spec.shape) == 1:
            names = spec.feature_names or [f"x{i}" for i in range(spec.n_features)]
            return [
                table_evidence(
                    names,
                    x[pick],
                    x_adv[pick],
                    ~spec.mutable_mask(),
                    "The closest adversarial rows HopSkipJump found; immutable features are "
                    "unchanged.",
                )
            ]
        return []
