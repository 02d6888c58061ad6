"""``evasion.auto``: the standard AutoAttack ensemble as a probe.

Examples
--------
>>> from bastion.catalog import load_catalog
>>> from bastion.testing import check_probe
>>> check_probe(AutoAttackProbe, load_catalog())
[]
>>> AutoAttackParams().resolved_budgets()
[0.1]
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field

from bastion.attacks.evasion.auto import STANDARD_MEMBERS, EnsembleResult, auto_attack
from bastion.attacks.evasion.result import AttackResult
from bastion.attacks.evasion.sanity import SanityFlag, black_box_flags
from bastion.attacks.evasion.units import BudgetUnits
from bastion.data.dataset import Dataset
from bastion.findings import CatalogRefs, Finding, Metric
from bastion.probes.base import Cost, Knowledge, Probe, ProbeMeta, ProbeParams
from bastion.probes.context import ProbeContext
from bastion.probes.evasion.gradient import WHITE_BOX_CATALOG
from bastion.probes.evasion.outcome import BudgetTracker, verdict
from bastion.probes.evasion.runner import guarded, in_batches, inconclusive
from bastion.probes.evasion.setup import EvasionParams, prepare
from bastion.targets.base import Capability, Target

__all__ = ["AutoAttackParams", "AutoAttackProbe"]

MemberName = Literal["apgd-ce", "apgd-t", "fab-t", "square"]


class AutoAttackParams(EvasionParams):
    """Parameters of :class:`AutoAttackProbe`; the defaults are standard AutoAttack's."""

    n_samples: int = Field(100, ge=10, le=100_000, description="Test rows to attack.")
    members: list[MemberName] = Field(
        default_factory=lambda: list(STANDARD_MEMBERS),
        min_length=1,
        description="Ensemble members (standard: all four, always run in the standard order).",
    )
    steps: int = Field(100, ge=1, le=10_000, description="Iterations of APGD and FAB-T.")
    n_target_classes: int = Field(9, ge=1, le=1000, description="Targets of APGD-T and FAB-T.")
    square_queries: int = Field(5000, ge=2, le=1_000_000, description="Square queries per row.")

    def resolved_budgets(
        self, units: BudgetUnits | None = None, *, who: str = "evasion.auto"
    ) -> list[float]:
        """The budgets: as given, else just the tolerance budget (AutoAttack uses one)."""
        return list(self.budgets) if self.budgets else [self.resolved_tolerance(units, who=who)]


class AutoAttackProbe(Probe):
    """Robust accuracy under the standard AutoAttack ensemble.

    Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks", ICML 2020, standard version: APGD-CE, APGD-T
    (9 target classes), FAB-T (9 target classes) and the black-box Square attack
    (Andriushchenko et al., ECCV 2020) with 5,000 queries; each attack runs only on
    the rows every earlier one left standing and each row keeps its worst case.
    Square breaking rows the white-box attacks could not is flagged as gradient
    masking.
    """

    meta: ClassVar[ProbeMeta] = ProbeMeta(
        id="evasion.auto",
        title="Evasion: robust accuracy under the AutoAttack ensemble",
        catalog=CatalogRefs(
            owasp=WHITE_BOX_CATALOG.owasp,
            failure_modes=WHITE_BOX_CATALOG.failure_modes,
            atlas_techniques=[*WHITE_BOX_CATALOG.atlas_techniques, "AML.T0043.001"],
            atlas_mitigations=WHITE_BOX_CATALOG.atlas_mitigations,
            cwe=WHITE_BOX_CATALOG.cwe,
        ),
        knowledge=Knowledge.WHITE_BOX,
        needs=frozenset({Capability.GRADIENTS}),
        cost=Cost.EXPENSIVE,
        remedies=("AML.M0003", "AML.M0015"),
        alternative="evasion.square",
    )
    Params: ClassVar[type[ProbeParams]] = AutoAttackParams

    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        """Run the ensemble at each budget; one finding (variant = norm)."""
        p: AutoAttackParams = self.validated_params()
        return guarded(self, target, context, p.norm, lambda: self._run(target, data, context, p))

    def _run(
        self, target: Target, data: Dataset, context: ProbeContext, p: AutoAttackParams
    ) -> list[Finding]:
        setup = prepare(self.meta.id, target, data, p, context.seed)
        if isinstance(setup, str):
            return inconclusive(self, target, context, p.norm, setup)
        budgets, dom, f = setup.budgets, setup.domain, setup.model
        tracker = BudgetTracker(budgets, setup.x, setup.correct)
        broken: dict[str, int] = dict.fromkeys(STANDARD_MEMBERS, 0)
        white_survivors, black_extra = 0, 0
        members = [m for m in STANDARD_MEMBERS if m in p.members]
        runs: list[EnsembleResult] = []
        with context.progress(total=len(budgets) * len(members), description=self.meta.id) as bar:
            for k, eps in enumerate(budgets):

                def attack(
                    xs: torch.Tensor, ys: torch.Tensor, e: float = eps, s: int = k
                ) -> AttackResult:
                    r = auto_attack(
                        f,
                        xs,
                        ys,
                        eps=e,
                        norm=p.norm,
                        members=members,
                        steps=p.steps,
                        n_target_classes=p.n_target_classes,
                        square_queries=p.square_queries,
                        domain=dom,
                        seed=context.seed + s,
                    )
                    runs.append(r)
                    hit = r.clean_correct & ~r.robust
                    return AttackResult(
                        r.x_adv,
                        hit,
                        dom.norm(r.x_adv - xs, p.norm),
                        r.queries,
                        "autoattack",
                        p.norm,
                    )

                idx = tracker.standing()
                adv, hit, _ = in_batches(attack, setup.x, setup.y, idx, p.batch_size)
                tracker.record(eps, idx, adv, hit)
                tracker.close_budget()
                bar.advance(len(members))
        for m in (m for r in runs for m in r.members):
            broken[m.attack] += m.broken
            if m.attack == "square":
                white_survivors += m.attacked
                black_extra += m.broken
        flags: list[SanityFlag] = list(setup.flags)
        if "square" in members and any(m in members for m in ("apgd-ce", "apgd-t", "fab-t")):
            flags += black_box_flags("Square", black_extra, white_survivors)
        metrics = [
            Metric(
                name=f"broken_by.{m}",
                value=broken[m],
                unit="rows",
                definition=f"Rows {m} broke first (each later attack ran only on rows the "
                "earlier ones left standing), summed over budgets.",
            )
            for m in members
        ]
        label = "AutoAttack (" + ", ".join(members) + ")"
        return [
            verdict(
                self, target, context, p, setup, tracker, label=label, flags=flags, metrics=metrics
            )
        ]
