"""End-to-end: the commands a user types, their output and their exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bastion.cli.main import main
from bastion.data.demo import load_breast_cancer_dataset
from bastion.demo import save_demo_models


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str):
    monkeypatch.setattr(sys, "argv", ["bastion", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.delenv("BASTION_STORE_URL", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    data = load_breast_cancer_dataset(0)
    return save_demo_models(folder, breast_cancer=data)


# The full demo runs every probe (minutes); the test keeps to the quick ones so that it
# checks the whole chain -- train, serve, assess, store, report, gate, diff -- in seconds.
QUICK = "exposure.output_granularity,exposure.query_limits,robustness.noise,evasion.pgd"


def test_demo_writes_every_report_and_runs_can_be_diffed(workdir, monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "demo", "--quiet", "--probes", QUICK)
    assert code == 0
    for name in ("json", "sarif", "html", "md"):
        assert (workdir / "bastion-report" / f"bastion-report.{name}").stat().st_size > 500
    assert "exposure.query_limits" in out and "breast-cancer-api" in out
    assert "Open the HTML report" in out
    report = json.loads((workdir / "bastion-report/bastion-report.json").read_text())
    assert report["status"] == "completed" and report["findings"]
    assert {t["name"] for t in report["targets"]} == {
        "digits-cnn",
        "breast-cancer-logreg",
        "breast-cancer-api",
        "intrusion-mlp",
    }

    code, out, _ = run_cli(
        monkeypatch, capsys, "demo", "--quiet", "--probes", QUICK, "--fail-on", "moderate"
    )
    assert code == 1 and "Gate: failed" in out

    code, out, _ = run_cli(monkeypatch, capsys, "runs", "list", "--json")
    runs = json.loads(out)
    assert code == 0 and len(runs) == 2
    newer, older = runs[0]["run_id"], runs[1]["run_id"]
    code, out, _ = run_cli(monkeypatch, capsys, "runs", "diff", older, newer, "--json")
    diff = json.loads(out)
    assert code == 0 and diff["counts"]["unchanged"] > 0


def test_assess_own_model_from_options(workdir, monkeypatch, capsys, saved_models):
    model = saved_models["breast_cancer"]
    code, out, _ = run_cli(
        monkeypatch,
        capsys,
        "assess",
        "--target",
        str(model),
        "--data",
        "breast_cancer",
        "--probes",
        "exposure.output_granularity",
        "--format",
        "json,markdown",
        "--quiet",
    )
    assert code == 0, out
    assert sorted(p.name for p in (workdir / "bastion-report").iterdir()) == [
        "bastion-report.json",
        "bastion-report.md",
    ]
    assert "exposure.output_granularity" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ((), 2, "Nothing to assess"),
        (("--bogus",), 2, "No such option"),
        (("missing.yaml",), 3, "No config file at missing.yaml"),
        (("--target", "nope.onnx", "--data", "breast_cancer"), 5, "No model file at"),
        (("--target", "m.onnx", "--data", "nope.csv"), 4, "nope.csv"),
        (("x.yaml", "--target", "m.onnx"), 2, "not both"),
        (("--target", "m.onnx", "--data", "breast_cancer", "--fail-on", "severe"), 2, "severe"),
    ],
)
def test_bad_input_gets_one_sentence_and_its_exit_code(
    workdir, monkeypatch, capsys, args, code, message
):
    got, out, err = run_cli(monkeypatch, capsys, "assess", *args)
    assert got == code
    assert message in err
    assert "Traceback" not in err + out


def test_config_typo_points_at_the_line(workdir, monkeypatch, capsys):
    (workdir / "cfg.yaml").write_text(
        "target:\n  path: m.skops\n  kind: sklean\ndata: {builtin: digits}\n"
    )
    code, _, err = run_cli(monkeypatch, capsys, "assess", "cfg.yaml")
    assert code == 3
    assert "cfg.yaml, line 3" in err and "'target.kind'" in err


def test_dataset_that_does_not_fit_the_model(workdir, monkeypatch, capsys, saved_models):
    model = saved_models["breast_cancer"]
    code, _, err = run_cli(
        monkeypatch, capsys, "assess", "--target", str(model), "--data", "digits", "--quiet"
    )
    assert code in (4, 5)
    assert "cannot" in err.lower() or "shape" in err.lower()
    assert "Traceback" not in err
