"""The committed JSON Schema and the documentation cannot drift from the code."""

from __future__ import annotations

import json
import subprocess
import sys
import typing

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from bastion.threatmodel.loading import _models_in
from bastion.threatmodel.schema import SystemDescription, description_schema_text

from .conftest import EXAMPLES, ROOT, SYSTEMS

SCHEMA_FILE = ROOT / "docs" / "threatmodel-schema.json"
DOC_FILE = ROOT / "docs" / "threat-modelling.md"


def test_committed_schema_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == description_schema_text(), (
        "docs/threatmodel-schema.json is stale; run "
        "`python -m bastion.threatmodel.schema > docs/threatmodel-schema.json`"
    )


def test_module_prints_the_schema() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bastion.threatmodel.schema"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout == description_schema_text()


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_validate_against_the_json_schema(name: str) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load((SYSTEMS / f"{name}.yaml").read_text()), schema)


def test_json_schema_rejects_what_the_loader_rejects() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    data = yaml.safe_load((SYSTEMS / f"{EXAMPLES[0]}.yaml").read_text())
    data["access"]["exposure"] = "carrier_pigeon"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)
    data = yaml.safe_load((SYSTEMS / f"{EXAMPLES[0]}.yaml").read_text())
    data["controls"] = {"M4": "yes"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def _field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        paths.append(path)
        nested = [m for m in _models_in(info.annotation) if m.__module__.endswith(".schema")]
        if nested and typing.get_origin(info.annotation) is not dict:
            paths.extend(_field_paths(nested[0], f"{path}."))
    return paths


def test_documentation_explains_every_field_and_choice() -> None:
    doc = DOC_FILE.read_text(encoding="utf-8")
    missing = [p for p in _field_paths(SystemDescription) if f"`{p.rsplit('.', 1)[-1]}`" not in doc]
    assert not missing, f"docs/threat-modelling.md does not mention {missing}"
    vocab = json.loads(description_schema_text())
    choices = {
        value
        for definition in vocab["$defs"].values()
        for prop in definition.get("properties", {}).values()
        for value in prop.get("enum", prop.get("items", {}).get("enum", []))
    }
    undocumented = sorted(c for c in choices if f"`{c}`" not in doc)
    assert not undocumented, f"docs/threat-modelling.md does not mention {undocumented}"
