"""Typed records for everything the threat catalog holds.

Every catalog entry shares a small common shape (:class:`CatalogEntry`: ``id``,
``name``, ``kind``, ``description``, ``url``) and adds the typed fields of its family:
OWASP risk factors, failure-mode properties, ATLAS tactics and so on. Those extra fields
are also available, as plain JSON-ready values, through :attr:`CatalogEntry.attributes`,
so generic code (the CLI, reports) never needs to know the family.

All models are frozen and refuse unknown keys, so a typo in a data file fails loudly
when the catalog loads.

Examples
--------
>>> from bastion.catalog.entries import FailureModeEntry, Kind
>>> fm = FailureModeEntry(
...     id="FM4", name="Membership inference", description="Was this record trained on?",
...     intentional=True, cia=("confidentiality",), knowledge="black-box",
...     access_control_violated=False,
... )
>>> fm.kind is Kind.FAILURE_MODE
True
>>> fm.attributes["cia"]
['confidentiality']
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AtlasMitigationEntry",
    "AtlasTechniqueEntry",
    "CatalogEntry",
    "CweConsequence",
    "CweDetection",
    "CweEntry",
    "CweMitigation",
    "CweReference",
    "FailureModeEntry",
    "Kind",
    "MappingRow",
    "OwaspEntry",
    "RiskFactor",
    "Source",
]


class Kind(StrEnum):
    """The families of catalog entries, in catalog order."""

    OWASP = "owasp"
    FAILURE_MODE = "failure_mode"
    ATLAS_MITIGATION = "atlas_mitigation"
    ATLAS_TECHNIQUE = "atlas_technique"
    CWE = "cwe"

    @property
    def heading(self) -> str:
        """A heading for tables: ``"OWASP ML Top 10"``, ``"ATLAS techniques"``, …"""
        return _KIND_TITLES[self]


_KIND_TITLES = {
    Kind.OWASP: "OWASP ML Top 10",
    Kind.FAILURE_MODE: "Failure modes",
    Kind.ATLAS_MITIGATION: "ATLAS mitigations",
    Kind.ATLAS_TECHNIQUE: "ATLAS techniques",
    Kind.CWE: "CWE",
}

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Source(BaseModel):
    """Where one data file's facts come from."""

    model_config = _FROZEN

    title: str
    edition: str
    url: str | None = None
    note: str = ""


