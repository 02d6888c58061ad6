"""``bastion catalog``: list, show and measure coverage of the threat catalog.

* ``bastion catalog`` lists every entry, one table per kind; ``--kind owasp`` keeps one.
* ``bastion catalog ML04`` shows one entry: every attribute and the ids related to it.
* ``bastion catalog --coverage`` lists every entry with the installed probes, guards and
  remedies that reference it, read live from the plugin registry, and a summary line.
* ``--json`` prints any of these as JSON instead of tables.

An unknown id raises :class:`~bastion.errors.CatalogError` (exit code 7).

Examples
--------
>>> import typer
>>> from typer.testing import CliRunner
>>> from bastion.cli.catalog_cmd import register
>>> app = typer.Typer()
>>> register(app)
>>> result = CliRunner().invoke(app, ["ML04", "--json"])
>>> result.exit_code, '"id": "ML04"' in result.output
(0, True)
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from bastion import plugins
from bastion.catalog import Catalog, CatalogEntry, Kind, load_catalog
from bastion.catalog.coverage import CoverageRow, coverage, summarize
from bastion.cli.console import out_console
from bastion.errors import UsageError

__all__ = ["catalog_command", "register"]


def register(app: typer.Typer) -> None:
    """Add the ``catalog`` command to ``app``."""
    app.command(
        "catalog",
        help=(
            "List the threat catalog, show one entry (bastion catalog ML04), or show "
            "which probes, guards and remedies cover each entry (--coverage)."
        ),
    )(catalog_command)


def catalog_command(
    entry_id: str | None = typer.Argument(
        None, metavar="ID", help="An id to show, e.g. ML04, FM1, AML.M0015 (any case)."
    ),
    kind: Kind | None = typer.Option(
        None, "--kind", "-k", case_sensitive=False, help="Only entries of this kind."
    ),
    show_coverage: bool = typer.Option(
        False, "--coverage", help="Show the installed plugins that reference each entry."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """List, show or measure coverage of the threat catalog."""
    catalog = load_catalog()
    if entry_id is not None:
        if kind is not None or show_coverage:
            raise UsageError(
                "Give either an id to show or --kind/--coverage to list, not both; "
                "e.g. `bastion catalog ML04` or `bastion catalog --coverage --kind owasp`."
            )
        _show(catalog, catalog.get(entry_id), as_json=as_json)
    elif show_coverage:
        _coverage(catalog, kind, as_json=as_json)
    else:
        _list(catalog, kind, as_json=as_json)


# -- output helpers -----------------------------------------------------------------------
def _print_json(data: Any) -> None:
    out_console.print(
        json.dumps(data, indent=2, ensure_ascii=False),
        markup=False,
        highlight=False,
        emoji=False,
        soft_wrap=True,
    )


def _kinds(kind: Kind | None) -> list[Kind]:
    return [kind] if kind is not None else list(Kind)


def _details(entry: CatalogEntry) -> str:
    """A one-line summary of an entry's kind-specific attributes, for list tables."""
    a = entry.attributes
    if entry.kind is Kind.OWASP:
        parts = [
            f"{label} {a[key]['score']} {a[key]['rating']}"
            for key, label in (
                ("exploitability", "exploit"),
                ("detectability", "detect"),
                ("technical_impact", "impact"),
            )
        ]
        newer = f"; now '{a['newer_name']}'" if a.get("newer_name") else ""
        return ", ".join(parts) + newer
    if entry.kind is Kind.FAILURE_MODE:
        if not a["intentional"]:
            return "unintentional (safety)"
        return f"intentional; {', '.join(a['cia'])}; {a['knowledge']}"
    if entry.kind is Kind.ATLAS_MITIGATION:
        return ", ".join(a["category"])
    if entry.kind is Kind.ATLAS_TECHNIQUE:
        if a.get("parent"):
            return f"sub-technique of {a['parent']}"
        return ", ".join(a["tactics"])
    return str(a.get("abstraction", ""))


