"""White-box gradient evasion probes: ``evasion.pgd`` and ``evasion.apgd``.

Each attacks a sample of correctly classified test rows of a torch target through
its gradients, at a list of perturbation budgets (in ``units``, the rule of
:mod:`bastion.attacks.evasion.units`), and reports robust accuracy per budget
with Wilson intervals, the robust-accuracy-vs-budget curve, a few adversarial
examples and the gradient-masking checks of :mod:`bastion.attacks.evasion.sanity`.
Queries: every forward pass is charged to the target, one query per row.

Examples
--------
>>> from bastion.catalog import load_catalog
>>> from bastion.testing import check_probe
>>> [check_probe(c, load_catalog()) for c in (PGDProbe, APGDProbe)]
[[], []]
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar

import torch
from pydantic import Field

from bastion.attacks.evasion.apgd import apgd
from bastion.attacks.evasion.apgd_targeted import apgd_targeted
from bastion.attacks.evasion.fgsm import fgsm
from bastion.attacks.evasion.pgd import pgd
from bastion.attacks.evasion.sanity import (
    SanityFlag,
    budget_curve_flags,
    single_step_flags,
)
from bastion.data.dataset import Dataset
from bastion.findings import CatalogRefs, Finding, Metric, Series, wilson_interval
from bastion.probes.base import Cost, Knowledge, Probe, ProbeMeta, ProbeParams
from bastion.probes.context import ProbeContext
from bastion.probes.evasion.outcome import NORM_NAMES, BudgetTracker, verdict
from bastion.probes.evasion.runner import guarded, in_batches, inconclusive
from bastion.probes.evasion.setup import EvasionParams, Setup, prepare
from bastion.targets.base import Capability, Target

__all__ = [
    "WHITE_BOX_CATALOG",
    "APGDParams",
    "APGDProbe",
    "PGDParams",
    "PGDProbe",
]

#: Catalog ids of the white-box evasion probes.
WHITE_BOX_CATALOG = CatalogRefs(
    owasp=["ML01"],
    failure_modes=["FM1"],
    atlas_techniques=["AML.T0043", "AML.T0043.000", "AML.T0015"],
    atlas_mitigations=["AML.M0003", "AML.M0015"],
    cwe=["CWE-1039"],
)
REMEDIES = ("AML.M0003", "AML.M0015")
_CURVE_RATIO = 5.0


def curve_flags(setup: Setup, tracker: BudgetTracker) -> list[SanityFlag]:
    budgets = tracker.budgets
    if budgets[-1] < _CURVE_RATIO * budgets[0]:
        return []
    robust = [setup.n_correct - c for c in tracker.counts]
    return budget_curve_flags(
        [budgets[0], budgets[-1]], [robust[0], robust[-1]], n_correct=setup.n_correct
    )


class PGDParams(EvasionParams):
    """Parameters of :class:`PGDProbe`."""

    n_samples: int = Field(500, ge=10, le=100_000, description="Test rows to attack.")
    steps: int = Field(40, ge=1, le=10_000, description="PGD steps per restart.")
    restarts: int = Field(1, ge=1, le=100, description="PGD random restarts.")


class PGDProbe(Probe):
    """Robust accuracy under FGSM and PGD across perturbation budgets.

    FGSM (Goodfellow et al., ICLR 2015) and PGD with random restarts and per-sample
    early stop (Madry et al., ICLR 2018) under an L∞ or L2 budget. A row counts as
    broken at a budget when either attack broke it there or at a smaller budget
    (per-sample worst case). FGSM's own curve is reported too: a single step beating
    the iterative attack is flagged as a sign of gradient masking.
    """

    meta: ClassVar[ProbeMeta] = ProbeMeta(
        id="evasion.pgd",
        title="Evasion: robust accuracy under FGSM and PGD",
        catalog=WHITE_BOX_CATALOG,
        knowledge=Knowledge.WHITE_BOX,
        needs=frozenset({Capability.GRADIENTS}),
        cost=Cost.MODERATE,
        remedies=REMEDIES,
        alternative="evasion.square",
    )
    Params: ClassVar[type[ProbeParams]] = PGDParams

    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        """Sweep the budgets with FGSM and PGD; one finding (variant = norm)."""
        p: PGDParams = self.validated_params()
        return guarded(self, target, context, p.norm, lambda: self._run(target, data, context, p))

    def _run(
        self, target: Target, data: Dataset, context: ProbeContext, p: PGDParams
    ) -> list[Finding]:
        setup = prepare(self.meta.id, target, data, p, context.seed)
        if isinstance(setup, str):
            return inconclusive(self, target, context, p.norm, setup)
        budgets, dom, f = setup.budgets, setup.domain, setup.model
        tracker = BudgetTracker(budgets, setup.x, setup.correct)
        ok = setup.correct.nonzero().squeeze(1)
        fgsm_hits: list[int] = []
        flags = list(setup.flags)
        with context.progress(total=len(budgets), description=self.meta.id) as bar:
            for k, eps in enumerate(budgets):
                idx = tracker.standing()
                adv, hit, _ = in_batches(
                    partial(
                        pgd,
                        f,
                        eps=eps,
                        norm=p.norm,
                        steps=p.steps,
                        restarts=p.restarts,
                        domain=dom,
                        seed=context.seed + k,
                    ),
                    setup.x,
                    setup.y,
                    idx,
                    p.batch_size,
                )
                tracker.record(eps, idx, adv, hit)
                f_adv, f_hit, _ = in_batches(
                    partial(fgsm, f, eps=eps, norm=p.norm, domain=dom),
                    setup.x,
                    setup.y,
                    ok,
                    p.batch_size,
                )
                fgsm_hits.append(int(f_hit.sum()))
                fgsm_only = torch.zeros_like(setup.correct)
                fgsm_only[ok[f_hit]] = True
                fgsm_only[idx[hit]] = False
                flags += single_step_flags(eps, int(fgsm_only[idx].sum()), len(idx))
                tracker.record(eps, ok, f_adv, f_hit)
                tracker.close_budget()
                bar.advance(1)
        flags += curve_flags(setup, tracker)
        label = f"PGD ({p.steps} steps, {p.restarts} restart(s)) with FGSM"
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
                series=[_fgsm_series(p, setup, budgets, fgsm_hits)],
            )
        ]


def _fgsm_series(p: EvasionParams, setup: Setup, budgets: list[float], hits: list[int]) -> Series:
    n, n_ok = setup.n, setup.n_correct
    robust = [n_ok, *(n_ok - h for h in hits)]
    ivs = [wilson_interval(r, n) for r in robust]
    return Series(
        name=f"robust accuracy vs {NORM_NAMES[p.norm]} budget (FGSM alone)",
        x_label=setup.units.axis_label(p.norm),
        y_label="robust accuracy",
        x=[0.0, *budgets],
        y=[r / n for r in robust],
        y_low=[iv.low for iv in ivs],
        y_high=[iv.high for iv in ivs],
    )


class APGDParams(EvasionParams):
    """Parameters of :class:`APGDProbe`."""

    n_samples: int = Field(100, ge=10, le=100_000, description="Test rows to attack.")
    steps: int = Field(100, ge=1, le=10_000, description="APGD iterations per run.")
    n_target_classes: int = Field(9, ge=0, le=1000, description="APGD-T target classes (0: off).")
    restarts: int = Field(1, ge=1, le=100, description="Runs per attack (per target class).")


class APGDProbe(Probe):
    """Robust accuracy under APGD-CE and APGD-T across perturbation budgets.

    Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks", ICML 2020: step-size-free PGD with momentum and
    checkpointed step halving, with the cross-entropy loss (APGD-CE) and then the
    targeted DLR loss towards the top 9 other classes (APGD-T) on the rows APGD-CE
    left standing. Per-sample worst case over both attacks and all smaller budgets.
    """

    meta: ClassVar[ProbeMeta] = ProbeMeta(
        id="evasion.apgd",
        title="Evasion: robust accuracy under APGD-CE and APGD-T",
        catalog=WHITE_BOX_CATALOG,
        knowledge=Knowledge.WHITE_BOX,
        needs=frozenset({Capability.GRADIENTS}),
        cost=Cost.EXPENSIVE,
        remedies=REMEDIES,
        alternative="evasion.square",
    )
    Params: ClassVar[type[ProbeParams]] = APGDParams

    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        """Sweep the budgets with APGD-CE then APGD-T; one finding (variant = norm)."""
        p: APGDParams = self.validated_params()
        return guarded(self, target, context, p.norm, lambda: self._run(target, data, context, p))

    def _run(
        self, target: Target, data: Dataset, context: ProbeContext, p: APGDParams
    ) -> list[Finding]:
        setup = prepare(self.meta.id, target, data, p, context.seed)
        if isinstance(setup, str):
            return inconclusive(self, target, context, p.norm, setup)
        budgets, dom, f = setup.budgets, setup.domain, setup.model
        tracker = BudgetTracker(budgets, setup.x, setup.correct)
        extra = 0
        with context.progress(total=len(budgets), description=self.meta.id) as bar:
            for k, eps in enumerate(budgets):
                idx = tracker.standing()
                adv, hit, _ = in_batches(
                    partial(
                        apgd,
                        f,
                        eps=eps,
                        norm=p.norm,
                        steps=p.steps,
                        restarts=p.restarts,
                        domain=dom,
                        seed=context.seed + k,
                    ),
                    setup.x,
                    setup.y,
                    idx,
                    p.batch_size,
                )
                tracker.record(eps, idx, adv, hit)
                if p.n_target_classes:
                    idx = tracker.standing()
                    adv, hit, _ = in_batches(
                        partial(
                            apgd_targeted,
                            f,
                            eps=eps,
                            norm=p.norm,
                            steps=p.steps,
                            restarts=p.restarts,
                            n_target_classes=p.n_target_classes,
                            domain=dom,
                            seed=context.seed + k,
                        ),
                        setup.x,
                        setup.y,
                        idx,
                        p.batch_size,
                    )
                    tracker.record(eps, idx, adv, hit)
                    extra += int(hit.sum())
                tracker.close_budget()
                bar.advance(1)
        flags = [*setup.flags, *curve_flags(setup, tracker)]
        label = (
            "APGD-CE"
            + (f" and APGD-T ({p.n_target_classes} targets)" if p.n_target_classes else "")
            + f", {p.steps} iterations"
        )
        more = Metric(
            name="apgd_t_extra",
            value=extra,
            unit="rows",
            definition="Rows APGD-T broke that APGD-CE had left standing, summed over budgets.",
        )
        return [
            verdict(
                self, target, context, p, setup, tracker, label=label, flags=flags, metrics=[more]
            )
        ]
