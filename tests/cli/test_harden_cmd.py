"""``bastion harden``: the command line around bastion.runs.harden."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from bastion.cli.harden_cmd import harden_registry, parse_assignments, register
from bastion.errors import UsageError
from bastion.store import open_store
from bastion.targets import InputSpec
from bastion.targets.torch_target import TorchTarget
from tests.remedies.models import one_thread


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


FAST = [
    "--probe-param", "evasion.pgd:n_samples=300",
    "--probe-param", "evasion.pgd:steps=5",
    "--probe-param", "evasion.pgd:sanity_samples=8",
    "--probe-param", "evasion.pgd:budgets=[0.1, 0.3]",
    "--probe-param", "evasion.apgd:n_samples=10",
    "--probe-param", "evasion.apgd:sanity_samples=0",
    "--probe-param", "evasion.apgd:steps=5",
    "--probe-param", "evasion.apgd:n_target_classes=0",
    "--probe-param", "evasion.apgd:budgets=[0.1]",
]  # fmt: skip


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    return app


def test_demo_is_verified_stores_both_runs_and_saves_torchscript(tmp_path: Path) -> None:
    db, model, out = tmp_path / "s.db", tmp_path / "hardened.pt", tmp_path / "report"
    args = ["harden", "--demo", "-q", "--store", f"sqlite:///{db}", "-o", str(out)]
    args += ["--param", "epochs=3", "--param", "steps=5", "--save", str(model), *FAST]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert "Verified" in result.output and "evasion.pgd" in result.output
    assert "Clean test accuracy" in result.output
    assert (out / "report.json").exists() or any(out.iterdir())
    store = open_store(f"sqlite:///{db}")
    runs = store.list_runs()
    store.close()
    assert len(runs) == 2
    loaded = TorchTarget.from_torchscript(
        model,
        input_spec=InputSpec(shape=(1, 8, 8), lower=0.0, upper=1.0),
        classes=list("0123456789"),
    )
    assert loaded.predict(np.zeros((2, 1, 8, 8), np.float32)).shape == (2,)


def test_config_and_demo_together_or_neither_is_a_usage_error(tmp_path: Path) -> None:
    for args in (["harden"], ["harden", "--demo", str(tmp_path / "c.yaml")]):
        result = CliRunner().invoke(_app(), args)
        assert isinstance(result.exception, UsageError)


def test_unknown_remedy_is_a_usage_error() -> None:
    result = CliRunner().invoke(_app(), ["harden", "--demo", "--remedy", "nope.nope"])
    assert isinstance(result.exception, UsageError)
    assert "evasion.adversarial_training" in str(result.exception)


def test_assignments_and_registry() -> None:
    assert parse_assignments(["eps=0.1", "norm=l2"], "--param") == {"eps": 0.1, "norm": "l2"}
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_assignments(["eps"], "--param")
    reg = harden_registry()
    assert "evasion.adversarial_training" in reg.remedies
    assert {"evasion.pgd", "evasion.apgd"} <= set(reg.probes)
