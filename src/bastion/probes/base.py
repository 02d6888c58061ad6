"""The :class:`Probe` contract: attack(s) + metric + verdict, returning findings.

A probe is mostly metadata and one method. Parameters are keyword arguments stored
unchanged by ``__init__`` and validated by a pydantic model (:attr:`Probe.Params`)
when work starts, so a typo fails with one sentence naming the parameter, the
probe and what is allowed.

Examples
--------
>>> from bastion.probes.base import Probe, ProbeParams
>>> class MyParams(ProbeParams):
...     eps: float = 0.1
>>> # Subclasses set `meta`, `Params = MyParams` and implement `run`.
"""

from __future__ import annotations

import inspect
import platform
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import metadata
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from bastion.catalog.severity import Effect, Effort, Impact, rate
from bastion.data.dataset import Dataset
from bastion.errors import UsageError
from bastion.findings import CatalogRefs, Finding, Reproduction, Severity, Status
from bastion.probes.context import ProbeContext
from bastion.targets.base import Capability, Target

__all__ = ["Cost", "Knowledge", "Probe", "ProbeMeta", "ProbeParams", "format_validation_error"]


class Knowledge(StrEnum):
    """What the attacker behind a probe must know about the model."""

    BLACK_BOX = "black-box"
    WHITE_BOX = "white-box"


class Cost(StrEnum):
    """Rough compute cost, used for planning and the "all that apply" default."""

    CHEAP = "cheap"
    MODERATE = "moderate"
    EXPENSIVE = "expensive"


@dataclass(frozen=True)
class ProbeMeta:
    """Declared metadata of a probe; checked by :mod:`bastion.testing`.

    Parameters
    ----------
    id : str
        Dotted id, ``family.name`` (e.g. ``"robustness.noise"``).
    title : str
        One line for tables and report headings.
    catalog : CatalogRefs
        Catalog ids this probe tests; every id must exist in the catalog.
    knowledge : Knowledge
    needs : frozenset of Capability
        Capabilities the target must have.
    cost : Cost
    remedies : tuple of str
        Remedy ids or ATLAS mitigation ids to recommend when vulnerable.
    alternative : str
        What to use instead when the target lacks a needed capability; it completes
        the sentence "... — use <alternative>", e.g. ``"evasion.square"``.
    """

    id: str
    title: str
    catalog: CatalogRefs
    knowledge: Knowledge = Knowledge.BLACK_BOX
    needs: frozenset[Capability] = field(default_factory=lambda: frozenset({Capability.LABELS}))
    cost: Cost = Cost.CHEAP
    remedies: tuple[str, ...] = ()
    alternative: str = ""


class ProbeParams(BaseModel):
    """Base class for a probe's parameter model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def format_validation_error(owner: str, err: ValidationError) -> str:
    """Turn a pydantic error into one sentence per problem, scikit-learn style."""
    parts = []
    for problem in err.errors():
        name = ".".join(str(p) for p in problem["loc"])
        if not name:
            parts.append(f"{owner}: {problem['msg'].removeprefix('Value error, ')}")
        elif problem["type"] == "extra_forbidden":
            parts.append(f"{owner} has no parameter {name!r}")
        else:
            parts.append(
                f"The {name!r} parameter of {owner} {problem['msg'].lower()}; "
                f"got {problem.get('input')!r}"
            )
    return "; ".join(parts) + "."


class Probe(ABC):
    """Base class of every probe.

    Subclasses set :attr:`meta` and :attr:`Params` and implement :meth:`run`.
    """

    meta: ClassVar[ProbeMeta]
    Params: ClassVar[type[ProbeParams]] = ProbeParams

    def __init__(self, **params: Any) -> None:
        self.params = params

    def validated_params(self) -> Any:
        """The parameters, validated; raises :class:`UsageError` with one clear sentence."""
        try:
            return self.Params(**self.params)
        except ValidationError as err:
            raise UsageError(format_validation_error(self.meta.id, err)) from None

    def not_applicable_reason(self, target: Target) -> str | None:
        """Why this probe cannot run on ``target``, or None when it can."""
        missing = sorted(c.value for c in self.meta.needs - target.capabilities)
        if not missing:
            return None
        reason = (
            f"{self.meta.id} needs {', '.join(missing)}; this target is a {target.kind} "
            f"target with {', '.join(sorted(c.value for c in target.capabilities))}"
        )
        return f"{reason} — use {self.meta.alternative}" if self.meta.alternative else reason

    @abstractmethod
    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        """Attack ``target`` using ``data`` and return what was found."""

    # -- helpers for subclasses ----------------------------------------------------
    def finding(
        self,
        target: Target,
        context: ProbeContext,
        *,
        status: Status,
        summary: str,
        severity: Severity = Severity.NONE,
        **fields: Any,
    ) -> Finding:
        """Build a :class:`Finding` with this probe's id, title, mappings and reproduction."""
        fields.setdefault("title", self.meta.title)
        fields.setdefault("catalog", self.meta.catalog)
        fields.setdefault(
            "remedies", list(self.meta.remedies) if status is Status.VULNERABLE else []
        )
        params = self.validated_params().model_dump(mode="json")
        return Finding(
            probe_id=self.meta.id,
            target=target.name,
            status=status,
            severity=severity if status is Status.VULNERABLE else Severity.NONE,
            summary=summary,
            reproduction=Reproduction(seed=context.seed, parameters=params, versions=versions()),
            **fields,
        )

    def vulnerable_finding(
        self,
        target: Target,
        context: ProbeContext,
        *,
        effect: Effect,
        extent: float,
        summary: str,
        effort: Effort = Effort.LOW,
        owasp: Sequence[str] | None = None,
        **fields: Any,
    ) -> Finding:
        """A vulnerable :class:`Finding`, its severity rated from what the probe proved.

        The one place where a probe turns "what was shown" into a severity: the
        impact (``effect``, ``extent``, the attacker's ``effort`` and whether the
        target makes a security decision, from ``context``) goes through the
        catalog's bug bar (:func:`bastion.catalog.severity.rate`) with the OWASP
        entries of this probe (or ``owasp``), and the rating's rationale is kept.

        Parameters
        ----------
        target, context
            As passed to :meth:`run`.
        effect : Effect
            What the attack achieved (e.g. ``Effect.DEGRADATION``).
        extent : float
            The share of inputs or of the model affected, in ``[0, 1]``; clipped.
        summary : str
            One or two sentences: what was found and what to do.
        effort : Effort
            What the attack cost the attacker.
        owasp : sequence of str, optional
            OWASP ids to rate against; the probe's own catalog mapping by default.
        **fields
            Other :class:`Finding` fields (metrics, evidence, series, remedies...).
        """
        rating = rate(
            Impact(
                effect=effect,
                extent=min(1.0, max(0.0, float(extent))),
                effort=effort,
                security_decision=context.security_decision,
            ),
            owasp=list(self.meta.catalog.owasp if owasp is None else owasp),
        )
        return self.finding(
            target,
            context,
            status=Status.VULNERABLE,
            severity=rating.severity,
            severity_rationale=list(rating.rationale),
            summary=summary,
            **fields,
        )

    @classmethod
    def doc(cls) -> str:
        """The probe's docstring, cleaned."""
        return inspect.getdoc(cls) or ""


def versions() -> dict[str, str]:
    """Versions of the packages that decide a result, for reproduction records."""
    found = {"python": platform.python_version()}
    for dist in ("bastion-ml", "numpy", "torch", "scikit-learn", "onnxruntime"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found
