"""Reading a system description: YAML, validation, and errors that point at a line.

:func:`load_description` reads a file, :func:`parse_description_text` a string. Both
validate against :class:`~bastion.threatmodel.schema.SystemDescription`, check that every
key of ``controls`` is an ATLAS mitigation, and refuse descriptions that contradict
themselves in a way no real system can (see :mod:`bastion.threatmodel.contradictions`).
Every problem becomes one clause of a :class:`~bastion.errors.ConfigError` naming the
file, the line, the field and what is allowed.

Examples
--------
>>> text = '''
... name: toy
... model: {task: classification, type: linear, framework: scikit_learn,
...         origin: trained_in_house}
... inputs: {modality: tabular, supplied_by: [customers]}
... access: {exposure: public_api, callers: [anyone], authentication: nonne}
... outputs: {returns: [label]}
... data: {sources: [in_house]}
... artefacts: [{name: m, kind: model, format: skops}]
... '''
>>> try:
...     parse_description_text(text, "toy.yaml")
... except ConfigError as err:
...     print(err)  # doctest: +ELLIPSIS
toy.yaml, line 6: 'access.authentication' must be one of none, api_key, ...; got 'nonne'.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bastion.catalog import Catalog, Kind, load_catalog, normalize_id
from bastion.errors import ConfigError
from bastion.runs.yaml_source import YamlLocator, load_yaml, load_yaml_text
from bastion.threatmodel.contradictions import impossible
from bastion.threatmodel.schema import ControlClaim, SystemDescription

__all__ = ["SystemFile", "load_description", "parse_description_text"]

_MAX_PROBLEMS = 6


@dataclass(frozen=True)
class SystemFile:
    """A validated description and where it was read from.

    Attributes
    ----------
    description : SystemDescription
        Control ids normalised to the catalog's spelling (``AML.M0004``).
    source : str
        The file name, or the label given to :func:`parse_description_text`.
    base_dir : Path
        Relative paths in the description (artefacts, evaluation data) start here.
    """

    description: SystemDescription
    source: str
    base_dir: Path

    def resolve(self, relative: str) -> Path:
        """A path from the description, resolved against :attr:`base_dir`."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.base_dir / path


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation refers to (through lists, unions, dicts)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    origin = typing.get_origin(annotation)
    if origin is not None or isinstance(annotation, types.UnionType):
        for arg in typing.get_args(annotation):
            found.extend(_models_in(arg))
    return found


def _fields_at(loc: Sequence[str | int]) -> list[str]:
    """Field names allowed in the mapping at ``loc`` (for "not a known field" messages)."""
    model: type[BaseModel] = SystemDescription
    for part in loc:
        if isinstance(part, int) or part not in model.model_fields:
            if model is SystemDescription and part != "controls":
                return list(model.model_fields)
            continue
        nested = _models_in(model.model_fields[part].annotation)
        if not nested:
            break
        model = nested[0]
    return list(model.model_fields)


def _expected(problem: Any) -> str:
    ctx = problem.get("ctx") or {}
    expected = str(ctx.get("expected", ""))
    return expected.replace("'", "").replace(" or ", ", ")


def _message(problem: Any) -> str:
    kind = problem["type"]
    loc = problem["loc"]
    got = problem.get("input")
    if kind == "extra_forbidden":
        allowed = ", ".join(_fields_at(loc[:-1]))
        return f"is not a known field (check the spelling); allowed here: {allowed}"
    if kind == "missing":
        return "is required"
    if kind in ("literal_error", "enum"):
        return f"must be one of {_expected(problem)}; got {got!r}"
    if kind == "too_short":
        return "needs at least one entry"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false; got {got!r}"
    msg = str(problem["msg"]).removeprefix("Value error, ")
    return msg[:1].lower() + msg[1:] + (f"; got {got!r}" if not isinstance(got, dict) else "")


def _clean_loc(loc: Sequence[Any]) -> list[str | int]:
    return [p for p in loc if not (isinstance(p, str) and p.startswith("function-"))]


def _explain(problems: list[tuple[list[str | int], str]], where: YamlLocator) -> str:
    lines = []
    for loc, msg in problems[:_MAX_PROBLEMS]:
        field = ".".join(str(p) for p in loc) or "(top level)"
        lines.append(f"{where.where(loc)}: '{field}' {msg}")
    more = len(problems) - _MAX_PROBLEMS
    return "; ".join(lines) + (f" (and {more} more)" if more > 0 else "") + "."


def _normalise_controls(
    controls: dict[str, ControlClaim], catalog: Catalog
) -> tuple[dict[str, ControlClaim], list[tuple[list[str | int], str]]]:
    known = [e.id for e in catalog.entries(Kind.ATLAS_MITIGATION)]
    problems: list[tuple[list[str | int], str]] = []
    result: dict[str, ControlClaim] = {}
    for key, claim in controls.items():
        canonical = next((k for k in known if k == normalize_id(key)), None)
        if canonical is None:
            close = difflib.get_close_matches(normalize_id(key), known, n=2, cutoff=0.7)
            hint = f" (close: {', '.join(close)})" if close else ""
            problems.append(
                (
                    ["controls", key],
                    f"is not an ATLAS mitigation id{hint}; use {known[0]} to {known[-1]}, "
                    "see `bastion catalog --kind atlas_mitigation`",
                )
            )
        elif canonical in result:
            problems.append((["controls", key], f"repeats {canonical}; give each control once"))
        else:
            result[canonical] = claim
    return result, problems


def _validate(data: Any, where: YamlLocator, base_dir: Path, catalog: Catalog) -> SystemFile:
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where.source}: a system description must be a YAML mapping with at least "
            "name, model, inputs, access, outputs, data and artefacts; see examples/systems/."
        )
    try:
        desc = SystemDescription.model_validate(data)
    except ValidationError as err:
        found = [(_clean_loc(p["loc"]), _message(p)) for p in err.errors()]
        raise ConfigError(_explain(found, where)) from None
    controls, problems = _normalise_controls(desc.controls, catalog)
    problems += [(list(p.path), p.message) for p in impossible(desc)]
    if problems:
        raise ConfigError(_explain(problems, where))
    desc = desc.model_copy(update={"controls": controls})
    return SystemFile(description=desc, source=where.source, base_dir=base_dir)


def parse_description_text(
    text: str,
    source: str = "<system description>",
    base_dir: Path | None = None,
    *,
    catalog: Catalog | None = None,
) -> SystemFile:
    """Validate a description given as YAML text.

    Raises
    ------
    ConfigError
        If the YAML is malformed, a field is unknown, missing or has a value outside
        its vocabulary, a control id is not an ATLAS mitigation, or the description
        contradicts itself.
    """
    data, where = load_yaml_text(text, source)
    return _validate(data, where, base_dir or Path(), catalog or load_catalog())


def load_description(path: Path, *, catalog: Catalog | None = None) -> SystemFile:
    """Read and validate a description file; its relative paths start at its folder.

    Raises
    ------
    ConfigError
        As :func:`parse_description_text`, or when the file cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ConfigError(
            f"The system description {path} {what}; give the path of a YAML file "
            "(see examples/systems/)."
        )
    data, where = load_yaml(path)
    return _validate(data, where, path.parent, catalog or load_catalog())
