"""HopSkipJump: label-only evasion, exact query counts, budgets and HTTP label endpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bastion.attacks.evasion.hop_skip_jump import hop_skip_jump
from bastion.attacks.evasion.queries import label_oracle
from bastion.errors import QueryBudgetExceeded, UsageError
from bastion.targets.http_target import HttpTarget
from tests.attacks.blackbox_models import (
    cancer,
    cancer_target,
    digits,
    digits_target,
    label_only,
    one_thread,  # noqa: F401 - autouse fixture
    serve_labels,
)


def _batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    data, _ = digits()
    return torch.from_numpy(data.x_test[:n]), torch.from_numpy(data.y_test[:n])


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_hsj_evades_a_label_only_target(norm) -> None:
    target = label_only(digits_target())
    x, y = _batch(8)
    r = hop_skip_jump(
        label_oracle(target), x, y, norm=norm, lower=0.0, upper=1.0, max_queries=800,
        budgets=[0.1, 1.0, 3.0],
    )  # fmt: skip
    assert (r.queries <= 800).all() and int(r.queries.sum()) == target.queries_used
    assert r.found.all()
    preds = target.predict(r.x_adv.numpy())
    attacked = r.clean_correct.numpy()
    assert (preds[attacked] != y.numpy()[attacked]).all()  # every returned point evades
    diff = (r.x_adv - x).reshape(len(x), -1).double()
    size = diff.abs().amax(dim=1) if norm == "linf" else diff.norm(dim=1)
    torch.testing.assert_close(size, r.distance, rtol=1e-5, atol=1e-6)
    typical = 0.25 if norm == "linf" else 1.5  # random noise starts near 1.0 / 4.0
    assert r.distance[r.clean_correct].median() < typical
    assert r.x_adv.min() >= 0 and r.x_adv.max() <= 1


def test_hsj_records_queries_to_each_budget() -> None:
    x, y = _batch(6)
    r = hop_skip_jump(
        label_oracle(digits_target()), x, y, lower=0.0, upper=1.0, max_queries=600,
        budgets=[0.5, 2.0, 100.0],
    )  # fmt: skip
    hit = r.queries_to_budget
    assert hit.shape == (6, 3)
    reached = hit >= 0
    assert reached[:, 2].all()  # every sample gets within a huge radius
    assert (reached[:, 0] <= reached[:, 1]).all()  # a smaller radius is reached no more often
    both = reached[:, 0] & reached[:, 1]
    assert (hit[both, 0] >= hit[both, 1]).all()  # and never sooner
    assert torch.equal(r.success_at(2.0), r.found & (r.distance <= 2.0 * (1 + 1e-6)))


def test_hsj_over_a_label_only_http_endpoint() -> None:
    data, _ = cancer()
    model = cancer_target()
    lo, hi = (torch.as_tensor(b, dtype=torch.float32) for b in model.input_spec.bounds())
    rows = np.r_[np.nonzero(data.y_test == 0)[0][:3], np.nonzero(data.y_test == 1)[0][:3]]
    x, y = torch.from_numpy(data.x_test[rows]), torch.from_numpy(data.y_test[rows])
    with (
        serve_labels(model) as url,
        HttpTarget(
            url, input_spec=model.input_spec, classes=model.classes, response_type="labels",
            response_path="labels", batch_size=256,
        ) as endpoint,
    ):  # fmt: skip
        r = hop_skip_jump(
            label_oracle(endpoint), x, y, lower=lo, upper=hi, scale=hi - lo, max_queries=400
        )
        assert int(r.queries.sum()) == endpoint.queries_used
    assert r.found.all()
    assert (
        model.predict(r.x_adv.numpy())[r.clean_correct.numpy()]
        != y.numpy()[r.clean_correct.numpy()]
    ).all()
    # in units of each feature's range; the nearest other-class rows start at about 1
    assert r.distance[r.clean_correct].median() < 0.5


def test_hsj_respects_budgets_and_masks() -> None:
    x, y = _batch(6)
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[:, 2:6, 2:6] = True
    capped = hop_skip_jump(
        label_oracle(digits_target()), x, y, lower=0.0, upper=1.0, max_queries=5000,
        max_total_queries=700, mask=mask,
    )  # fmt: skip
    assert capped.stopped == "query_budget" and int(capped.queries.sum()) <= 700
    outside = ~mask.expand_as(x)
    assert torch.equal(capped.x_adv[outside], x[outside])
    budgeted = digits_target(query_budget=900)
    r = hop_skip_jump(label_oracle(budgeted), x, y, lower=0.0, upper=1.0, max_queries=5000)
    assert r.stopped == "query_budget" and budgeted.queries_used <= 900
    with pytest.raises(QueryBudgetExceeded):
        hop_skip_jump(label_oracle(digits_target(query_budget=3)), x, y, lower=0.0, upper=1.0)


def test_hsj_refuses_bad_input() -> None:
    x, y = _batch(2)
    labels = label_oracle(digits_target())
    with pytest.raises(UsageError, match="finite lower and upper"):
        hop_skip_jump(labels, x, y, lower=float("-inf"), upper=1.0)
    with pytest.raises(UsageError, match="'max_queries'"):
        hop_skip_jump(labels, x, y, lower=0.0, upper=1.0, max_queries=1)
    with pytest.raises(UsageError, match="'norm'"):
        hop_skip_jump(labels, x, y, lower=0.0, upper=1.0, norm="l1")  # type: ignore[arg-type]
