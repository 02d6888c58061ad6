"""The Square attack: strength, constraints, exact query counting and budgets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bastion.attacks.evasion.geometry import SearchGeometry, pseudo_gaussian
from bastion.attacks.evasion.queries import margins, score_oracle
from bastion.attacks.evasion.square import square_attack, square_fraction
from bastion.demo.server import serve_target
from bastion.errors import DataError, MissingCapabilityError, QueryBudgetExceeded, UsageError
from bastion.targets.http_target import HttpTarget
from tests.attacks.blackbox_models import (
    cancer,
    cancer_target,
    digits,
    digits_target,
    label_only,
    one_thread,  # noqa: F401 - autouse fixture
)


def _digits_batch(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    data, _ = digits()
    return torch.from_numpy(data.x_test[:n]), torch.from_numpy(data.y_test[:n])


def test_square_linf_breaks_the_digits_cnn_within_budget() -> None:
    target = digits_target()
    x, y = _digits_batch()
    r = square_attack(
        score_oracle(target), x, y, norm="linf", eps=0.2, n_queries=300, lower=0.0, upper=1.0
    )
    assert r.clean_correct.float().mean() >= 0.9
    robust = (~r.success).float().mean().item()
    assert robust < 0.3  # a clean accuracy of ~0.97 falls below 0.3
    preds = target.predict(r.x_adv.numpy())
    assert (preds[r.success.numpy()] != y.numpy()[r.success.numpy()]).all()


@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 0.8)])
def test_square_respects_eps_bounds_and_mask(norm, eps) -> None:
    target = digits_target()
    x, y = _digits_batch(20)
    mask = torch.ones(1, 8, 8, dtype=torch.bool)
    mask[:, :, :2] = False  # the two left columns may not change
    r = square_attack(
        score_oracle(target), x, y, norm=norm, eps=eps, n_queries=120, lower=0.0, upper=1.0,
        mask=mask, seed=3,
    )  # fmt: skip
    delta = (r.x_adv - x).reshape(len(x), -1)
    size = delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps * (1 + 1e-5)).all()
    assert r.x_adv.min() >= 0.0 and r.x_adv.max() <= 1.0
    assert torch.equal(r.x_adv[:, :, :, :2], x[:, :, :, :2])
    assert (size[r.clean_correct] > 0).any()


def test_square_counts_every_query_exactly() -> None:
    target = digits_target()
    x, y = _digits_batch(30)
    calls: list[int] = []
    oracle = score_oracle(target)

    def counted(rows: torch.Tensor) -> torch.Tensor:
        calls.append(len(rows))
        return oracle(rows)

    r = square_attack(counted, x, y, norm="linf", eps=0.05, n_queries=50, lower=0.0, upper=1.0)
    assert sum(calls) == r.total_queries == target.queries_used
    assert int(r.queries.max()) <= 50
    assert calls[0] == len(x)  # one clean check per sample, batched
    assert (r.queries[~r.clean_correct] == 1).all()
    robust_to_the_end = r.clean_correct & ~r.success
    assert (r.queries[robust_to_the_end] == 50).all()  # every row used its whole budget
    assert len(calls) == 2 + r.iterations  # one batched query per iteration


def test_square_stops_cleanly_when_the_query_budget_runs_out() -> None:
    x, y = _digits_batch(20)
    capped = square_attack(
        score_oracle(digits_target()), x, y, norm="linf", eps=0.02, n_queries=500,
        lower=0.0, upper=1.0, max_total_queries=200,
    )  # fmt: skip
    assert capped.stopped == "query_budget" and capped.total_queries <= 200
    assert (capped.x_adv - x).abs().max() <= 0.02 + 1e-6
    budgeted = digits_target(query_budget=300)
    r = square_attack(
        score_oracle(budgeted), x, y, norm="linf", eps=0.02, n_queries=500, lower=0.0, upper=1.0
    )
    assert r.stopped == "query_budget" and budgeted.queries_used <= 300
    assert r.total_queries == budgeted.queries_used
    with pytest.raises(QueryBudgetExceeded):
        square_attack(
            score_oracle(digits_target(query_budget=5)), x, y, norm="linf", eps=0.1,
            lower=0.0, upper=1.0,
        )  # fmt: skip


def test_square_breaks_the_breast_cancer_sklearn_model() -> None:
    target = cancer_target()
    data, _ = cancer()
    lo, hi = (torch.as_tensor(b, dtype=torch.float32) for b in target.input_spec.bounds())
    x = torch.from_numpy(data.x_test[:40])
    y = torch.from_numpy(data.y_test[:40])
    r = square_attack(
        score_oracle(target), x, y, norm="linf", eps=0.1, n_queries=200, lower=lo, upper=hi,
        scale=hi - lo,
    )  # fmt: skip
    assert r.clean_correct.float().mean() > 0.9
    assert (~r.success).float().mean() < 0.5
    assert ((r.x_adv - x).abs() <= 0.1 * (hi - lo) * (1 + 1e-5) + 1e-6).all()
    assert ((r.x_adv >= lo) & (r.x_adv <= hi)).all()
    target.input_spec.check(r.x_adv.numpy())


def test_square_over_http_matches_the_in_process_model() -> None:
    local = cancer_target()
    data, _ = cancer()
    lo, hi = (torch.as_tensor(b, dtype=torch.float32) for b in local.input_spec.bounds())
    x, y = torch.from_numpy(data.x_test[:12]), torch.from_numpy(data.y_test[:12])
    kw = {"norm": "l2", "eps": 0.2, "n_queries": 40, "lower": lo, "upper": hi, "scale": hi - lo}
    direct = square_attack(score_oracle(local), x, y, **kw)
    with (
        serve_target(cancer_target()) as url,
        HttpTarget(url, input_spec=local.input_spec, classes=local.classes) as remote,
    ):
        over_http = square_attack(score_oracle(remote), x, y, **kw)
        assert remote.queries_used == over_http.total_queries
    assert torch.equal(direct.x_adv, over_http.x_adv)  # JSON floats round-trip exactly
    assert torch.equal(direct.queries, over_http.queries)
    assert over_http.success.any()


def test_square_targeted_hits_the_target_label() -> None:
    target = digits_target()
    x, y = _digits_batch(10)
    goal = (y + 1) % 10
    r = square_attack(
        score_oracle(target), x, y, norm="linf", eps=0.3, n_queries=300, lower=0.0, upper=1.0,
        y_target=goal,
    )  # fmt: skip
    hit = r.success.numpy()
    assert hit.sum() >= 5
    assert (target.predict(r.x_adv.numpy())[hit] == goal.numpy()[hit]).all()


def test_square_refuses_bad_input() -> None:
    x, y = _digits_batch(4)
    oracle = score_oracle(digits_target())
    with pytest.raises(UsageError, match="'eps'"):
        square_attack(oracle, x, y, norm="linf", eps=-0.1)
    with pytest.raises(UsageError, match="'norm'"):
        square_attack(oracle, x, y, norm="l1", eps=0.1)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="'n_queries'"):
        square_attack(oracle, x, y, norm="linf", eps=0.1, n_queries=1)
    with pytest.raises(DataError, match="outside the declared bounds"):
        square_attack(oracle, x + 2, y, norm="linf", eps=0.1, lower=0.0, upper=1.0)
    with pytest.raises(DataError, match="one integer label per row"):
        square_attack(oracle, x, y[:2], norm="linf", eps=0.1)
    with pytest.raises(MissingCapabilityError):
        score_oracle(label_only(digits_target()))


def test_schedule_geometry_and_margins() -> None:
    assert square_fraction(0.8, 0, 100) == 0.8
    assert square_fraction(0.8, 100, 100) == pytest.approx(0.8 / 512)
    bump = pseudo_gaussian(5, 5)
    assert bump[2, 2] == bump.max() and bump[0, 0] == bump.min() == pytest.approx(1 / 9)
    geo = SearchGeometry.build(torch.zeros(3, 20), torch.zeros(3, dtype=torch.int64))
    win = geo.window(3, 0.25, torch.Generator().manual_seed(0), minimum=1)
    assert win.mask.shape == (3, 1, 1, 20) and (win.mask.sum(dim=-1) == 5).all()
    scores = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    labels = torch.tensor([0, 0])
    assert margins(scores, labels, targeted=False).tolist() == [1.0, -3.0]
    assert margins(scores, torch.tensor([1, 1]), targeted=True).tolist() == [1.0, -2.0]
    np.testing.assert_allclose(
        geo.window_pattern(win, torch.Generator()).pow(2).sum(dim=(2, 3)).numpy(), 1.0, rtol=1e-5
    )


def test_square_on_an_onnx_model(tmp_path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from bastion.targets import InputSpec
    from bastion.targets.onnx_target import OnnxTarget

    rng = np.random.default_rng(0)
    w = rng.normal(size=(16, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["out"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor("w", TensorProto.FLOAT, [16, 3], w.flatten().tolist())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "linear.onnx")
    target = OnnxTarget(
        tmp_path / "linear.onnx", input_spec=InputSpec(shape=(16,), lower=0.0, upper=1.0),
        classes=["a", "b", "c"],
    )  # fmt: skip
    x = torch.from_numpy(rng.random((20, 16)).astype(np.float32))
    y = torch.from_numpy(target.predict(x.numpy()))
    used = target.queries_used
    r = square_attack(
        score_oracle(target), x, y, norm="linf", eps=0.15, n_queries=100, lower=0.0, upper=1.0
    )
    assert r.total_queries == target.queries_used - used
    assert r.success.float().mean() > 0.5
    assert (
        target.predict(r.x_adv.numpy())[r.success.numpy()] != y.numpy()[r.success.numpy()]
    ).all()
