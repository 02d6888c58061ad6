"""``bastion runs list|show|diff`` on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from bastion.cli.runs_cmd import register
from bastion.errors import StoreError
from bastion.findings import Finding, Metric, Severity, Status
from bastion.findings.run import GateResult, RunRecord, RunStatus, SkippedProbe, TargetSummary
from bastion.store import STORE_URL_ENV, open_store
from bastion.store.testing import (
    postgres_test_url,
    postgres_unreachable_reason,
    temporary_schema,
)

T0 = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


def _finding(variant: str, status: Status, severity: Severity, acc: float) -> Finding:
    return Finding(
        probe_id="robustness.noise",
        title="Accuracy under noise",
        target="digits-cnn",
        variant=variant,
        status=status,
        severity=severity,
        summary=f"Accuracy {acc} under {variant} noise.",
        metrics=[Metric(name="accuracy", value=acc, definition="share correct")],
    )


def _baseline() -> RunRecord:
    return RunRecord(
        run_id="aaaa11112222",
        name="baseline",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=75),
        status=RunStatus.COMPLETED,
        config_fingerprint="fp",
        targets=[
            TargetSummary(
                name="digits-cnn",
                kind="torch",
                dataset="digits",
                classes=["0", "1"],
                input_shape=[1, 8, 8],
                capabilities=["probabilities"],
            )
        ],
        planned=["robustness.noise@digits-cnn"],
        completed=["robustness.noise@digits-cnn"],
        skipped=[
            SkippedProbe(
                probe_id="privacy.membership",
                target="digits-cnn",
                reason="needs the training set",
            )
        ],
        findings=[
            _finding("gaussian", Status.VULNERABLE, Severity.IMPORTANT, 0.41),
            _finding("uniform", Status.NOT_VULNERABLE, Severity.NONE, 0.9),
            _finding("saltpepper", Status.VULNERABLE, Severity.LOW, 0.7),
        ],
        gate=GateResult(fail_on=Severity.MODERATE, passed=False, failing=["k"]),
    )


def _hardened() -> RunRecord:
    return RunRecord(
        run_id="bbbb33334444",
        name="hardened",
        started_at=T0 + timedelta(hours=1),
        status=RunStatus.INTERRUPTED,
        config_fingerprint="fp",
        planned=["robustness.noise@digits-cnn", "exposure.query_limits@digits-cnn"],
        completed=["robustness.noise@digits-cnn"],
        findings=[
            _finding("gaussian", Status.NOT_VULNERABLE, Severity.NONE, 0.88),
            _finding("uniform", Status.VULNERABLE, Severity.CRITICAL, 0.2),
            _finding("saltpepper", Status.VULNERABLE, Severity.LOW, 0.65),
        ],
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store holding the baseline and hardened runs."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cli.db'}"
        _fill(url)
        yield url
        return
    server = postgres_test_url()
    reason = postgres_unreachable_reason(server)
    if reason is not None:
        pytest.skip(reason)
    with temporary_schema(server) as url:
        _fill(url)
        yield url


def _fill(url: str) -> None:
    with open_store(url) as store:
        store.save_run(_baseline())
        store.save_run(_hardened())


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """Test root."""

    register(root)
    return root


def _invoke(app: typer.Typer, *args: str, env: dict[str, str] | None = None) -> Result:
    # A wide terminal, so table cells are not folded across lines.
    return CliRunner().invoke(
        app, list(args), env={"COLUMNS": "200", **(env or {})}, catch_exceptions=True
    )


def test_list_json(app: typer.Typer, store_url: str) -> None:
    result = _invoke(app, "runs", "list", "--store", store_url, "--json")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.output)
    assert [r["run_id"] for r in runs] == ["bbbb33334444", "aaaa11112222"]
    assert runs[0]["severity_counts"] == {"critical": 1, "important": 0, "moderate": 0, "low": 1}
    assert runs[1]["gate"]["passed"] is False
    assert (runs[0]["planned"], runs[0]["completed"], runs[0]["findings"]) == (2, 1, 3)


def test_list_limit_and_env_var(app: typer.Typer, store_url: str) -> None:
    result = _invoke(app, "runs", "list", "-n", "1", "--json", env={STORE_URL_ENV: store_url})
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in json.loads(result.output)] == ["hardened"]


def test_list_table(app: typer.Typer, store_url: str) -> None:
    result = _invoke(app, "runs", "list", "--store", store_url)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "aaaa11112222" in out and "bbbb33334444" in out
    assert "interrupted" in out and "completed" in out
    assert "1 crit 1 low" in out and "1 imp 1 low" in out
    baseline_row = next(line for line in out.splitlines() if "aaaa11112222" in line)
    assert baseline_row.split()[-1] == "fail"
    assert "2025-05-01 13:00" in out
    assert out.index("bbbb33334444") < out.index("aaaa11112222")


def test_list_without_any_store(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(STORE_URL_ENV, raising=False)
    result = _invoke(app, "runs", "list")
    assert result.exit_code == 0
    assert "No runs yet" in result.output
    assert json.loads(_invoke(app, "runs", "list", "--json").output) == []
    assert not (tmp_path / ".bastion").exists()


def test_show_json_is_the_run_record(app: typer.Typer, store_url: str) -> None:
    result = _invoke(app, "runs", "show", "aaaa", "--store", store_url, "--json")
    assert result.exit_code == 0, result.output
    assert RunRecord.model_validate_json(result.output) == _baseline()


def test_show_table(app: typer.Typer, store_url: str) -> None:
    result = _invoke(app, "runs", "show", "aaaa11112222", "--store", store_url)
    assert result.exit_code == 0, result.output
    out = result.output
    for expected in (
        "baseline",
        "1m15s",
        "digits-cnn",
        "privacy.membership",
        "needs the training set",
        "Accuracy 0.41 under gaussian noise.",
        "important",
        "not vulnerable",
        "1 of 1 completed",
    ):
        assert expected in out, expected
    # Findings are ordered by severity: the important one before the low one.
    assert out.index("Accuracy 0.41") < out.index("Accuracy 0.7 ")


def test_show_latest_lists_pending_probes(app: typer.Typer, store_url: str) -> None:
    result = _invoke(app, "runs", "show", "latest", "--store", store_url)
    assert result.exit_code == 0, result.output
    assert "hardened" in result.output
    assert "Not yet run (1): exposure.query_limits@digits-cnn" in result.output


def test_show_unknown_and_ambiguous_runs(app: typer.Typer, store_url: str) -> None:
    with open_store(store_url) as store:
        store.save_run(_baseline().model_copy(update={"run_id": "aaaa99999999"}))
    result = _invoke(app, "runs", "show", "zzzz", "--store", store_url)
    assert result.exit_code != 0
    assert isinstance(result.exception, StoreError)
    assert "No run matches 'zzzz'" in str(result.exception)
    result = _invoke(app, "runs", "show", "aaaa", "--store", store_url)
    assert isinstance(result.exception, StoreError)
    assert "aaaa11112222" in str(result.exception) and "aaaa99999999" in str(result.exception)


def test_diff_json(app: typer.Typer, store_url: str) -> None:
    result = _invoke(app, "runs", "diff", "aaaa", "bbbb", "--store", store_url, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["a"], data["b"]) == ("aaaa11112222", "bbbb33334444")
    assert [d["variant"] for d in data["new"]] == ["uniform"]
    assert [d["variant"] for d in data["fixed"]] == ["gaussian"]
    assert [d["variant"] for d in data["changed"]] == ["saltpepper"]
    assert data["changed"][0]["changes"] == [{"field": "accuracy", "before": 0.7, "after": 0.65}]
    assert data["counts"]["unchanged"] == 0


def test_diff_table_exits_zero_even_with_regressions(app: typer.Typer, store_url: str) -> None:
    result = _invoke(app, "runs", "diff", "aaaa11112222", "latest", "--store", store_url)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "New vulnerable findings (1)" in out
    assert "Fixed findings (1)" in out
    assert "Changed findings (1)" in out
    assert "status: vulnerable → not_vulnerable" in out
    assert "1 new, 1 fixed, 1 changed, 0 unchanged." in out


def test_missing_store_file_is_an_error(app: typer.Typer, tmp_path: Path) -> None:
    missing = tmp_path / "absent.db"
    result = _invoke(app, "runs", "show", "abc", "--store", str(missing))
    assert isinstance(result.exception, StoreError)
    assert result.exception.exit_code == 6
    assert not missing.exists()
