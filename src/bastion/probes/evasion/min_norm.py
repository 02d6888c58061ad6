"""``evasion.min_norm``: the distribution of minimal adversarial perturbations (FAB).

Examples
--------
>>> from bastion.catalog import load_catalog
>>> from bastion.testing import check_probe
>>> check_probe(MinNormProbe, load_catalog())
[]
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field

from bastion.attacks.evasion.fab import fab
from bastion.attacks.evasion.result import AttackResult
from bastion.attacks.evasion.sanity import min_norm_flags
from bastion.data.dataset import Dataset
from bastion.findings import Finding, Metric, Series
from bastion.probes.base import Cost, Knowledge, Probe, ProbeMeta, ProbeParams
from bastion.probes.context import ProbeContext
from bastion.probes.evasion.gradient import REMEDIES, WHITE_BOX_CATALOG
from bastion.probes.evasion.outcome import NORM_NAMES, BudgetTracker, verdict
from bastion.probes.evasion.runner import guarded, in_batches, inconclusive
from bastion.probes.evasion.setup import EvasionParams, Setup, prepare
from bastion.targets.base import Capability, Target

__all__ = ["MinNormParams", "MinNormProbe"]


class MinNormParams(EvasionParams):
    """Parameters of :class:`MinNormProbe`."""

    steps: int = Field(100, ge=1, le=10_000, description="FAB iterations per run.")
    restarts: int = Field(1, ge=1, le=100, description="FAB runs per row.")


class MinNormProbe(Probe):
    """Distribution of the smallest perturbation that changes each prediction (FAB).

    Croce & Hein, "Minimally distorted adversarial examples with a fast adaptive
    boundary attack", ICML 2020: FAB searches, without a budget, for the closest
    point across the decision boundary of each correctly classified row. The probe
    reports the median and quartiles of these minimal perturbations and their
    cumulative distribution; robust accuracy at each budget is the share of rows
    whose minimal perturbation exceeds it. An unbounded attack that finds nothing for
    many rows is flagged (any classifier can be fooled by a large enough change).
    """

    meta: ClassVar[ProbeMeta] = ProbeMeta(
        id="evasion.min_norm",
        title="Evasion: minimal adversarial perturbations (FAB)",
        catalog=WHITE_BOX_CATALOG,
        knowledge=Knowledge.WHITE_BOX,
        needs=frozenset({Capability.GRADIENTS}),
        cost=Cost.MODERATE,
        remedies=REMEDIES,
        alternative="evasion.square",
    )
    Params: ClassVar[type[ProbeParams]] = MinNormParams

    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        """Run FAB on every correctly classified row; one finding (variant = norm)."""
        p: MinNormParams = self.validated_params()
        return guarded(self, target, context, p.norm, lambda: self._run(target, data, context, p))

    def _run(
        self, target: Target, data: Dataset, context: ProbeContext, p: MinNormParams
    ) -> list[Finding]:
        setup = prepare(self.meta.id, target, data, p, context.seed)
        if isinstance(setup, str):
            return inconclusive(self, target, context, p.norm, setup)
        budgets, dom, f = setup.budgets, setup.domain, setup.model
        tracker = BudgetTracker(budgets, setup.x, setup.correct)
        ok = setup.correct.nonzero().squeeze(1)
        with context.progress(total=len(ok), description=self.meta.id) as bar:

            def attack(xs: torch.Tensor, ys: torch.Tensor) -> AttackResult:
                r = fab(
                    f,
                    xs,
                    ys,
                    norm=p.norm,
                    steps=p.steps,
                    restarts=p.restarts,
                    eps=budgets[-1],
                    domain=dom,
                    seed=context.seed,
                )
                bar.advance(len(xs))
                return r

            adv, _, norms = in_batches(attack, setup.x, setup.y, ok, p.batch_size)
        for eps in budgets:
            tracker.record(eps, ok, adv, norms <= eps)
            tracker.close_budget()
        flags = [*setup.flags, *min_norm_flags("FAB", int(torch.isinf(norms).sum()), len(ok))]
        metrics, series = _norm_distribution(p, setup, norms)
        label = f"FAB ({p.steps} iterations, minimal perturbation)"
        return [
            verdict(
                self,
                target,
                context,
                p,
                setup,
                tracker,
                label=label,
                flags=flags,
                metrics=metrics,
                series=[series],
            )
        ]


def _norm_distribution(
    p: EvasionParams, setup: Setup, norms: torch.Tensor
) -> tuple[list[Metric], Series]:
    norm = NORM_NAMES[p.norm]
    units = setup.units.describe()
    values = norms.double().cpu()
    n = len(values)
    metrics = []
    for name, q in (
        ("min_perturbation_q1", 0.25),
        ("min_perturbation_median", 0.5),
        ("min_perturbation_q3", 0.75),
    ):
        v = float(values.quantile(q)) if n else float("inf")
        metrics.append(
            Metric(
                name=name,
                value=round(v, 6) if v != float("inf") else None,
                unit=f"{norm} ({units})",
                definition=f"{int(q * 100)}th percentile of the smallest {norm} perturbation FAB "
                f"found for each of the {n} correctly classified rows (None: beyond what FAB found "
                "for that share of rows).",
                n=n,
            )
        )
    found = values[torch.isfinite(values)].sort().values
    metrics.append(
        Metric(
            name="min_perturbation_not_found",
            value=n - len(found),
            unit="rows",
            definition="Correctly classified rows for which FAB found no "
            "adversarial example at all.",
            n=n,
        )
    )
    step = max(1, len(found) // 100)
    xs = found[::step].tolist()
    ys = [(i * step + 1) / max(n, 1) for i in range(len(xs))]
    series = Series(
        name=f"share of rows broken within a perturbation of size x ({norm}, FAB)",
        x_label=f"{norm} perturbation ({units})",
        y_label="share of correctly classified rows",
        x=xs,
        y=ys,
    )
    return metrics, series
