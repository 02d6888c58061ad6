"""The JSON report: the :class:`~bastion.findings.run.RunRecord` exactly as stored.

The file is the record's JSON form, ``schema_version`` included, and validates
against ``docs/report-schema.json`` (see :mod:`bastion.report.schema`).

Examples
--------
>>> import json, tempfile
>>> from pathlib import Path
>>> from bastion.findings.run import RunRecord
>>> from bastion.report.json_report import write_json
>>> rec = RunRecord.new(name="demo", seed=0, config_fingerprint="abc")
>>> out = write_json(rec, Path(tempfile.mkdtemp()) / "bastion-report.json")
>>> json.loads(out.read_text())["schema_version"]
'1.0'
"""

from __future__ import annotations

from pathlib import Path

from bastion.findings.run import RunRecord
from bastion.report._common import write_text

__all__ = ["to_json", "write_json"]


def to_json(record: RunRecord) -> str:
    """The record as indented JSON text, ending with a newline.

    Non-finite floats (a NaN metric, say) become ``null``, so the text is strict
    JSON that any parser accepts.
    """
    return record.model_dump_json(indent=2) + "\n"


def write_json(record: RunRecord, path: Path) -> Path:
    """Write the JSON report to ``path`` and return the path.

    Parameters
    ----------
    record : RunRecord
        The run to write.
    path : Path
        The file to write; parent folders are created.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    UsageError
        If the file cannot be written.
    """
    return write_text(Path(path), to_json(record))