class CatalogEntry(BaseModel):
    """Fields every catalog entry has; subclasses add the typed fields of their kind."""

    model_config = _FROZEN

    COMMON_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"id", "name", "kind", "description", "url"}
    )

    id: str = Field(description="Canonical id, e.g. 'ML01', 'FM4', 'AML.M0015', 'CWE-1039'.")
    name: str
    kind: Kind
    description: str = Field(description="One to three sentences in Bastion's words.")
    url: str | None = None

    @property
    def attributes(self) -> dict[str, Any]:
        """The kind-specific fields as JSON-ready values (a fresh dict on every call)."""
        return self.model_dump(mode="json", exclude=set(self.COMMON_FIELDS))

    def to_dict(self) -> dict[str, Any]:
        """The entry as a JSON-ready dict: common fields plus ``attributes``."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind.value,
            "description": self.description,
            "url": self.url,
            "attributes": self.attributes,
        }


Rating = Literal["easy", "moderate", "difficult"]


class RiskFactor(BaseModel):
    """One OWASP risk factor exactly as the document rates it: a 1-5 score and its label."""

    model_config = _FROZEN

    score: int = Field(ge=1, le=5)
    rating: Rating


class OwaspEntry(CatalogEntry):
    """An OWASP Machine Learning Security Top 10 (2023) entry."""

    kind: Literal[Kind.OWASP] = Kind.OWASP
    year: int = 2023
    newer_name: str | None = Field(
        None, description="The entry's name in later revisions of the 2023 list."
    )
    exploitability: RiskFactor
    detectability: RiskFactor
    technical_impact: RiskFactor
    prevention: tuple[str, ...] = ()


CiaProperty = Literal["confidentiality", "integrity", "availability"]


class FailureModeEntry(CatalogEntry):
    """A failure mode from "Failure Modes in Machine Learning" (FM1-FM17)."""

    kind: Literal[Kind.FAILURE_MODE] = Kind.FAILURE_MODE
    intentional: bool
    cia: tuple[CiaProperty, ...] = ()
    safety: bool = Field(False, description="The document rates it a safety failure.")
    knowledge: Literal["white-box", "black-box", "both"] | None = None
    knowledge_stated: bool = Field(
        False, description="True when the document itself states the knowledge required."
    )
    access_control_violated: bool | None = None

    @property
    def number(self) -> int:
        """The scenario number in the document (``FM7`` -> 7)."""
        return int(self.id[2:])

    @model_validator(mode="after")
    def _consistent(self) -> FailureModeEntry:
        if not re.fullmatch(r"FM\d+", self.id):
            raise ValueError(f"failure mode id {self.id!r} must look like 'FM7'")
        if self.intentional and (self.knowledge is None or self.access_control_violated is None):
            raise ValueError(
                f"{self.id} is intentional, so it needs knowledge and access_control_violated"
            )
        if not self.intentional and (
            self.knowledge is not None or self.access_control_violated is not None
        ):
            raise ValueError(
                f"{self.id} is unintentional, so knowledge and access_control_violated must be null"
            )
        return self


class AtlasMitigationEntry(CatalogEntry):
    """A MITRE ATLAS mitigation (``AML.M…``)."""

    kind: Literal[Kind.ATLAS_MITIGATION] = Kind.ATLAS_MITIGATION
    current_name: str | None = Field(None, description="The name in the newest ATLAS release.")
    category: tuple[str, ...] = ()
    mitigates: tuple[str, ...] = Field(
        (), description="Techniques in this catalog that ATLAS lists for this mitigation."
    )

    @model_validator(mode="after")
    def _id_shape(self) -> AtlasMitigationEntry:
        if not re.fullmatch(r"AML\.M\d{4}", self.id):
            raise ValueError(f"ATLAS mitigation id {self.id!r} must look like 'AML.M0015'")
        return self


class AtlasTechniqueEntry(CatalogEntry):
    """A MITRE ATLAS technique or sub-technique (``AML.T…``)."""

    kind: Literal[Kind.ATLAS_TECHNIQUE] = Kind.ATLAS_TECHNIQUE
    current_name: str | None = Field(None, description="The name in the newest ATLAS release.")
    tactics: tuple[str, ...] = ()

    @property
    def parent(self) -> str | None:
        """The parent technique of a sub-technique (``AML.T0024.001`` -> ``AML.T0024``)."""
        head, _, sub = self.id.rpartition(".")
        return head if sub.isdigit() and len(sub) == 3 and head.count(".") == 1 else None

    @model_validator(mode="after")
    def _id_shape(self) -> AtlasTechniqueEntry:
        if not re.fullmatch(r"AML\.T\d{4}(\.\d{3})?", self.id):
            raise ValueError(
                f"ATLAS technique id {self.id!r} must look like 'AML.T0043' or 'AML.T0024.001'"
            )
        return self

    @property
    def attributes(self) -> dict[str, Any]:
        """Kind-specific fields, plus ``parent`` for sub-techniques."""
        found = super().attributes
        found["parent"] = self.parent
        return found


class CweReference(BaseModel):
    """A CWE weakness named by id and name only (not itself a catalog entry)."""

    model_config = _FROZEN

    id: str
    name: str


class CweConsequence(BaseModel):
    """What exploiting the weakness can lead to, for one CIA scope."""

    model_config = _FROZEN

    scope: str
    impact: str


class CweMitigation(BaseModel):
    """One mitigation of a CWE weakness and the lifecycle phase it belongs to."""

    model_config = _FROZEN

    phase: str
    text: str


class CweDetection(BaseModel):
    """One way to detect a CWE weakness."""

    model_config = _FROZEN

    method: str
    text: str


class CweEntry(CatalogEntry):
    """A CWE weakness."""

    kind: Literal[Kind.CWE] = Kind.CWE
    previous_name: str | None = None
    abstraction: str = ""
    child_of: tuple[CweReference, ...] = ()
    consequences: tuple[CweConsequence, ...] = ()
    mitigations: tuple[CweMitigation, ...] = ()
    detection_methods: tuple[CweDetection, ...] = ()

    @model_validator(mode="after")
    def _id_shape(self) -> CweEntry:
        if not re.fullmatch(r"CWE-\d+", self.id):
            raise ValueError(f"CWE id {self.id!r} must look like 'CWE-1039'")
        return self


class MappingRow(BaseModel):
    """One row of ``mappings.yaml``: ids of several families that describe one threat."""

    model_config = _FROZEN

    theme: str
    note: str = ""
    failure_modes: tuple[str, ...] = ()
    owasp: tuple[str, ...] = ()
    atlas_techniques: tuple[str, ...] = ()
    atlas_mitigations: tuple[str, ...] = ()
    cwe: tuple[str, ...] = ()

    FIELD_KINDS: ClassVar[dict[str, Kind]] = {
        "failure_modes": Kind.FAILURE_MODE,
        "owasp": Kind.OWASP,
        "atlas_techniques": Kind.ATLAS_TECHNIQUE,
        "atlas_mitigations": Kind.ATLAS_MITIGATION,
        "cwe": Kind.CWE,
    }

    def ids_by_kind(self) -> list[tuple[Kind, str]]:
        """Every id in the row with the kind its field promises, in a stable order."""
        return [
            (kind, entry_id)
            for field, kind in self.FIELD_KINDS.items()
            for entry_id in getattr(self, field)
        ]

    def ids(self) -> list[str]:
        """Every id in the row."""
        return [entry_id for _, entry_id in self.ids_by_kind()]
