"""The threat catalog: OWASP ML Top 10, ML failure modes, MITRE ATLAS and CWE as data.

Every probe, guard, remedy and finding refers to threats by catalog id (``ML04``,
``FM1``, ``AML.T0024.000``, ``AML.M0015``, ``CWE-1039``). The catalog holds those ids
with their names, descriptions and typed attributes, the cross-mappings between
families, and the severity bar (:mod:`bastion.catalog.severity`). Plugin coverage is
computed live from the plugin registry by :mod:`bastion.catalog.coverage`.

Examples
--------
>>> from bastion.catalog import load_catalog
>>> cat = load_catalog()
>>> entry = cat.get("ml04")
>>> entry.id, entry.name, entry.kind
('ML04', 'Membership Inference Attack', <Kind.OWASP: 'owasp'>)
>>> entry.attributes["exploitability"]
{'score': 4, 'rating': 'moderate'}
>>> [e.id for e in cat.entries("cwe")]
['CWE-1039']
"""

from bastion.catalog.catalog import Catalog, normalize_id, parse_kind
from bastion.catalog.entries import (
    AtlasMitigationEntry,
    AtlasTechniqueEntry,
    CatalogEntry,
    CweEntry,
    FailureModeEntry,
    Kind,
    MappingRow,
    OwaspEntry,
    RiskFactor,
    Source,
)
from bastion.catalog.loader import load_catalog, read_catalog

__all__ = [
    "AtlasMitigationEntry",
    "AtlasTechniqueEntry",
    "Catalog",
    "CatalogEntry",
    "CweEntry",
    "FailureModeEntry",
    "Kind",
    "MappingRow",
    "OwaspEntry",
    "RiskFactor",
    "Source",
    "load_catalog",
    "normalize_id",
    "parse_kind",
    "read_catalog",
]
