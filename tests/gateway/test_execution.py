"""Where a served model's pipeline runs: the auto choice, and both paths end to end."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from bastion.data.demo import load_breast_cancer_dataset
from bastion.gateway import execution
from bastion.gateway.app import create_app
from bastion.gateway.build import _demo_target, build_gateway
from bastion.gateway.config import parse_gateway_text
from bastion.gateway.execution import INLINE_BELOW_S, choose_execution
from bastion.guards.audit_verify import verify_audit_log
from bastion.guards.db import GuardDB
from bastion.targets import FakeTarget
from bastion.targets.spec import InputSpec


def _fake(delay_s: float = 0.0, fail: bool = False) -> FakeTarget:
    w = np.random.default_rng(0).normal(size=(3, 2))

    def scores(x: np.ndarray) -> np.ndarray:
        if fail:
            raise RuntimeError("the model is down")
        if delay_s:
            time.sleep(delay_s)
        z = x @ w
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return np.asarray(e / e.sum(axis=1, keepdims=True))

    return FakeTarget(scores, input_spec=InputSpec(shape=(3,)), classes=["a", "b"])


def test_configured_modes_are_taken_as_given() -> None:
    slow = _fake(delay_s=0.01)
    assert choose_execution(slow, "inline").inline
    assert not choose_execution(_fake(), "threadpool").inline
    assert choose_execution(_fake(), "inline").reason == "configured"


def test_auto_inlines_a_fast_model_and_says_why() -> None:
    choice = choose_execution(_fake(), "auto")
    assert choice.inline
    assert choice.median_row_s is not None and choice.median_row_s < INLINE_BELOW_S
    assert "below" in choice.reason


def test_auto_keeps_slow_failing_remote_and_blocking_pipelines_in_the_threadpool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(execution, "TIMING_CALLS", 3)
    slow = choose_execution(_fake(delay_s=2 * INLINE_BELOW_S), "auto")
    assert not slow.inline and "at or above" in slow.reason
    broken = choose_execution(_fake(fail=True), "auto")
    assert not broken.inline and "could not time" in broken.reason
    remote = _fake()
    monkeypatch.setattr(remote, "kind", "http", raising=False)
    assert not choose_execution(remote, "auto").inline
    waits = choose_execution(_fake(), "auto", blocking_guards=["output.abstention"])
    assert not waits.inline and "output.abstention" in waits.reason


def test_auto_does_not_charge_the_query_budget() -> None:
    target = FakeTarget.linear(n_features=3, n_classes=2, seed=0, query_budget=5)
    choose_execution(target, "auto")
    assert target.queries_used == 0


def test_gateway_choice_follows_the_guards(tmp_path: Path) -> None:
    cfg = parse_gateway_text(
        """
models:
  - {name: fast, demo: breast_cancer, guards: [input.validation, output.obfuscation]}
  - {name: queued, demo: breast_cancer, guards: [{id: output.abstention, min_margin: 0.1}]}
  - {name: forced, demo: breast_cancer, execution: threadpool}
""",
        "g.yaml",
        tmp_path,
    )
    gw = build_gateway(cfg, store_url="sqlite://")
    try:
        assert gw.models["fast"].execution.inline
        assert not gw.models["queued"].execution.inline
        assert not gw.models["forced"].execution.inline
    finally:
        gw.close()


@pytest.mark.parametrize("mode", ["inline", "threadpool"])
def test_both_paths_answer_alike_and_audit_every_request(tmp_path: Path, mode: str) -> None:
    data = load_breast_cancer_dataset()
    store = tmp_path / "g.db"
    cfg = parse_gateway_text(
        f"""
store: {store}
models:
  - name: bc
    demo: breast_cancer
    execution: {mode}
    guards: [input.validation, {{id: output.obfuscation, decimals: 2}}]
""",
        "g.yaml",
        tmp_path,
    )
    rows = data.x_test[:12].tolist()
    with TestClient(create_app(cfg)) as client:
        answers = [client.post("/v1/models/bc/predict", json={"input": r}) for r in rows]
        nan_row = '{"input": [NaN' + ", 0.5" * (len(rows[0]) - 1) + "]}"
        bad = client.post("/v1/models/bc/predict", content=nan_row.encode())
        junk = client.post("/v1/models/bc/predict", content=b"{nope")
    assert [a.status_code for a in answers] == [200] * len(rows)
    assert bad.status_code == 422 and junk.status_code == 400
    model = _demo_target("breast_cancer")[0]
    expected = np.round(model.predict_proba(np.asarray(rows, dtype=np.float32)), 2)
    got = np.asarray([a.json()["output"] for a in answers])
    np.testing.assert_allclose(got, expected, atol=1e-9)
    db = GuardDB(str(store))
    try:
        report = verify_audit_log(db)
        assert report.ok and report.entries == len(rows) + 2
    finally:
        db.close()
