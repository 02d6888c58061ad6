"""Report renderers: JSON, SARIF 2.1.0, HTML and Markdown.

Every renderer takes a :class:`~bastion.findings.run.RunRecord` and nothing else
it must have; catalog names come from :mod:`bastion.catalog` unless a catalog is
passed in. :func:`write_reports` writes several formats into one folder with fixed
file names, which is what ``bastion assess`` does.

==========  ======================  =================================================
format      file                    for
==========  ======================  =================================================
json        bastion-report.json     machines; the documented schema, versioned
sarif       bastion-report.sarif    GitHub code scanning and other SARIF viewers
html        bastion-report.html     people: one self-contained page
markdown    bastion-report.md       a pull-request comment
==========  ======================  =================================================

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from bastion.findings.run import RunRecord
>>> from bastion.report import write_reports
>>> rec = RunRecord.new(name="demo", seed=0, config_fingerprint="abc")
>>> paths = write_reports(rec, Path(tempfile.mkdtemp()), ["json", "markdown"])
>>> sorted(p.name for p in paths.values())
['bastion-report.json', 'bastion-report.md']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from bastion.errors import UsageError
from bastion.findings.run import RunRecord
from bastion.report._catalog import CatalogLike, resolve_catalog
from bastion.report.html import to_html, write_html
from bastion.report.json_report import to_json, write_json
from bastion.report.markdown import to_markdown, write_markdown
from bastion.report.sarif import to_sarif, write_sarif

__all__ = [
    "FILE_NAMES",
    "FORMATS",
    "CatalogLike",
    "to_html",
    "to_json",
    "to_markdown",
    "to_sarif",
    "write_html",
    "write_json",
    "write_markdown",
    "write_reports",
    "write_sarif",
]

#: Every report format, in the order :func:`write_reports` writes them.
FORMATS: tuple[str, ...] = ("json", "sarif", "html", "markdown")

#: The file each format is written to inside the output folder.
FILE_NAMES: Mapping[str, str] = {
    "json": "bastion-report.json",
    "sarif": "bastion-report.sarif",
    "html": "bastion-report.html",
    "markdown": "bastion-report.md",
}


def _check_formats(formats: Sequence[str]) -> list[str]:
    if isinstance(formats, str):
        formats = [formats]
    wanted = [f.strip().lower() for f in formats]
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise UsageError(
            f"Unknown report format {', '.join(map(repr, unknown))}; "
            f"use one or more of: {', '.join(FORMATS)}."
        )
    return list(dict.fromkeys(wanted))


def _prepare(out_dir: Path) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(
            f"The report folder {str(out)!r} is a file; pass a folder path for the reports."
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise UsageError(
            f"Cannot create the report folder {str(out)!r} ({reason}); "
            "choose an output folder you can write to."
        ) from None
    return out


def write_reports(
    record: RunRecord,
    out_dir: Path,
    formats: Sequence[str] = FORMATS,
    *,
    catalog: CatalogLike | None = None,
    artifact_uri: str | Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Write the run's reports into ``out_dir``.

    Parameters
    ----------
    record : RunRecord
        The run to report.
    out_dir : Path
        Folder for the reports; created if needed. Evidence paths in the record
        are relative to it, so the HTML report can embed evidence images.
    formats : sequence of str
        Any of :data:`FORMATS`; all of them by default.
    catalog : CatalogLike, optional
        Source of catalog names and descriptions; the built-in catalog by default.
        It is loaded once and shared by all formats.
    artifact_uri : str or mapping of str to str, optional
        The file SARIF results point at; see :func:`bastion.report.sarif.to_sarif`.

    Returns
    -------
    dict of str to Path
        The file written for each format, in the order of :data:`FORMATS`.

    Raises
    ------
    UsageError
        If a format is unknown, or the folder or a file cannot be written.
    """
    wanted = _check_formats(formats)
    out = _prepare(out_dir)
    cat = resolve_catalog(catalog) if {"sarif", "html", "markdown"} & set(wanted) else None
    written: dict[str, Path] = {}
    for fmt in FORMATS:
        if fmt not in wanted:
            continue
        path = out / FILE_NAMES[fmt]
        if fmt == "json":
            written[fmt] = write_json(record, path)
        elif fmt == "sarif":
            written[fmt] = write_sarif(record, path, catalog=cat, artifact_uri=artifact_uri)
        elif fmt == "html":
            written[fmt] = write_html(record, path, catalog=cat)
        else:
            written[fmt] = write_markdown(record, path, catalog=cat, html_report=FILE_NAMES["html"])
    return written
