"""Reading descriptions: good files load, bad ones fail with the file, line, field and choices."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bastion.errors import ConfigError
from bastion.threatmodel.loading import load_description, parse_description_text
from bastion.threatmodel.samples import minimal_description_data

from .conftest import EXAMPLES, SYSTEMS


def _text(**sections: object) -> str:
    return yaml.safe_dump(minimal_description_data(**sections), sort_keys=False)


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_description_text(text, "sys.yaml")
    return str(info.value)


def test_every_example_loads_and_resolves_its_folder() -> None:
    assert len(EXAMPLES) >= 7
    for name in EXAMPLES:
        loaded = load_description(SYSTEMS / f"{name}.yaml")
        assert loaded.base_dir == SYSTEMS
        assert loaded.description.name


def test_minimal_description_loads_and_normalises_control_ids() -> None:
    loaded = parse_description_text(_text(controls={"aml.m0004": "partial"}), "sys.yaml")
    assert list(loaded.description.controls) == ["AML.M0004"]
    assert loaded.description.controls["AML.M0004"].status == "partial"


def test_bare_yes_and_no_are_read_as_control_status() -> None:
    text = _text(controls={}) + "controls:\n  AML.M0004: yes\n  AML.M0002: no\n"
    text = text.replace("controls: {}\n", "")
    claims = parse_description_text(text).description.controls
    assert (claims["AML.M0004"].status, claims["AML.M0002"].status) == ("yes", "no")


def test_unknown_field_names_line_and_allowed_fields() -> None:
    text = _text().replace("  exposure: public_api\n", "  exposure: public_api\n  expsure: x\n")
    msg = _error(text)
    line = text.splitlines().index("  expsure: x") + 1
    assert f"sys.yaml, line {line}: 'access.expsure' is not a known field" in msg
    assert "allowed here: exposure, callers, authentication" in msg


def test_invalid_choice_lists_the_allowed_values() -> None:
    msg = _error(_text().replace("exposure: public_api", "exposure: publik_api"))
    assert "'access.exposure' must be one of public_api, partner_api, internal_service" in msg
    assert "got 'publik_api'" in msg


def test_invalid_list_item_names_its_index() -> None:
    msg = _error(_text(inputs={"modality": "image", "supplied_by": ["everyone"]}))
    assert "'inputs.supplied_by.0' must be one of anyone, customers" in msg


def test_missing_section_and_empty_list() -> None:
    data = minimal_description_data()
    del data["access"]
    assert "'access' is required" in _error(yaml.safe_dump(data))
    assert "'outputs.returns' needs at least one entry" in _error(_text(outputs={"returns": []}))


def test_several_problems_are_reported_together() -> None:
    data = minimal_description_data()
    data["model"]["task"] = "guessing"
    data["inputs"]["modality"] = "smell"
    msg = _error(yaml.safe_dump(data))
    assert "'model.task'" in msg and "'inputs.modality'" in msg


def test_unknown_control_id_suggests_close_matches() -> None:
    msg = _error(_text(controls={"AML.M0040": "yes"}))
    assert "'controls.AML.M0040' is not an ATLAS mitigation id (close: AML.M00" in msg
    assert "AML.M0000 to AML.M0019" in msg


def test_control_given_twice_in_different_case() -> None:
    assert "repeats AML.M0004" in _error(_text(controls={"AML.M0004": "yes", "aml.m0004": "no"}))


def test_invalid_control_status() -> None:
    msg = _error(_text(controls={"AML.M0004": "maybe"}))
    assert "controls.AML.M0004.status' must be one of yes, partial, no" in msg


@pytest.mark.parametrize(
    ("sections", "field", "words"),
    [
        (
            {"outputs": {"returns": ["label"], "score_decimals": 2}},
            "outputs.score_decimals",
            "returns labels only",
        ),
        ({"outputs": {"returns": ["label"], "top_k": 3}}, "outputs.top_k", "does not list top_k"),
        (
            {
                "model": {
                    "task": "classification",
                    "type": "neural_network",
                    "framework": "pytorch",
                    "origin": "fine_tuned",
                }
            },
            "model.origin",
            "needs model.base_model",
        ),
        (
            {
                "model": {
                    "task": "classification",
                    "type": "neural_network",
                    "framework": "pytorch",
                    "origin": "trained_in_house",
                    "base_model": {"name": "resnet", "source": "public_hub"},
                }
            },
            "model.base_model",
            "origin is trained_in_house",
        ),
        (
            {"feedback": {"online_learning": True, "retraining": "scheduled"}},
            "feedback.retraining",
            "online learning",
        ),
        ({"feedback": {"sources": ["end_users"]}}, "feedback.sources", "retraining is never"),
        (
            {"feedback": {"retraining": "continuous", "cadence": "weekly"}},
            "feedback.cadence",
            "needs scheduled or on_demand",
        ),
        ({"feedback": {"reviewed": "all"}}, "feedback.reviewed", "no feedback flows"),
        (
            {
                "access": {
                    "exposure": "public_api",
                    "callers": ["registered_users"],
                    "authentication": "none",
                }
            },
            "access.authentication",
            "registered_users",
        ),
        (
            {"data": {"sources": ["in_house"], "sensitive_attributes": ["health"]}},
            "data.personal_data",
            "attributes of people",
        ),
        (
            {"artefacts": [{"name": "train", "kind": "dataset", "format": "csv"}]},
            "artefacts",
            "must list the model itself",
        ),
    ],
)
def test_impossible_descriptions_are_errors(sections: dict, field: str, words: str) -> None:
    text = _text(**sections)
    msg = _error(text)
    assert f"'{field}' " in msg and words in msg
    assert "sys.yaml, line " in msg


def test_yaml_syntax_error_names_the_line() -> None:
    msg = _error("name: x\nmodel: [unclosed\n")
    assert msg.startswith("sys.yaml, line ") and "not valid YAML" in msg


def test_not_a_mapping() -> None:
    assert "must be a YAML mapping" in _error("- a\n- b\n")


def test_bad_url_and_evaluation_data() -> None:
    access = {
        "exposure": "public_api",
        "callers": ["anyone"],
        "authentication": "api_key",
        "url": "ftp://x",
    }
    assert "must start with http:// or https://" in _error(_text(access=access))
    data = {"sources": ["in_house"], "evaluation": {"builtin": "digits", "path": "x.csv"}}
    assert "give exactly one of 'builtin' or 'path'" in _error(_text(data=data))


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_description(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a folder"):
        load_description(tmp_path)
    assert ConfigError("x").exit_code == 3
