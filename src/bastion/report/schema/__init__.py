"""The JSON Schema of Bastion's JSON report, generated from the code.

``docs/report-schema.json`` is this schema, committed; a test keeps the two equal.
Regenerate the file after changing :class:`~bastion.findings.run.RunRecord` or
anything it contains::

    python -m bastion.report.schema > docs/report-schema.json

Versioning: every report carries ``schema_version`` (``MAJOR.MINOR``, from
:data:`bastion.findings.run.SCHEMA_VERSION`). A change that only adds optional
fields bumps MINOR; removing, renaming or retyping a field, or changing what a value
means, bumps MAJOR. Readers should accept any report whose MAJOR they know.

Examples
--------
>>> from bastion.report.schema import report_schema
>>> schema = report_schema()
>>> schema["$schema"]
'https://json-schema.org/draft/2020-12/schema'
>>> sorted(schema["required"])
['name', 'run_id', 'started_at']
"""

from __future__ import annotations

import json
from typing import Any

from bastion.findings.run import SCHEMA_VERSION, RunRecord

__all__ = ["SCHEMA_DIALECT", "SCHEMA_ID", "report_schema", "report_schema_text"]

#: JSON Schema dialect pydantic generates.
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: Where the committed schema is published.
SCHEMA_ID = "urn:bastion:report-schema:1"

_DESCRIPTION = (
    "One Bastion assessment run and everything it found: the JSON report "
    "(bastion-report.json) and the record the results store keeps. Report schema "
    "version {version}; see docs/reports.md for the versioning policy."
)


def report_schema() -> dict[str, Any]:
    """The report's JSON Schema, from ``RunRecord.model_json_schema()``.

    Returns
    -------
    dict
        The generated schema with ``$schema``, ``$id``, ``title`` and ``description``
        set, those four keys first.
    """
    generated = RunRecord.model_json_schema()
    generated.pop("title", None)
    generated.pop("description", None)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": f"Bastion report, schema version {SCHEMA_VERSION}",
        "description": _DESCRIPTION.format(version=SCHEMA_VERSION),
        **generated,
    }


def report_schema_text() -> str:
    """:func:`report_schema` as the exact text of ``docs/report-schema.json``."""
    return json.dumps(report_schema(), indent=2, ensure_ascii=False) + "\n"
