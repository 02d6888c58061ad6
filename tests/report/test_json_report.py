"""JSON report and its schema."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from bastion.errors import UsageError
from bastion.findings import Metric
from bastion.findings.run import SCHEMA_VERSION, RunRecord
from bastion.report.json_report import to_json, write_json
from bastion.report.schema import SCHEMA_ID, report_schema, report_schema_text

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "report-schema.json"
REGENERATE = "python -m bastion.report.schema > docs/report-schema.json"


def _validator() -> jsonschema.protocols.Validator:
    schema = report_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_write_json_round_trips(record: RunRecord, tmp_path: Path) -> None:
    out = write_json(record, tmp_path / "nested" / "bastion-report.json")
    assert out == tmp_path / "nested" / "bastion-report.json"
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["schema_version"] == SCHEMA_VERSION
    assert data == record.model_dump(mode="json")
    assert RunRecord.model_validate(data) == record


def test_committed_schema_matches_the_code() -> None:
    assert COMMITTED.exists(), f"docs/report-schema.json is missing; run `{REGENERATE}`."
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert committed == report_schema(), f"docs/report-schema.json is stale; run `{REGENERATE}`."
    assert COMMITTED.read_text(encoding="utf-8") == report_schema_text()


def test_schema_header() -> None:
    schema = report_schema()
    assert list(schema)[:4] == ["$schema", "$id", "title", "description"]
    assert schema["$id"] == SCHEMA_ID
    assert SCHEMA_VERSION in schema["title"]
    assert "schema_version" in schema["properties"]


def test_real_record_validates(record: RunRecord) -> None:
    data = json.loads(to_json(record))
    errors = list(_validator().iter_errors(data))
    assert errors == []


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d.pop("run_id"),
        lambda d: d["findings"][0].update(status="pwned"),
        lambda d: d["findings"][0]["metrics"][0].update(n="five hundred"),
        lambda d: d.update(seed="seven"),
        lambda d: d["gate"].update(fail_on="catastrophic"),
    ],
)
def test_schema_rejects_broken_records(record: RunRecord, breakage: object) -> None:
    data = copy.deepcopy(record.model_dump(mode="json"))
    breakage(data)  # type: ignore[operator]
    assert list(_validator().iter_errors(data)), "the schema accepted a broken record"


def test_module_prints_the_schema() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bastion.report.schema"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout == report_schema_text()


def test_non_finite_numbers_become_null(record: RunRecord) -> None:
    f = record.findings[0]
    odd = f.model_copy(
        update={"metrics": [Metric(name="auc", value=math.nan, definition="Area under ROC.")]}
    )
    text = to_json(record.model_copy(update={"findings": [odd]}))
    assert "NaN" not in text
    assert json.loads(text)["findings"][0]["metrics"][0]["value"] is None


def test_unwritable_path_is_a_usage_error(record: RunRecord, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="Cannot write the report file"):
        write_json(record, blocker / "bastion-report.json")
