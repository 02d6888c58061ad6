"""The pipeline: order, hooks, decisions, events, sinks, failures."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import pytest

from bastion.errors import StoreError, UsageError
from bastion.findings import CatalogRefs
from bastion.guards import (
    Decision,
    Guard,
    Guarded,
    GuardMeta,
    GuardRequest,
    GuardResponse,
    InputValidationGuard,
    MemorySink,
    MetricsSink,
    RequestDenied,
    build_guard,
)
from bastion.guards.canonical import request_digest
from bastion.guards.outcome import GuardOutcome, deny
from bastion.guards.pipeline import (
    INPUT_DIGEST_HEADER,
    MODEL_VERSION_HEADER,
    REQUEST_ID_HEADER,
    digest_inputs,
)
from bastion.plugins import Registry
from bastion.targets import FakeTarget

REFS = CatalogRefs(owasp=["ML01"])


def _target(**kw: Any) -> FakeTarget:
    return FakeTarget.linear(n_features=4, n_classes=3, seed=0, **kw)


class Recorder(Guard):
    """Records the hooks it sees."""

    meta: ClassVar[GuardMeta] = GuardMeta(id="test.recorder", title="Recorder", catalog=REFS)

    def __init__(self, name: str, log: list[str], order: int = 100) -> None:
        self.name, self.log = name, log
        self.meta = dataclasses.replace(type(self).meta, id=f"test.{name}", order=order)  # type: ignore[misc]

    def before(self, request: GuardRequest) -> Decision:
        self.log.append(f"before:{self.name}")
        return Decision.allow()

    def after(self, request: GuardRequest, response: GuardResponse) -> Decision:
        self.log.append(f"after:{self.name}")
        return Decision.allow()


class Fixed(Guard):
    """Returns a fixed decision from one hook."""

    meta: ClassVar[GuardMeta] = GuardMeta(id="test.fixed", title="Fixed", catalog=REFS, order=50)

    def __init__(self, decision: Decision, *, hook: str = "before") -> None:
        self.decision, self.hook = decision, hook

    def before(self, request: GuardRequest) -> Decision:
        return self.decision if self.hook == "before" else Decision.allow()

    def after(self, request: GuardRequest, response: GuardResponse) -> Decision:
        return self.decision if self.hook == "after" else Decision.allow()


class Boom(Guard):
    """Raises."""

    meta: ClassVar[GuardMeta] = GuardMeta(id="test.boom", title="Boom", catalog=REFS)

    def __init__(self, error: Exception) -> None:
        self.error = error

    def before(self, request: GuardRequest) -> Decision:
        raise self.error


X = [[0.1, 0.2, 0.3, 0.4]]


def test_stable_order_before_model_after() -> None:
    log: list[str] = []
    target = _target()
    guards = [Recorder("c", log, 30), Recorder("a", log, 10), Recorder("b", log, 30)]
    outcome = Guarded(target, guards).handle_inputs(X)
    assert outcome.allowed
    assert log == ["before:a", "before:c", "before:b", "after:a", "after:c", "after:b"]
    assert target.queries_used == 1


def test_denial_stops_pipeline_skips_model_and_is_recorded() -> None:
    log: list[str] = []
    target, sink = _target(), MemorySink()
    guarded = Guarded(
        target,
        [
            Recorder("late", log, 90),
            Fixed(deny("no", http_status=429, headers={"Retry-After": "7"})),
        ],
        sinks=[sink],
    )
    outcome = guarded.handle_inputs(X, principal="eve")
    assert (outcome.http_status, outcome.decided_by, outcome.reason) == (429, "test.fixed", "no")
    assert outcome.outputs is None and outcome.headers == {"Retry-After": "7"}
    assert target.queries_used == 0 and log == []
    assert sink.outcomes == [outcome]
    assert outcome.events[0]["guard"] == "test.fixed" and outcome.events[0]["action"] == "deny"
    with pytest.raises(RequestDenied) as err:
        guarded.predict_proba(X)
    assert err.value.http_status == 429 and err.value.headers["Retry-After"] == "7"
    assert err.value.guard == "test.fixed" and err.value.request_id


def test_transform_inputs_request_and_outputs() -> None:
    target = _target()

    class Principal(Fixed):
        def before(self, request: GuardRequest) -> Decision:
            return Decision.transform(dataclasses.replace(request, principal="authed"))

    seen: list[str] = []

    class Spy(Recorder):
        def after(self, request: GuardRequest, response: GuardResponse) -> Decision:
            seen.append(request.principal)
            return Decision.allow()

    halve = Fixed(Decision.transform(np.full((1, 4), 0.5)))
    rounder = Fixed(Decision.transform(np.array([7])), hook="after")
    outcome = Guarded(
        target, [Principal(Decision.allow()), halve, Spy("spy", []), rounder]
    ).handle_inputs(X, principal="claimed")
    assert outcome.principal == "authed" and seen == ["authed"]
    assert outcome.outputs.tolist() == [7]
    assert outcome.input_digest.startswith("sha256:")


def test_flags_are_collected_and_counted() -> None:
    metrics = MetricsSink()
    outcome = Guarded(
        _target(), [Fixed(Decision.flag("odd", score=3.0))], sinks=[metrics]
    ).handle_inputs(X)
    assert outcome.allowed
    assert outcome.events == (
        {"reason": "odd", "score": 3.0, "guard": "test.fixed", "action": "flag"},
    )
    snap = metrics.snapshot()
    assert snap["flags"] == {("fake-linear", "test.fixed"): 1}
    assert snap["requests"] == {("fake-linear", 200): 1}
    assert (
        'bastion_flags_total{model="fake-linear",guard="test.fixed"} 1' in metrics.prometheus_text()
    )


def test_guard_failures_fail_closed() -> None:
    target = _target()
    crashed = Guarded(target, [Boom(RuntimeError("bug"))]).handle_inputs(X)
    assert crashed.http_status == 500 and crashed.decided_by == "test.boom"
    unavailable = Guarded(target, [Boom(StoreError("db down"))]).handle_inputs(X)
    assert unavailable.http_status == 503
    assert target.queries_used == 0


def test_critical_sink_failure_withholds_answer_other_sinks_do_not() -> None:
    class Broken:
        def __init__(self, critical: bool) -> None:
            self.critical = critical

        def record(self, outcome: GuardOutcome) -> None:
            raise OSError("disk full")

    assert Guarded(_target(), sinks=[Broken(False)]).handle_inputs(X).allowed
    with pytest.raises(StoreError, match="was not released"):
        Guarded(_target(), sinks=[Broken(True)]).handle_inputs(X)


def test_model_errors_become_statuses() -> None:
    assert Guarded(_target()).handle_inputs([[1, 2]]).http_status == 422
    assert Guarded(_target()).handle_inputs("junk").http_status == 422
    budget = Guarded(_target(query_budget=1))
    assert budget.handle_inputs(X).allowed
    assert budget.handle_inputs(X).http_status == 429
    broken = FakeTarget(
        lambda x: np.full((len(x), 3), np.nan),
        input_spec=_target().input_spec,
        classes=["a", "b", "c"],
    )
    assert Guarded(broken).handle_inputs(X).http_status == 502


def test_reserved_headers_are_set_by_the_pipeline() -> None:
    seen: dict[str, str] = {}

    class Spy(Recorder):
        def before(self, request: GuardRequest) -> Decision:
            seen.update(request.headers)
            return Decision.allow()

    outcome = Guarded(_target(), [Spy("s", [])], model_version="7").handle_inputs(
        X, headers={"X-Bastion-Request-Id": "forged", "X-Other": "1"}
    )
    assert seen[REQUEST_ID_HEADER] == outcome.request_id != "forged"
    assert seen[MODEL_VERSION_HEADER] == "7" and seen["x-other"] == "1"


def test_wrong_model_and_bad_guards() -> None:
    guarded = Guarded(_target(), model="digits")
    req = GuardRequest(principal="p", model="other", inputs=np.zeros((1, 4)))
    assert guarded.handle(req).http_status == 404
    with pytest.raises(UsageError, match="Guard instances"):
        Guarded(_target(), [InputValidationGuard])  # type: ignore[list-item]
    with pytest.raises(UsageError):
        Guarded(_target(), output="logits")  # type: ignore[arg-type]


def test_predict_and_labels_only_target() -> None:
    target = _target(labels_only=True)
    guarded = Guarded(target, [InputValidationGuard.for_target(target)])
    out = guarded.predict_proba(X)
    assert out.shape == (1,) and guarded.predict(X).tolist() == out.tolist()


def test_build_guard_by_id_one_line() -> None:
    reg = Registry(guards={"input.validation": InputValidationGuard})
    target = _target()
    guard = build_guard({"id": "input.validation", "spec": target.input_spec}, registry=reg)
    assert Guarded(target, [guard]).handle_inputs([[9, 9, 9, 9]]).http_status == 422
    with pytest.raises(UsageError, match="cannot be built"):
        build_guard({"id": "input.validation", "nope": 1}, registry=reg)
    with pytest.raises(UsageError, match="spec"):
        build_guard({"bad": 1}, registry=reg)


def test_after_hooks_see_the_input_digest_the_audit_records() -> None:
    seen: dict[str, str] = {}

    class Spy(Recorder):
        def before(self, request: GuardRequest) -> Decision:
            seen["before"] = request.headers.get(INPUT_DIGEST_HEADER, "")
            return Decision.allow()

        def after(self, request: GuardRequest, response: GuardResponse) -> Decision:
            seen["after"] = request.headers[INPUT_DIGEST_HEADER]
            return Decision.allow()

    outcome = Guarded(_target(), [Spy("s", [])]).handle_inputs(
        X, headers={INPUT_DIGEST_HEADER: "sha256:forged"}
    )
    assert seen["before"] == ""  # a caller's value never reaches a guard
    assert seen["after"] == outcome.input_digest == request_digest(X)


def test_digest_of_lists_is_the_digest_of_the_array_the_model_sees() -> None:
    assert digest_inputs(X, "float32") == request_digest(X, "float32")
    assert digest_inputs(X, "float32") == digest_inputs(np.asarray(X, dtype=np.float32))
    assert digest_inputs(X, "float64") != digest_inputs(X, "float32")
    # Not a rectangular array of numbers: the JSON digest, as without a dtype.
    ragged = [[0.1, 0.2], [0.3]]
    assert digest_inputs(ragged, "float32") == digest_inputs(ragged)
    assert digest_inputs(["a"], "float32") == digest_inputs(["a"])
    assert digest_inputs([[float("nan")]], "float32").startswith("sha256:")
    # A number float32 cannot hold would collide with every other overflow: JSON digest.
    assert digest_inputs([[1e300]], "float32") == digest_inputs([[1e300]])
    assert digest_inputs([[1e300]], "float32") != digest_inputs([[1e301]], "float32")


def test_run_does_not_record_and_record_takes_chosen_sinks() -> None:
    first, second = MemorySink(), MemorySink()
    guarded = Guarded(_target(), sinks=[first, second])
    outcome = guarded.run(GuardRequest(principal="p", model=guarded.model, inputs=X))
    assert outcome.allowed and not first.outcomes and not second.outcomes
    guarded.record(outcome, [second])
    assert not first.outcomes and second.outcomes == [outcome]
    guarded.record(outcome)
    assert first.outcomes == [outcome] and len(second.outcomes) == 2
