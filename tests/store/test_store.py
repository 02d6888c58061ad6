"""Store behaviour, run on SQLite and on PostgreSQL (see conftest.store_url)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from bastion.errors import StoreError, UsageError
from bastion.findings import Finding, Interval, Metric, Series, Severity, Status
from bastion.findings.run import GateResult, RunRecord, RunStatus
from bastion.store import Store, open_store
from bastion.store import store as store_module
from bastion.store.schema import STORE_SCHEMA_VERSION, FindingRow, SchemaVersionRow

FindingFactory = Callable[..., Finding]


def _record(**fields: Any) -> RunRecord:
    """A fresh run; fields ``new`` sets itself (run_id, started_at) may be overridden."""
    base: dict[str, Any] = {"name": "demo", "seed": 0, "config_fingerprint": "cfg"}
    base.update(fields)
    fixed: dict[str, Any] = {k: base.pop(k) for k in ("run_id", "started_at") if k in base}
    return RunRecord.new(**base).model_copy(update=fixed)


def _at(minutes: int) -> datetime:
    return datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)


# -- round trip -----------------------------------------------------------------------------


def test_round_trip_keeps_every_field(store: Store, full_record: RunRecord) -> None:
    store.save_run(full_record)
    loaded = store.get_run(full_record.run_id)
    assert loaded == full_record
    assert loaded.model_dump_json() == full_record.model_dump_json()
    rich = loaded.findings[0]
    assert rich.series[0] == full_record.findings[0].series[0]
    assert isinstance(rich.series[0], Series)
    interval = rich.metrics[0].interval
    assert isinstance(interval, Interval)
    assert (interval.low, interval.high, interval.method) == (0.3712, 0.4497, "wilson")
    assert [type(m.value) for m in rich.metrics] == [float, int, str, bool, type(None)]
    assert loaded.started_at.tzinfo is not None
    assert loaded.started_at.utcoffset() == timedelta(0)


def test_round_trip_survives_reopening(store_url: str, full_record: RunRecord) -> None:
    with open_store(store_url) as first:
        first.save_run(full_record)
    with open_store(store_url) as second:
        assert second.get_run(full_record.run_id) == full_record


def test_non_finite_metric_values_round_trip(store: Store, make_finding: FindingFactory) -> None:
    finding = make_finding(
        metrics=[
            Metric(
                name="ratio",
                value=float("nan"),
                definition="undefined when nothing was flipped",
                interval=Interval(low=float("-inf"), high=float("inf")),
            )
        ],
        series=[Series(name="s", x_label="x", y_label="y", x=[0.0, 1.0], y=[1.0, float("nan")])],
    )
    record = _record(findings=[finding])
    store.save_run(record)
    metric = store.get_run(record.run_id).findings[0].metrics[0]
    assert isinstance(metric.value, float) and math.isnan(metric.value)
    assert metric.interval is not None
    assert metric.interval.low == -math.inf and metric.interval.high == math.inf
    series = store.get_run(record.run_id).findings[0].series[0]
    assert series.y[0] == 1.0 and math.isnan(series.y[1])


def test_other_time_zones_come_back_as_the_same_instant_in_utc(store: Store) -> None:
    tokyo = timezone(timedelta(hours=9))
    record = _record(started_at=datetime(2025, 6, 1, 9, 0, tzinfo=tokyo))
    store.save_run(record)
    loaded = store.get_run(record.run_id)
    assert loaded.started_at == datetime(2025, 6, 1, 0, 0, tzinfo=UTC)
    assert loaded.started_at.utcoffset() == timedelta(0)


def test_save_run_updates_the_row_and_replaces_findings(
    store: Store, make_finding: FindingFactory
) -> None:
    record = _record(findings=[make_finding(variant="a"), make_finding(variant="b")])
    store.save_run(record)
    record.findings = [make_finding(variant="c")]
    record.status = RunStatus.FAILED
    record.options = {"changed": True}
    store.save_run(record)
    loaded = store.get_run(record.run_id)
    assert [f.variant for f in loaded.findings] == ["c"]
    assert loaded.status is RunStatus.FAILED
    assert loaded.options == {"changed": True}
    assert len(store.list_runs()) == 1


# -- record_probe and resume ----------------------------------------------------------------


def test_record_probe_appends_findings_and_marks_completed(
    store: Store, make_finding: FindingFactory
) -> None:
    record = _record(planned=["p1@m", "p2@m", "p3@m"], findings=[make_finding(variant="0")])
    store.save_run(record)
    store.record_probe(
        record.run_id, "p1@m", [make_finding(variant="1a"), make_finding(variant="1b")]
    )
    store.record_probe(record.run_id, "p2@m", [])
    store.record_probe(record.run_id, "p3@m", [make_finding(variant="3")])
    loaded = store.get_run(record.run_id)
    assert loaded.completed == ["p1@m", "p2@m", "p3@m"]
    assert [f.variant for f in loaded.findings] == ["0", "1a", "1b", "3"]


def test_record_probe_twice_keeps_the_first_result(
    store: Store, make_finding: FindingFactory
) -> None:
    record = _record(planned=["p@m"])
    store.save_run(record)
    store.record_probe(record.run_id, "p@m", [make_finding(variant="first")])
    store.record_probe(record.run_id, "p@m", [make_finding(variant="second")])
    loaded = store.get_run(record.run_id)
    assert loaded.completed == ["p@m"]
    assert [f.variant for f in loaded.findings] == ["first"]


def test_record_probe_for_an_unknown_run_is_a_store_error(
    store: Store, make_finding: FindingFactory
) -> None:
    with pytest.raises(StoreError, match="not in the store"):
        store.record_probe("nosuchrun", "p@m", [make_finding()])


def test_record_probe_is_all_or_nothing(
    store: Store, make_finding: FindingFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = _record(planned=["p1@m", "p2@m"])
    store.save_run(record)
    store.record_probe(record.run_id, "p1@m", [make_finding(variant="kept")])
    real_insert = store_module._insert_findings

    def insert_then_die(*args: Any, **kwargs: Any) -> None:
        real_insert(*args, **kwargs)
        raise KeyboardInterrupt  # the process is stopped half-way through the write

    monkeypatch.setattr(store_module, "_insert_findings", insert_then_die)
    with pytest.raises(KeyboardInterrupt):
        store.record_probe(record.run_id, "p2@m", [make_finding(variant="lost")])
    monkeypatch.undo()
    loaded = store.get_run(record.run_id)
    assert loaded.completed == ["p1@m"]
    assert [f.variant for f in loaded.findings] == ["kept"]


def test_a_killed_run_resumes_with_every_finished_probe(
    store_url: str, make_finding: FindingFactory
) -> None:
    planned = ["a@m", "b@m", "c@m"]
    record = _record(config_fingerprint="fp-resume", planned=planned)
    killed = open_store(store_url)
    killed.save_run(record)
    killed.record_probe(record.run_id, "a@m", [make_finding(probe_id="a")])
    killed.record_probe(record.run_id, "b@m", [make_finding(probe_id="b")])
    killed.close()  # no finish_run: the process died

    with open_store(store_url) as store:
        resumable = store.find_resumable("fp-resume")
        assert resumable is not None
        assert resumable.run_id == record.run_id
        assert resumable.status is RunStatus.RUNNING
        assert resumable.completed == ["a@m", "b@m"]
        assert [f.probe_id for f in resumable.findings] == ["a", "b"]
        store.record_probe(record.run_id, "c@m", [make_finding(probe_id="c")])
        store.finish_run(record.run_id, RunStatus.COMPLETED, GateResult())
        assert store.find_resumable("fp-resume") is None
        done = store.get_run(record.run_id)
        assert [f.probe_id for f in done.findings] == ["a", "b", "c"]
        assert done.completed == planned


def test_concurrent_record_probe_loses_nothing(
    store_url: str, make_finding: FindingFactory
) -> None:
    keys = [f"p{i}@m" for i in range(24)]
    record = _record(planned=keys)
    stores = [open_store(store_url) for _ in range(4)]
    try:
        stores[0].save_run(record)
        errors: list[BaseException] = []

        def work(store: Store, mine: list[str]) -> None:
            try:
                for key in mine:
                    store.record_probe(record.run_id, key, [make_finding(variant=key)])
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)

        threads = [threading.Thread(target=work, args=(stores[i], keys[i::4])) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        loaded = stores[0].get_run(record.run_id)
    finally:
        for s in stores:
            s.close()
    assert sorted(loaded.completed) == sorted(keys)
    assert sorted(f.variant for f in loaded.findings) == sorted(keys)


# -- finish_run -------------------------------------------------------------------------------


def test_finish_run_sets_status_gate_and_finished_at(store: Store) -> None:
    record = _record()
    store.save_run(record)
    gate = GateResult(fail_on=Severity.LOW, passed=False, failing=["x|y|"])
    before = datetime.now(UTC)
    store.finish_run(record.run_id, RunStatus.INTERRUPTED, gate)
    loaded = store.get_run(record.run_id)
    assert loaded.status is RunStatus.INTERRUPTED
    assert loaded.gate == gate
    assert loaded.finished_at is not None
    assert before - timedelta(seconds=1) <= loaded.finished_at <= datetime.now(UTC)


def test_finish_run_for_an_unknown_run_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="nosuchrun"):
        store.finish_run("nosuchrun", RunStatus.COMPLETED, GateResult())


# -- queries ----------------------------------------------------------------------------------


def test_find_resumable_picks_the_newest_running_or_interrupted(store: Store) -> None:
    runs = {
        "old": _record(config_fingerprint="fp", started_at=_at(0), status=RunStatus.INTERRUPTED),
        "mid": _record(config_fingerprint="fp", started_at=_at(5), status=RunStatus.RUNNING),
        "done": _record(config_fingerprint="fp", started_at=_at(9), status=RunStatus.COMPLETED),
        "failed": _record(config_fingerprint="fp", started_at=_at(10), status=RunStatus.FAILED),
        "other": _record(config_fingerprint="zz", started_at=_at(20), status=RunStatus.RUNNING),
    }
    for r in runs.values():
        store.save_run(r)
    found = store.find_resumable("fp")
    assert found is not None and found.run_id == runs["mid"].run_id
    store.finish_run(runs["mid"].run_id, RunStatus.COMPLETED, GateResult())
    found = store.find_resumable("fp")
    assert found is not None and found.run_id == runs["old"].run_id
    assert store.find_resumable("missing") is None


def test_get_run_by_unique_prefix(store: Store) -> None:
    a, b = _record(run_id="abc111"), _record(run_id="abd222")
    store.save_run(a)
    store.save_run(b)
    assert store.get_run("abc111").run_id == "abc111"
    assert store.get_run("abc").run_id == "abc111"
    assert store.get_run(" abd ").run_id == "abd222"


def test_get_run_with_an_ambiguous_prefix_lists_the_candidates(store: Store) -> None:
    for run_id in ("abc111", "abc222", "xyz000"):
        store.save_run(_record(run_id=run_id))
    with pytest.raises(StoreError, match="ambiguous") as info:
        store.get_run("abc")
    message = str(info.value)
    assert "abc111" in message and "abc222" in message and "xyz000" not in message


def test_get_run_with_no_match_or_wildcards_fails(store: Store) -> None:
    store.save_run(_record(run_id="abc111"))
    for ref in ("zzz", "%", "_bc", ""):
        with pytest.raises(StoreError):
            store.get_run(ref)


def test_list_runs_is_newest_first_and_honours_limit_and_name(
    store: Store, make_finding: FindingFactory
) -> None:
    for i in range(5):
        store.save_run(
            _record(
                name="even" if i % 2 == 0 else "odd",
                started_at=_at(i),
                findings=[make_finding(severity=Severity.CRITICAL)] * i,
            )
        )
    listed = store.list_runs()
    assert [r.started_at for r in listed] == [_at(i) for i in (4, 3, 2, 1, 0)]
    assert [len(r.findings) for r in listed] == [4, 3, 2, 1, 0]
    assert listed[0].severity_counts()["critical"] == 4
    assert len(store.list_runs(2)) == 2
    assert [r.started_at for r in store.list_runs(name="odd")] == [_at(3), _at(1)]
    with pytest.raises(UsageError):
        store.list_runs(0)


def test_latest_run(store: Store) -> None:
    assert store.latest_run() is None
    store.save_run(_record(name="a", started_at=_at(1)))
    store.save_run(_record(name="b", started_at=_at(2)))
    store.save_run(_record(name="a", started_at=_at(3)))
    latest = store.latest_run()
    assert latest is not None and latest.started_at == _at(3)
    latest_b = store.latest_run("b")
    assert latest_b is not None and latest_b.name == "b"
    assert store.latest_run("nobody") is None


# -- schema and lifecycle ---------------------------------------------------------------------


def test_schema_version_is_recorded_once(store_url: str) -> None:
    for _ in range(2):
        open_store(store_url).close()
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(select(SchemaVersionRow.version)).scalars().all()
    finally:
        engine.dispose()
    assert versions == [STORE_SCHEMA_VERSION]


def test_a_store_from_a_newer_bastion_is_refused(store_url: str) -> None:
    open_store(store_url).close()
    engine = create_engine(store_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO schema_version (version, applied_at, bastion_version) "
                    "VALUES (:v, :t, '99.0')"
                ),
                {"v": STORE_SCHEMA_VERSION + 1, "t": datetime.now(UTC)},
            )
    finally:
        engine.dispose()
    with pytest.raises(StoreError, match="newer than this Bastion"):
        open_store(store_url)


def test_findings_are_stored_with_their_index_columns(
    store: Store, store_url: str, make_finding: FindingFactory
) -> None:
    record = _record(findings=[make_finding(variant="v", status=Status.ERROR)])
    store.save_run(record)
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(
                    FindingRow.key, FindingRow.status, FindingRow.severity, FindingRow.position
                ).where(FindingRow.run_id == record.run_id)
            ).one()
            total = conn.execute(select(func.count()).select_from(FindingRow)).scalar_one()
    finally:
        engine.dispose()
    assert tuple(row) == ("robustness.noise|digits-cnn|v", "error", "moderate", 0)
    assert total == 1


def test_a_closed_store_refuses_work(store_url: str) -> None:
    store = open_store(store_url)
    store.close()
    store.close()  # closing twice is harmless
    with pytest.raises(StoreError, match="closed"):
        store.list_runs()