def _format_value(value: Any) -> str:
    """Render an attribute value for the show view."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        if set(value) == {"score", "rating"}:
            return f"{value['score']} ({value['rating']})"
        return " — ".join(str(v) for v in value.values())
    if isinstance(value, list):
        if not value:
            return "—"
        if any(isinstance(v, dict) for v in value) or sum(len(str(v)) for v in value) > 60:
            return "\n".join(f"• {_format_value(v)}" for v in value)
        return ", ".join(_format_value(v) for v in value)
    return str(value)


# -- views --------------------------------------------------------------------------------
def _list(catalog: Catalog, kind: Kind | None, *, as_json: bool) -> None:
    kinds = _kinds(kind)
    if as_json:
        _print_json(
            {
                "version": catalog.version,
                "entries": [e.to_dict() for k in kinds for e in catalog.entries(k)],
            }
        )
        return
    for k in kinds:
        table = Table(title=f"{k.heading} ({k.value})", title_justify="left", expand=False)
        table.add_column("ID", no_wrap=True, style="bold")
        table.add_column("Name", overflow="fold")
        table.add_column("Details", overflow="fold")
        for entry in catalog.entries(k):
            table.add_row(Text(entry.id), Text(entry.name), Text(_details(entry)))
        out_console.print(table)
    total = sum(len(catalog.entries(k)) for k in kinds)
    out_console.print(
        Text(
            f"{total} entries, catalog version {catalog.version}. "
            "Show one with `bastion catalog <ID>`."
        )
    )


def _show(catalog: Catalog, entry: CatalogEntry, *, as_json: bool) -> None:
    related = catalog.related(entry.id)
    themes = [row.theme for row in catalog.mappings_for(entry.id)]
    if as_json:
        _print_json({**entry.to_dict(), "related": related, "mappings": themes})
        return
    table = Table(show_header=False, box=None, pad_edge=False, title_justify="left")
    table.title = f"{entry.id} — {entry.name}"
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_row("kind", Text(f"{entry.kind.value} ({entry.kind.heading})"))
    table.add_row("description", Text(entry.description))
    table.add_row("url", Text(entry.url or "—"))
    for key, value in entry.attributes.items():
        table.add_row(key.replace("_", " "), Text(_format_value(value)))
    if themes:
        table.add_row("mappings", Text("\n".join(f"• {t}" for t in themes)))
    table.add_row(
        "related",
        Text("\n".join(f"{r}  {catalog.get(r).name}" for r in related) if related else "—"),
    )
    out_console.print(table)


def _load_registry() -> plugins.Registry:
    try:
        return plugins.default_registry()
    except ImportError as err:
        raise UsageError(
            f"An installed Bastion plugin could not be imported ({err}); reinstall or remove "
            "the package that provides it."
        ) from None


def _coverage(catalog: Catalog, kind: Kind | None, *, as_json: bool) -> None:
    rows = coverage(catalog, _load_registry(), kind=kind)
    summary = summarize(rows)
    if as_json:
        _print_json(
            {
                "version": catalog.version,
                "rows": [r.to_dict() for r in rows],
                "summary": {**asdict(summary), "sentence": summary.sentence()},
            }
        )
        return

    def cell(ids: list[str]) -> Text:
        return Text("\n".join(ids)) if ids else Text("—", style="dim")

    for k in _kinds(kind):
        table = Table(title=f"{k.heading} ({k.value})", title_justify="left")
        table.add_column("ID", no_wrap=True, style="bold")
        table.add_column("Name", overflow="fold")
        table.add_column("Probes", overflow="fold")
        table.add_column("Guards", overflow="fold")
        table.add_column("Remedies", overflow="fold")
        kind_rows: list[CoverageRow] = [r for r in rows if r.kind is k]
        for r in kind_rows:
            table.add_row(
                Text(r.id), Text(r.name), cell(r.probes), cell(r.guards), cell(r.remedies)
            )
        out_console.print(table)
    out_console.print(Text(summary.sentence()))
