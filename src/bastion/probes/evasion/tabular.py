"""``evasion.tabular``: constrained evasion of tabular models, every row valid.

Examples
--------
>>> TabularEvasionProbe(budgets=[0.1, 0.01]).validated_params().budgets
[0.01, 0.1]
>>> from bastion.targets import FakeTarget
>>> TabularEvasionProbe().not_applicable_reason(FakeTarget.linear(n_features=3, n_classes=2))
>>> from bastion.targets import InputSpec
>>> img = FakeTarget(lambda x: x.reshape(len(x), -1)[:, :2], input_spec=InputSpec(shape=(1, 4, 4)),
...                  classes=["a", "b"])
>>> print(TabularEvasionProbe().not_applicable_reason(img))  # doctest: +NORMALIZE_WHITESPACE
evasion.tabular applies to tabular rows (a 1-D input spec); this target takes (1, 4, 4)
— use evasion.square or evasion.hop_skip_jump
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, ClassVar

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from bastion.attacks.evasion.constrained_pgd import ConstrainedResult, constrained_attack
from bastion.attacks.evasion.constraints import Categorical, FeatureConstraints
from bastion.attacks.evasion.queries import target_device
from bastion.attacks.evasion.units import BudgetUnits, Units
from bastion.data.dataset import Dataset
from bastion.errors import DataError, QueryBudgetExceeded, UsageError
from bastion.findings import CatalogRefs, Finding, Metric, Series, Status
from bastion.probes.base import Cost, Knowledge, Probe, ProbeMeta, ProbeParams
from bastion.probes.context import ProbeContext
from bastion.probes.evasion.blackbox_report import (
    blackbox_budgets,
    constraint_evidence,
    evasion_rating,
    query_metrics,
    rate_metric,
)
from bastion.probes.evasion.evidence import units_evidence
from bastion.targets.base import Capability, Target

__all__ = ["TabularEvasionParams", "TabularEvasionProbe"]

_DEFAULT_BUDGETS = [0.001, 0.003, 0.01, 0.03, 0.1]


class TabularEvasionParams(ProbeParams):
    """Parameters of :class:`TabularEvasionProbe`."""

    budgets: list[Annotated[float, Field(gt=0)]] | None = Field(
        None,
        min_length=1,
        max_length=10,
        description="Largest change of each feature (L∞) in 'units'; None: 0.001, 0.003, "
        "0.01, 0.03, 0.1 of each feature's range.",
    )
    units: Units = Field(
        "auto",
        description="Budget units: 'auto' (raw when every feature shares one finite range, "
        "else 'range'), 'raw' or 'range' (fractions of each feature's range).",
    )
    n_samples: int = Field(200, ge=1, le=100_000, description="Test rows to sample.")
    target_class: str | None = Field(
        None, description="Class the attacker wants (e.g. 'benign'); None: any wrong class."
    )
    steps: int = Field(50, ge=1, le=1000, description="PGD iterations (gradient targets).")
    restarts: int = Field(1, ge=1, le=10, description="PGD random restarts.")
    n_queries: int = Field(
        500, ge=2, le=100_000, description="Queries per row (black-box fallback)."
    )
    categorical: Categorical = Field("free", description="May one-hot groups switch category?")
    max_success_rate: float = Field(
        0.1, ge=0, lt=1, description="Largest acceptable share of attacked rows evaded."
    )

    @field_validator("budgets")
    @classmethod
    def _sorted(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("must not repeat a budget")
        return None if v is None else sorted(v)

    @model_validator(mode="after")
    def _fractions(self) -> TabularEvasionParams:
        if self.units == "range" and self.budgets and self.budgets[-1] > 1:
            raise ValueError("budgets in units 'range' are fractions and must lie in (0, 1]")
        return self


class TabularEvasionProbe(Probe):
    """Evasion of a tabular model with adversarial rows that respect every constraint.

    Constrained PGD (Madry et al., ICLR 2018) in a constrained feature space
    (Simonetto et al., "A Unified Framework for Adversarial Attack and Defense in
    Constrained Feature Space", IJCAI 2022): immutable features never change, integer
    features stay integers, one-hot groups keep one hot bit, values stay inside the
    declared bounds, and each feature moves at most ``budget`` times its range. Every
    returned row is checked against every constraint and the check is reported.

    Torch targets are attacked with gradients (white-box). Targets without gradients
    but with scores (scikit-learn, ONNX, HTTP) get the stated black-box fallback: the
    Square attack's random search (Andriushchenko et al., ECCV 2020) with the same
    repair applied to every proposal. Label-only targets are not applicable (use
    ``evasion.hop_skip_jump``).

    With ``target_class`` (say ``"benign"`` for an intrusion or fraud detector) only
    rows of other classes are attacked and success means being classified as that
    class: the OWASP ML01 scenario of traffic crafted to slip past an intrusion
    detector while the fields the attacker cannot change stay as they are.
    """

    meta: ClassVar[ProbeMeta] = ProbeMeta(
        id="evasion.tabular",
        title="Constrained evasion of a tabular model (valid rows only)",
        catalog=CatalogRefs(
            owasp=["ML01"],
            failure_modes=["FM1"],
            atlas_techniques=["AML.T0043", "AML.T0043.000", "AML.T0043.001", "AML.T0015"],
            atlas_mitigations=["AML.M0003", "AML.M0015", "AML.M0010"],
            cwe=["CWE-1039"],
        ),
        knowledge=Knowledge.BLACK_BOX,
        needs=frozenset({Capability.PROBABILITIES}),
        cost=Cost.MODERATE,
        remedies=("AML.M0003", "AML.M0015"),
        alternative="evasion.hop_skip_jump (labels only)",
    )
    Params: ClassVar[type[ProbeParams]] = TabularEvasionParams

    def not_applicable_reason(self, target: Target) -> str | None:
        """Tabular (1-D) inputs only, and scores or gradients needed."""
        if len(target.input_spec.shape) != 1:
            return (
                f"{self.meta.id} applies to tabular rows (a 1-D input spec); this target takes "
                f"{tuple(target.input_spec.shape)} — use evasion.square or evasion.hop_skip_jump"
            )
        return super().not_applicable_reason(target)

    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        """Attack at every budget; report success, validity and the rows found."""
        p: TabularEvasionParams = self.validated_params()
        reason = self.not_applicable_reason(target)
        if reason is not None:
            raise UsageError(f"{reason}.")
        goal = None
        if p.target_class is not None:
            if p.target_class not in target.classes:
                raise UsageError(
                    f"The 'target_class' parameter of {self.meta.id} must be one of the "
                    f"target's classes {list(target.classes)}; got {p.target_class!r}."
                )
            goal = target.classes.index(p.target_class)
        x_np, y_np = data.test_sample(None, seed=context.seed)
        if goal is not None:
            keep = y_np != goal
            x_np, y_np = x_np[keep], y_np[keep]
        if len(x_np) == 0:
            raise DataError(f"The test data has no rows outside class {p.target_class!r}.")
        if len(x_np) > p.n_samples:
            pick = np.sort(context.rng(1).choice(len(x_np), p.n_samples, replace=False))
            x_np, y_np = x_np[pick], y_np[pick]
        reference = np.concatenate([data.x_train, data.x_test]) if len(data.x_train) else x_np
        dev = target_device(target)
        fc = FeatureConstraints.from_spec(
            target.input_spec, reference, categorical=p.categorical, device=dev
        )
        budgets, scale, units = blackbox_budgets(
            self.meta.id, target.input_spec, p.units, reference, p.budgets, _DEFAULT_BUDGETS, "linf"
        )
        if scale is None:  # raw units: every feature's budget unit is 1
            fc = dataclasses.replace(fc, scale=torch.ones_like(fc.scale))
        x = torch.as_tensor(np.asarray(x_np, dtype=np.float32), device=dev)
        y = torch.as_tensor(np.asarray(y_np, dtype=np.int64), device=dev)
        y_goal = None if goal is None else torch.full_like(y, goal)
        n = len(x)
        won_at = np.full(n, -1)
        queries_to = np.zeros(n, dtype=np.int64)
        x_adv = x.clone()
        correct: np.ndarray | None = None
        results: list[ConstrainedResult] = []
        done: list[float] = []
        partial = ""
        with context.progress(total=len(budgets), description="tabular evasion") as bar:
            for k, eps in enumerate(budgets):
                idx = np.arange(n) if correct is None else np.nonzero(correct & (won_at < 0))[0]
                if len(idx) == 0:
                    done.append(eps)
                    bar.advance(1)
                    continue
                t_idx = torch.as_tensor(idx, device=dev)
                try:
                    r = constrained_attack(
                        target,
                        x[t_idx],
                        y[t_idx],
                        fc,
                        eps=eps,
                        steps=p.steps,
                        n_queries=p.n_queries,
                        restarts=p.restarts,
                        seed=context.seed + k,
                        y_target=None if y_goal is None else y_goal[t_idx],
                        max_total_queries=target.budget.remaining,
                    )
                except QueryBudgetExceeded:
                    partial = f"the target's query budget ran out before budget {eps:g}"
                    break
                results.append(r)
                if correct is None:
                    correct = r.clean_correct.cpu().numpy()
                new = (r.success & r.clean_correct).cpu().numpy()
                won_at[idx[new]] = k
                queries_to[idx[new]] = r.queries.cpu().numpy()[new]
                x_adv[t_idx[torch.as_tensor(new, device=dev)]] = r.x_adv[
                    torch.as_tensor(new, device=dev)
                ]
                bar.advance(1)
                done.append(eps)  # a cut-short budget still counts: its rates are bounds
                if r.stopped == "query_budget":
                    partial = f"the target's query budget ran out during budget {eps:g}"
                    break
        if correct is None:
            return [
                self.finding(
                    target,
                    context,
                    status=Status.INCONCLUSIVE,
                    summary=f"The constrained attack was inconclusive: {partial}.",
                )
            ]
        final = fc.validate(x_adv, x)
        return [
            self._verdict(
                target,
                context,
                p,
                x_np,
                x_adv.cpu().numpy(),
                correct,
                won_at,
                queries_to,
                results,
                done,
                final.violations,
                final.n_valid,
                partial,
                units,
            )
        ]

    def _verdict(
        self,
        target: Target,
        context: ProbeContext,
        p: TabularEvasionParams,
        x: np.ndarray,
        x_adv: np.ndarray,
        correct: np.ndarray,
        won_at: np.ndarray,
        queries_to: np.ndarray,
        results: list[ConstrainedResult],
        done: list[float],
        violations: dict[str, int],
        n_valid: int,
        partial: str,
        units: BudgetUnits,
    ) -> Finding:
        n, n_correct = len(x), int(correct.sum())
        method = results[0].method
        how = (
            "constrained PGD with gradients"
            if method == "constrained-pgd"
            else "the black-box fallback (Square random search with constraint repair)"
        )
        goal = (
            f"classified as {p.target_class!r}" if p.target_class is not None else "misclassified"
        )
        rows = (
            f"rows of other classes the model did not already call {p.target_class!r}"
            if p.target_class
            else "correctly classified rows"
        )
        metrics = [
            rate_metric(
                "clean_accuracy",
                n_correct,
                n,
                f"Share of {n} sampled rows not already {goal} before the attack; Wilson 95% "
                "interval.",
            )
        ]
        xs: list[float] = []
        ys: list[float] = []
        for k, eps in enumerate(done):
            hit = int(((won_at >= 0) & (won_at <= k)).sum())
            metrics.append(
                rate_metric(
                    f"attack_success_rate@{eps:g}",
                    hit,
                    n_correct,
                    f"Share of the {n_correct} {rows} {goal} by {how}, every feature moved by at "
                    f"most {eps:g} ({units.describe()}); Wilson 95% interval.",
                )
            )
            xs.append(eps)
            ys.append(hit / n_correct if n_correct else 0.0)
        metrics.append(
            rate_metric(
                "valid_rows",
                n_valid,
                n,
                "Share of returned rows that pass every constraint check (immutable, bounds, "
                "integer, one-hot); Wilson 95% interval.",
            )
        )
        metrics += [
            Metric(
                name=f"violations_{kind}",
                value=count,
                unit="rows",
                definition=f"Returned rows that break the {kind.replace('_', '-')} constraint.",
                n=n,
            )
            for kind, count in violations.items()
            if kind != "budget"
        ]
        metrics.append(
            Metric(
                name="method",
                value=method,
                definition="constrained-pgd (gradients) or constrained-square (black-box "
                "fallback for targets without gradients).",
            )
        )
        won = won_at >= 0
        metrics += query_metrics(queries_to[won], method)
        series = [
            Series(
                name=f"constrained evasion success ({method})",
                x_label=f"largest change per feature ({units.describe()})",
                y_label="attack success rate",
                x=xs,
                y=ys,
            )
        ]
        evidence = [
            *constraint_evidence(target.input_spec, x, x_adv, won, violations, n_valid),
            units_evidence(units),
        ]
        fields: dict[str, Any] = {"metrics": metrics, "series": series, "evidence": evidence}
        note = f" Partial result: {partial}." if partial else ""
        success = int(won.sum())
        rate_ = success / n_correct if n_correct else 0.0
        top = done[-1]  # a result exists, so at least one budget was attempted
        if n_correct == 0:
            return self.finding(
                target,
                context,
                status=Status.INCONCLUSIVE,
                summary=f"No sampled row could be attacked: all were already {goal}.{note}",
                **fields,
            )
        if rate_ <= p.max_success_rate:
            return self.finding(
                target,
                context,
                status=Status.INCONCLUSIVE if partial else Status.NOT_VULNERABLE,
                summary=f"Valid adversarial rows ({how}) {goal} {success} of {n_correct} {rows} "
                f"({rate_:.0%}) with changes up to {top:g} ({units.describe()}), within the "
                f"accepted {p.max_success_rate:.0%}.{note}",
                **fields,
            )
        q = queries_to[won]
        checked = (
            "every returned row passing every constraint check (immutable features untouched)"
            if n_valid == n
            else f"only {n_valid} of {n} returned rows passing every constraint check"
        )
        rating = evasion_rating(
            rate_, float(np.median(q)) if len(q) else None, context, list(self.meta.catalog.owasp)
        )
        return self.finding(
            target,
            context,
            status=Status.VULNERABLE,
            severity=rating.severity,
            severity_rationale=list(rating.rationale),
            summary=f"{success} of {n_correct} {rows} ({rate_:.0%}) were {goal} by valid "
            f"adversarial rows ({how}) changing each feature by at most {top:g} "
            f"({units.describe()}) "
            f"({ys[0]:.0%} already at {xs[0]:g}), "
            f"{checked}; harden the model (adversarial training on constrained examples) "
            f"and monitor inputs.{note}",
            **fields,
        )
