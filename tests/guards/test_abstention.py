"""output.abstention: doubtful answers become 202 "needs review" and land in the queue."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.errors import UsageError
from bastion.guards import (
    AbstentionGuard,
    AuditLog,
    GuardDB,
    Guarded,
    InputValidationGuard,
    MemoryReviewQueue,
    StoreReviewQueue,
    verify_audit_log,
)
from bastion.guards.abstention import margins
from bastion.targets import FakeTarget, InputSpec


def _target() -> FakeTarget:
    spec = InputSpec(shape=(1,), lower=0.0, upper=1.0)
    # P(class 1) = x: rows near 0.5 are the doubtful ones.
    return FakeTarget(lambda x: np.hstack([1 - x, x]), input_spec=spec, classes=["no", "yes"])


def test_calibrated_rate_on_heldout_scores() -> None:
    rng = np.random.default_rng(0)
    p = rng.beta(0.5, 0.5, size=(4000, 1))
    scores = np.hstack([1 - p, p])
    guard = AbstentionGuard.calibrated(MemoryReviewQueue(), scores[:2000], rate=0.05)
    held = guard.doubtful(scores[2000:]).mean()
    assert abs(held - 0.05) < 0.02
    assert guard.min_margin == pytest.approx(np.quantile(margins(scores[:2000])[1], 0.05))


def test_pipeline_withholds_queues_and_audits(db: GuardDB) -> None:
    target = _target()
    queue = StoreReviewQueue(db)
    audit = AuditLog(db)
    guarded = Guarded(
        target,
        [InputValidationGuard.for_target(target), AbstentionGuard(queue, min_margin=0.2)],
        sinks=[audit],
    )
    assert guarded.handle_inputs([[0.95], [0.05]]).allowed
    outcome = guarded.handle_inputs([[0.95], [0.55]], principal="carol")
    assert outcome.http_status == 202 and outcome.needs_review and outcome.outputs is None
    body = outcome.body()
    assert body["status"] == "needs_review" and body["rows"] == [1] and "outputs" not in body
    [item] = queue.pending()
    assert item.review_id == body["review_id"] and item.request_id == outcome.request_id
    assert item.principal == "carol" and item.rows == [1]
    assert item.inputs == [[0.949999988079071], [0.550000011920929]]
    assert item.outputs[1] == pytest.approx([0.45, 0.55])
    resolved = queue.resolve(item.review_id, {"label": "yes"})
    assert resolved.status == "resolved" and queue.pending() == []
    report = verify_audit_log(db)
    assert report.ok and report.entries == 2


def test_confidence_threshold_labels_and_errors() -> None:
    guard = AbstentionGuard(MemoryReviewQueue(), min_confidence=0.7)
    assert guard.doubtful(np.array([[0.6, 0.3, 0.1], [0.8, 0.1, 0.1]])).tolist() == [True, False]
    with pytest.raises(UsageError):
        AbstentionGuard(MemoryReviewQueue())
    with pytest.raises(UsageError, match="n >= 20"):
        AbstentionGuard.calibrated(MemoryReviewQueue(), np.ones((5, 2)) / 2, rate=0.05)
    with pytest.raises(UsageError):
        AbstentionGuard(MemoryReviewQueue(), min_margin=2.0)
    with pytest.raises(UsageError, match="No review item"):
        MemoryReviewQueue().resolve("nope", {})
