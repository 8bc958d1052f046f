"""flows.count_or_timeout from files and Kafka, with injected clocks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from bytewax.testing import run_main

from eventio import generators
from eventio.broker import EmbeddedBroker
from eventio.demo import read_topic
from flows.count_or_timeout import build
from tests.flow_files import read_jsonl

T0 = 1_800_000_000_000
KEYS = ("user_id", "event_count", "total_amount", "first_timestamp", "last_timestamp", "reason")


def frozen() -> int:
    return T0


def jumping() -> Callable[[], int]:
    """Ten minutes later at every call: every batch times out as soon as the
    operator next looks at processing time."""
    now = [T0]

    def clock() -> int:
        now[0] += 10 * 60_000
        return now[0]

    return clock


def summary(user: str, events: list[dict[str, Any]], reason: str) -> dict[str, Any]:
    return {
        "user_id": user,
        "event_count": len(events),
        "total_amount": round(sum(e.get("amount", 0.0) for e in events), 2),
        "first_timestamp": min(e["timestamp"] for e in events),
        "last_timestamp": max(e["timestamp"] for e in events),
        "reason": reason,
    }


def expected_without_timeouts(events: list[dict[str, Any]], count: int = 100) -> dict[str, list[dict[str, Any]]]:
    """No timeout ever comes due: each user's events in arrival order, cut
    every `count`; the remainder is emitted at the end of input."""
    by_user: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_user.setdefault(e["user_id"], []).append(e)
    out: dict[str, list[dict[str, Any]]] = {}
    for user, evs in by_user.items():
        for i in range(0, len(evs), count):
            chunk = evs[i : i + count]
            out.setdefault(user, []).append(summary(user, chunk, "count" if len(chunk) == count else "end_of_input"))
    return out


def per_user(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        assert tuple(r) == KEYS
        out.setdefault(r["user_id"], []).append(r)
    return out


def _run_files(tmp_path: Path, lines: list[str], **extra: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    (tmp_path / "in.jsonl").write_text("".join(line + "\n" for line in lines))
    run_main(build(input_path=str(tmp_path / "in.jsonl"), output_path=str(tmp_path / "out.jsonl"),
                   error_output_path=str(tmp_path / "err.jsonl"), **extra))
    return read_jsonl(tmp_path / "out.jsonl"), read_jsonl(tmp_path / "err.jsonl")


def test_count_batches_and_the_end_of_input_remainder(tmp_path: Path) -> None:
    events = list(generators.bursts(4000, seed=2, users=25))
    out, errors = _run_files(tmp_path, [json.dumps(e) for e in events] + ["not json"], clock=frozen)
    want = expected_without_timeouts(events)
    assert per_user(out) == want
    assert any(r["reason"] == "count" for rs in want.values() for r in rs)
    assert [e["payload"] for e in errors] == ["not json"]


def test_timeouts_cut_batches_that_still_cover_every_event_once_in_order(tmp_path: Path) -> None:
    """Where a timeout cuts depends on how the runtime batches input, so the
    check is: each user's batches, in order, are consecutive runs of the
    user's events with the right figures; only full batches say `count`."""
    events = list(generators.bursts(3000, seed=4, users=25))
    out, _ = _run_files(tmp_path, [json.dumps(e) for e in events], clock=jumping())
    by_user: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_user.setdefault(e["user_id"], []).append(e)
    got = per_user(out)
    assert set(got) == set(by_user)
    for user, batches in got.items():
        rest = by_user[user]
        for r in batches:
            assert 1 <= r["event_count"] <= 100
            chunk, rest = rest[: r["event_count"]], rest[r["event_count"] :]
            want_reason = "count" if len(chunk) == 100 else r["reason"]
            assert r == summary(user, chunk, want_reason)
            assert r["reason"] in (("count",) if len(chunk) == 100 else ("timeout", "end_of_input"))
        assert rest == []
    assert sum(r["reason"] == "timeout" for r in out) > len(by_user)


def test_smaller_batches_by_configuration(tmp_path: Path) -> None:
    events = list(generators.bursts(500, seed=9, users=5))
    out, _ = _run_files(tmp_path, [json.dumps(e) for e in events], clock=frozen, batch_count=7)
    assert per_user(out) == expected_without_timeouts(events, 7)


def test_bad_configuration_is_refused_at_build_time() -> None:
    with pytest.raises(ValueError, match="count"):
        build(input_path=__file__, batch_count=0)


def test_kafka_to_kafka(broker: EmbeddedBroker, topic_name: str) -> None:
    """Keyed by user, each user's events stay in order within a partition."""
    events = list(generators.bursts(3000, seed=6, users=20))
    t = {k: f"{topic_name}-{k}" for k in ("in", "out", "dlq")}
    broker.create_topics({t["in"]: 2, t["out"]: 1, t["dlq"]: 1})
    generators.write_records(events, None, t["in"], broker.bootstrap_servers)
    run_main(build(kafka_bootstrap_servers=broker.bootstrap_servers, input_topic=t["in"], output_topic=t["out"],
                   dlq_topic=t["dlq"], stop_at_end=True, clock=frozen))
    records = read_topic(broker.bootstrap_servers, t["out"])
    assert per_user([json.loads(v) for _, v in records]) == expected_without_timeouts(events)
    assert all(k == json.loads(v)["user_id"].encode() for k, v in records)
