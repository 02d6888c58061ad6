"""The :class:`Remedy` contract: harden a target, then prove it with the same probes.

A remedy takes a target and data and returns a :class:`RemedyResult`: the hardened
target and a record of what changed. :attr:`RemedyMeta.verified_by` names the probes
that found the weakness; ``bastion harden`` re-runs exactly those and reports
before/after.

Examples
--------
>>> from bastion.remedies.base import RemedyMeta
>>> from bastion.findings import CatalogRefs
>>> RemedyMeta(id="remedy.example", title="Example", catalog=CatalogRefs(),
...            verified_by=("robustness.noise",)).verified_by
('robustness.noise',)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError

from bastion.data.dataset import Dataset
from bastion.errors import UsageError
from bastion.findings import CatalogRefs
from bastion.probes.base import format_validation_error
from bastion.probes.context import ProbeContext
from bastion.targets.base import Capability, Target

__all__ = ["ErrorFormatter", "Remedy", "RemedyMeta", "RemedyResult"]

P = TypeVar("P", bound=BaseModel)

#: ``formatter(owner, err) -> message``: one sentence per problem of ``err``.
ErrorFormatter = Callable[[str, ValidationError], str]


@dataclass(frozen=True)
class RemedyMeta:
    """Declared metadata of a remedy; checked by :mod:`bastion.testing`."""

    id: str
    title: str
    catalog: CatalogRefs
    verified_by: tuple[str, ...]
    needs: frozenset[Capability] = field(default_factory=frozenset)


@dataclass(frozen=True)
class RemedyResult:
    """A hardened target and what was done to get it."""

    target: Target
    changes: dict[str, Any]
    notes: str = ""


class Remedy(ABC):
    """Base class of remedies."""

    meta: ClassVar[RemedyMeta]

    def __init__(self, **params: Any) -> None:
        self.params = params

    def validated_params(
        self, model: type[P], *, formatter: ErrorFormatter = format_validation_error
    ) -> P:
        """Build ``model`` from :attr:`params`; a :class:`UsageError` on bad parameters.

        Parameters
        ----------
        model : type of pydantic.BaseModel
            The remedy's parameter model (usually its ``Params``).
        formatter : callable, default :func:`~bastion.probes.base.format_validation_error`
            ``formatter(owner, err) -> str`` turns the pydantic error into the
            message; ``owner`` is the remedy's ``meta.id``. Pass one that never
            repeats values when a parameter could hold a secret.

        Returns
        -------
        P
            The validated parameters, an instance of ``model``.

        Raises
        ------
        UsageError
            When ``model`` rejects :attr:`params`, with one sentence per problem.

        Examples
        --------
        >>> from pydantic import BaseModel, ConfigDict, Field
        >>> from bastion.findings import CatalogRefs
        >>> class Params(BaseModel):
        ...     model_config = ConfigDict(extra="forbid")
        ...     eps: float = Field(0.1, gt=0)
        >>> class Demo(Remedy):
        ...     meta = RemedyMeta(id="remedy.demo", title="Demo", catalog=CatalogRefs(),
        ...                       verified_by=())
        ...     def apply(self, target, data, context):
        ...         raise UsageError("This demo remedy only checks its parameters.")
        >>> Demo(eps=0.5).validated_params(Params).eps
        0.5
        >>> for bad in ({"eps": -1}, {"epsilon": 1}):
        ...     try:
        ...         Demo(**bad).validated_params(Params)
        ...     except UsageError as err:
        ...         print(err)
        The 'eps' parameter of remedy.demo input should be greater than 0; got -1.
        remedy.demo has no parameter 'epsilon'.
        """
        try:
            return model(**self.params)
        except ValidationError as err:
            raise UsageError(formatter(self.meta.id, err)) from None

    @abstractmethod
    def apply(self, target: Target, data: Dataset, context: ProbeContext) -> RemedyResult:
        """Return a hardened copy of ``target``; never modify ``target`` in place."""
