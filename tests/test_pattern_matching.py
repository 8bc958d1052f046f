"""`match_pattern` in real Bytewax dataflows: the planted frauds of the
project's generator are found exactly, on one worker and on two, and across
an abort and resume; late elements and build-time errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main

from eventio.generators import fraud
from operators.cep.patterns import MalformedPatternError, Pattern
from operators.cep.wiring import match_pattern
from operators.time.eventtime import BoundedOutOfOrderness

MINUTE = 60_000
Record = dict[str, Any]

FRAUD = (
    Pattern.begin("login")
    .where(lambda e: e["event_type"] == "login" and (e["new_location"] or (e.get("failed_attempts") or 0) > 0))
    .next("tx")
    .where(lambda e: e["event_type"] == "transaction" and (e.get("amount") or 0) > 10_000)
    .within(10 * MINUTE)
)


def with_new_location(events: list[Record]) -> list[Record]:
    """Flag events whose location the user had in no earlier event. Done
    before the dataflow: a keyed enrichment step inside it would regroup
    events across workers and make them arrive out of timestamp order."""
    seen: dict[str, set[Any]] = {}
    out = []
    for e in events:
        locations = seen.setdefault(e["user_id"], set())
        out.append(dict(e, new_location=e.get("location") not in locations))
        locations.add(e.get("location"))
    return out


def fraud_flow(items: list[Any], batch_size: int = 40) -> tuple[Dataflow, dict[str, list[Any]]]:
    flow = Dataflow("cep")
    src = op.input("in", flow, TestingSource(items, batch_size=batch_size))
    keyed = op.key_on("by_user", src, lambda e: e["user_id"])
    out = match_pattern(
        "fraud",
        keyed,
        FRAUD,
        timestamp_of=lambda e: e["timestamp"],
        watermarks=lambda: BoundedOutOfOrderness(5_000),
        select=lambda key, m: (key, m["login"][0]["event_id"], m["tx"][0]["event_id"]),
        shards=8,
    )
    sinks: dict[str, list[Any]] = {}
    for port in ("down", "late", "timed_out", "errors"):
        sinks[port] = []
        op.output(port, getattr(out, port), TestingSink(sinks[port]))
    return flow, sinks


def planted_alerts(planted: list[Record]) -> list[tuple[str, tuple[str, str, str]]]:
    return sorted(
        (p["user_id"], (p["user_id"], p["login_event_id"], p["transaction_event_id"])) for p in planted
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_planted_frauds_are_found_exactly(workers: int) -> None:
    events, planted = fraud(count=3_000, seed=3, users=60, frauds=12)
    flow, out = fraud_flow(with_new_location(events))
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    assert planted and sorted(out["down"]) == planted_alerts(planted)
    assert out["late"] == [] and out["errors"] == []


def test_alerts_survive_an_abort_and_resume(tmp_path: Path) -> None:
    events, planted = fraud(count=2_000, seed=5, users=40, frauds=8)
    events = with_new_location(events)
    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(str(tmp_path))
    crashing: list[Any] = events[:1_200] + [TestingSource.ABORT()] + events[1_200:]
    flow, first = fraud_flow(crashing)
    run_main(flow, epoch_interval=timedelta(0), recovery_config=recovery)
    flow, second = fraud_flow(crashing)
    run_main(flow, epoch_interval=timedelta(0), recovery_config=recovery)
    assert len(first["down"]) < len(planted), "the first run should stop before the end"
    assert planted and sorted(set(first["down"]) | set(second["down"])) == planted_alerts(planted)


def test_late_events_are_routed_to_the_late_stream() -> None:
    t = 1_000_000
    items = [
        {"event_id": "a", "user_id": "u", "event_type": "login", "timestamp": t, "failed_attempts": 2},
        {"event_id": "b", "user_id": "v", "event_type": "login", "timestamp": t + 20 * MINUTE},
        {"event_id": "c", "user_id": "u", "event_type": "transaction", "timestamp": t + 1, "amount": 20_000},
    ]
    items = with_new_location(items)
    flow, out = fraud_flow(items, batch_size=1)
    run_main(flow)
    assert [(k, e["event_id"]) for k, e in out["late"]] == [("u", "c")]
    assert out["down"] == []
    assert sorted((k, m["login"][0]["event_id"]) for k, m in out["timed_out"]) == [("u", "a"), ("v", "b")]


def test_malformed_pattern_is_refused_while_building() -> None:
    flow = Dataflow("bad")
    keyed = op.key_on("k", op.input("in", flow, TestingSource([])), lambda e: e)
    with pytest.raises(MalformedPatternError, match="within"):
        match_pattern(
            "cep", keyed, Pattern.begin("a").not_followed_by("b"),
            timestamp_of=lambda e: 0, watermarks=lambda: BoundedOutOfOrderness(0),
        )
    with pytest.raises(ValueError, match="timestamp_of"):
        match_pattern("cep2", keyed, Pattern.begin("a"))
