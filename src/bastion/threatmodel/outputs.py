"""Writing a threat model's files: HTML, Markdown and JSON into one folder.

======== ====================== ===========================
format   file                   for
======== ====================== ===========================
html     threat-model.html      people: one self-contained page
markdown threat-model.md        a repository or a review
json     threat-model.json      tools
======== ====================== ===========================

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from bastion.threatmodel.analysis import analyse
>>> from bastion.threatmodel.samples import minimal_description
>>> paths = write_outputs(analyse(minimal_description()), Path(tempfile.mkdtemp()), ["json"])
>>> [p.name for p in paths.values()]
['threat-model.json']
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bastion.errors import UsageError
from bastion.threatmodel.report_html import write_html
from bastion.threatmodel.report_json import write_json
from bastion.threatmodel.report_markdown import write_markdown
from bastion.threatmodel.results import ThreatModel

__all__ = ["FILE_NAMES", "FORMATS", "parse_formats", "write_outputs"]

FORMATS = ("html", "markdown", "json")
FILE_NAMES = {
    "html": "threat-model.html",
    "markdown": "threat-model.md",
    "json": "threat-model.json",
}


def parse_formats(formats: str | Sequence[str]) -> list[str]:
    """Formats from ``"html,json"`` or a list, checked; ``md`` is taken as markdown.

    Raises
    ------
    UsageError
        If a format is unknown or none is given.
    """
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    wanted = [f.strip().lower() for f in items if f.strip()]
    wanted = ["markdown" if f == "md" else f for f in wanted]
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown or not wanted:
        raise UsageError(
            f"Unknown threat-model format(s) {', '.join(map(repr, unknown)) or '(none)'}; "
            f"use one or more of: {', '.join(FORMATS)}."
        )
    return list(dict.fromkeys(wanted))


def write_outputs(
    tm: ThreatModel,
    out_dir: Path,
    formats: str | Sequence[str] = FORMATS,
    *,
    assessment: str | None = None,
) -> dict[str, Path]:
    """Write the requested formats into ``out_dir`` (created if needed).

    Parameters
    ----------
    assessment : str, optional
        Path of the emitted assessment config, quoted in the reports' test commands.

    Raises
    ------
    UsageError
        If a format is unknown or the folder or a file cannot be written.
    """
    wanted = parse_formats(formats)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file; give a folder for the threat-model reports.")
    written: dict[str, Path] = {}
    for fmt in FORMATS:
        if fmt not in wanted:
            continue
        path = out / FILE_NAMES[fmt]
        if fmt == "html":
            written[fmt] = write_html(tm, path, assessment=assessment)
        elif fmt == "markdown":
            written[fmt] = write_markdown(tm, path, assessment=assessment)
        else:
            written[fmt] = write_json(tm, path)
    return written
