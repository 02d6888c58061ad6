"""The JSON threat model for tools: :class:`~bastion.threatmodel.results.ThreatModel` as is.

Its JSON Schema is ``ThreatModel.model_json_schema()``; ``schema_version`` follows the
report schema's policy (a MINOR bump adds optional fields, a MAJOR bump changes or
removes them).

Examples
--------
>>> import json
>>> from bastion.threatmodel.analysis import analyse
>>> from bastion.threatmodel.samples import minimal_description
>>> data = json.loads(to_json(analyse(minimal_description())))
>>> data["system"], len(data["threats"]), data["threats"][0]["id"]
('sample-classifier', 27, 'ML01')
>>> ThreatModel.model_validate(data).get("FM12").applies
False
"""

from __future__ import annotations

from pathlib import Path

from bastion.report._common import write_text
from bastion.threatmodel.results import ThreatModel

__all__ = ["ThreatModel", "read_json", "to_json", "write_json"]


def to_json(tm: ThreatModel) -> str:
    """The threat model as indented JSON text."""
    return tm.model_dump_json(indent=2) + "\n"


def write_json(tm: ThreatModel, path: Path) -> Path:
    """Write :func:`to_json` to ``path``; raises UsageError when it cannot be written."""
    return write_text(Path(path), to_json(tm))


def read_json(text: str) -> ThreatModel:
    """Parse a threat model written by :func:`to_json` (pydantic errors on bad input)."""
    return ThreatModel.model_validate_json(text)
