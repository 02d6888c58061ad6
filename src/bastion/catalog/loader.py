"""Reading the catalog's versioned YAML files into a validated :class:`Catalog`.

The files ship inside the package (``bastion/catalog/data``) and are read with
:mod:`importlib.resources`, so the catalog works from a wheel, a zip or a source
checkout alike. :func:`load_catalog` reads them once per process; :func:`read_catalog`
reads any folder with the same layout (tests use it to check that broken files fail).

Every file has a top-level ``version`` and ``source``; all files must agree on the
version, which becomes :attr:`Catalog.version`.

Examples
--------
>>> from bastion.catalog.loader import load_catalog
>>> cat = load_catalog()
>>> cat is load_catalog()
True
>>> cat.get("FM16").name
'Common corruption'
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from bastion.catalog.catalog import Catalog
from bastion.catalog.entries import (
    AtlasMitigationEntry,
    AtlasTechniqueEntry,
    CatalogEntry,
    CweEntry,
    FailureModeEntry,
    MappingRow,
    OwaspEntry,
    Source,
)
from bastion.errors import CatalogError

__all__ = ["DATA_FILES", "data_directory", "load_catalog", "read_catalog", "read_yaml"]

DATA_FILES = ("owasp.yaml", "failure_modes.yaml", "atlas.yaml", "cwe.yaml", "mappings.yaml")
"""The data files a catalog folder must hold, in the order their entries are listed."""


def data_directory() -> Traversable:
    """The folder of catalog data files shipped in the package."""
    return files("bastion.catalog").joinpath("data")


def read_yaml(directory: Traversable | Path, name: str) -> dict[str, Any]:
    """Read one data file as a mapping; raise :class:`CatalogError` if it is unusable."""
    resource = directory.joinpath(name)
    try:
        text = resource.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise CatalogError(
            f"Catalog file {name!r} is missing from {directory}; reinstall Bastion or restore "
            "the file."
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        problem = " ".join(str(err).split())
        raise CatalogError(
            f"Catalog file {name!r} is not valid YAML ({problem}); fix the file."
        ) from None
    if not isinstance(data, dict):
        raise CatalogError(f"Catalog file {name!r} must hold a mapping at the top; fix the file.")
    for key in ("version", "source"):
        if key not in data:
            raise CatalogError(f"Catalog file {name!r} has no top-level {key!r}; add it.")
    return data


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "entry"
    more = f" (and {err.error_count() - 1} more problems)" if err.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


M = TypeVar("M", bound=BaseModel)


def _build(model: type[M], raw: Any, name: str, section: str) -> list[M]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise CatalogError(f"Catalog file {name!r}: {section!r} must be a list; fix the file.")
    built: list[M] = []
    for position, item in enumerate(raw):
        label = item.get("id") or item.get("theme") if isinstance(item, dict) else None
        try:
            built.append(model.model_validate(item))
        except ValidationError as err:
            raise CatalogError(
                f"Catalog file {name!r}, {section} item {label or position}: {_describe(err)}; "
                "fix the file."
            ) from None
    return built


def _with_url(raw: Any, template: str | None) -> Any:
    if not template or not isinstance(raw, list):
        return raw
    return [
        {**item, "url": item.get("url") or template.format(id=item.get("id", ""))}
        if isinstance(item, dict)
        else item
        for item in raw
    ]


def _source(data: dict[str, Any], name: str) -> Source:
    try:
        return Source.model_validate(data["source"])
    except ValidationError as err:
        raise CatalogError(
            f"Catalog file {name!r}, source: {_describe(err)}; fix the file."
        ) from None


def read_catalog(directory: Traversable | Path | str | None = None) -> Catalog:
    """Read and validate a catalog folder (by default the one shipped in the package).

    Parameters
    ----------
    directory : Traversable, Path or str, optional
        A folder holding :data:`DATA_FILES`.

    Returns
    -------
    Catalog

    Raises
    ------
    CatalogError
        If a file is missing, malformed, disagrees on the version, repeats an id or maps
        an id that does not exist.
    """
    folder: Traversable | Path = (
        data_directory()
        if directory is None
        else Path(directory)
        if isinstance(directory, str)
        else directory
    )
    raw = {name: read_yaml(folder, name) for name in DATA_FILES}

    versions = {name: str(data["version"]) for name, data in raw.items()}
    if len(set(versions.values())) != 1:
        listing = ", ".join(f"{name}={v}" for name, v in versions.items())
        raise CatalogError(
            f"Catalog files disagree on their version ({listing}); give every file the same "
            "version."
        )

    def listed(name: str) -> Any:
        return _with_url(raw[name].get("entries"), raw[name].get("entry_url"))

    atlas = raw["atlas.yaml"]
    entries: list[CatalogEntry] = [
        *_build(OwaspEntry, listed("owasp.yaml"), "owasp.yaml", "entries"),
        *_build(FailureModeEntry, listed("failure_modes.yaml"), "failure_modes.yaml", "entries"),
        *_build(
            AtlasMitigationEntry,
            _with_url(atlas.get("mitigations"), atlas.get("mitigation_url")),
            "atlas.yaml",
            "mitigations",
        ),
        *_build(
            AtlasTechniqueEntry,
            _with_url(atlas.get("techniques"), atlas.get("technique_url")),
            "atlas.yaml",
            "techniques",
        ),
        *_build(CweEntry, listed("cwe.yaml"), "cwe.yaml", "entries"),
    ]
    mappings = _build(MappingRow, raw["mappings.yaml"].get("mappings"), "mappings.yaml", "mappings")
    sources = {name.removesuffix(".yaml"): _source(data, name) for name, data in raw.items()}
    return Catalog(entries, mappings, version=next(iter(versions.values())), sources=sources)


@cache
def load_catalog() -> Catalog:
    """The catalog shipped with Bastion, read and validated once per process.

    The returned object is shared: treat it as read-only (its entries are frozen).
    """
    return read_catalog()
