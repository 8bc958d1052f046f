"""flows.quarterly_reports against a plain simulation over the input."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional
from zoneinfo import ZoneInfo

import pytest
from bytewax.testing import run_main

from eventio import generators
from eventio.broker import EmbeddedBroker
from eventio.demo import read_topic
from flows.quarterly_reports import build
from tests.flow_files import run_on_files

MINUTE = 60_000
DAY = 24 * 60 * MINUTE
MAX = 2**63 - 1


def quarter_bounds(ts: int, zone: str) -> tuple[int, int, int, int]:
    """(year, quarter, start ms, end ms) of the local calendar quarter of `ts`."""
    tz = ZoneInfo(zone)
    local = datetime.fromtimestamp(ts / 1000, tz)
    q = (local.month - 1) // 3
    start = datetime(local.year, 3 * q + 1, 1, tzinfo=tz)
    end = datetime(local.year + (q == 3), (3 * q + 3) % 12 + 1, 1, tzinfo=tz)
    return local.year, q + 1, int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def simulate(
    events: list[dict[str, Any]], zone: str = "UTC", bound: int = 2 * MINUTE, lateness: int = 0
) -> tuple[list[tuple[Any, ...]], list[str]]:
    """Firings and late event ids, in the documented rules: the watermark
    after each event is the highest timestamp so far - bound - 1; a quarter
    fires once the watermark reaches its last millisecond; an event whose
    quarter ended (last ms + lateness) at or before the watermark is late;
    one arriving after its quarter's last millisecond, within the lateness,
    fires it at once: a late update superseding the quarter's earlier record
    if it had one."""
    wm = -(2**63)
    top = -(2**63)
    windows: dict[tuple[str, int], list[Any]] = {}
    fired: set[tuple[str, int]] = set()
    firings: list[tuple[Any, ...]] = []
    late: list[str] = []

    def fire(key: tuple[str, int]) -> None:
        year, quarter, start, end, count, total = windows[key]
        again = key in fired
        fired.add(key)
        firings.append((key[0], year, quarter, start, end, count, round(total, 2), again,
                        [[start, end]] if again else []))

    def advance(to: int) -> None:
        for key in sorted(windows, key=lambda k: windows[k][3]):
            if key not in fired and windows[key][3] - 1 <= to:
                fire(key)

    for e in events:
        year, quarter, start, end = quarter_bounds(e["timestamp"], zone)
        if end - 1 + lateness <= wm:
            late.append(e["event_id"])
        else:
            key = (e["region"], start)
            w = windows.setdefault(key, [year, quarter, start, end, 0, 0.0])
            w[4] += 1
            w[5] += e.get("amount", 0.0)
            if end - 1 <= wm:
                fire(key)
        top = max(top, e["timestamp"])
        if top - bound - 1 > wm:
            wm = top - bound - 1
            advance(wm)
    advance(MAX)
    return firings, late


def observed(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    keys = ("region", "year", "quarter", "window_start", "window_end", "event_count", "total_amount",
            "is_late_update", "supersedes")
    return sorted(tuple(r[k] for k in keys) for r in records)


def _run(tmp_path: Path, events: list[dict[str, Any]], **extra: Any) -> dict[str, list[dict[str, Any]]]:
    return run_on_files(build, tmp_path, map(json.dumps, events), **extra)


def disordered(count: int, seed: int) -> list[dict[str, Any]]:
    events = generators.quarterly(count, seed=seed, days=400)
    return list(generators.disorder(events, seed=seed, bound_ms=MINUTE, late_fraction=0.03, late_by_ms=20 * DAY))


def test_out_of_order_events_and_late_events(tmp_path: Path) -> None:
    events = disordered(4000, 3)
    out = _run(tmp_path, events)
    firings, late = simulate(events)
    assert observed(out["output"]) == sorted(firings)
    assert sorted(e["event_id"] for e in out["late_output"]) == sorted(late)
    assert late and out["error_output"] == []
    assert {r["quarter"] for r in out["output"]} == {1, 2, 3, 4}


def test_allowed_lateness_refires_quarters_with_updated_totals(tmp_path: Path) -> None:
    events = disordered(3000, 5)
    out = _run(tmp_path, events, allowed_lateness_ms=25 * DAY)
    firings, late = simulate(events, lateness=25 * DAY)
    assert observed(out["output"]) == sorted(firings)
    assert any(f[-2] for f in firings), "some quarters must be updated late"
    assert sorted(e["event_id"] for e in out["late_output"]) == sorted(late)


def _event(n: int, iso: str, region: Optional[str] = "emea", amount: Optional[float] = 10.0) -> dict[str, Any]:
    e: dict[str, Any] = {"event_id": f"e{n}", "user_id": "u1", "event_type": "purchase",
                         "timestamp": int(datetime.fromisoformat(iso).timestamp() * 1000)}
    if region is not None:
        e["region"] = region
    if amount is not None:
        e["amount"] = amount
    return e


def test_quarters_follow_the_report_time_zone(tmp_path: Path) -> None:
    events = [
        _event(0, "2024-03-31T21:30:00+00:00", amount=1.5),   # Berlin 23:30 CEST, Q1
        _event(1, "2024-03-31T22:30:00+00:00", amount=2.25),  # Berlin 00:30 CEST Apr 1, Q2
        _event(2, "2024-12-31T23:30:00+00:00", amount=None),  # Berlin 00:30 CET Jan 1 2025, Q1 2025
    ]
    (tmp_path / "utc").mkdir()
    (tmp_path / "berlin").mkdir()
    utc = _run(tmp_path / "utc", events)
    berlin = _run(tmp_path / "berlin", events, report_timezone="Europe/Berlin")
    assert [(r["year"], r["quarter"], r["event_count"], r["total_amount"]) for r in utc["output"]] == [
        (2024, 1, 2, 3.75), (2024, 4, 1, 0.0)]
    assert [(r["year"], r["quarter"], r["event_count"], r["total_amount"]) for r in berlin["output"]] == [
        (2024, 1, 1, 1.5), (2024, 2, 1, 2.25), (2025, 1, 1, 0.0)]
    q2 = berlin["output"][1]
    assert q2["window_start"] == int(datetime(2024, 3, 31, 22, tzinfo=timezone.utc).timestamp() * 1000)
    assert q2["window_end"] == int(datetime(2024, 6, 30, 22, tzinfo=timezone.utc).timestamp() * 1000)
    assert observed(berlin["output"]) == sorted(simulate(events, "Europe/Berlin")[0])


def test_events_without_region_go_to_the_dead_letter_output(tmp_path: Path) -> None:
    events = [_event(0, "2024-05-01T00:00:00+00:00"), _event(1, "2024-05-01T00:00:01+00:00", region=None)]
    out = _run(tmp_path, events)
    assert [r["event_count"] for r in out["output"]] == [1]
    assert [d["reason"] for d in out["error_output"]] == ["event 'e1' has no 'region', which this flow requires"]


def test_an_unknown_time_zone_is_refused_at_build_time() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        build(input_path=__file__, report_timezone="Mars/Olympus")


def test_kafka_to_kafka_with_three_partitions(broker: EmbeddedBroker, topic_name: str) -> None:
    """Each partition is in timestamp order: per-partition watermarks make nothing late."""
    events = list(generators.quarterly(3000, seed=8, days=500))
    t = {k: f"{topic_name}-{k}" for k in ("in", "out", "late", "dlq")}
    broker.create_topics({t["in"]: 3, t["out"]: 1, t["late"]: 1, t["dlq"]: 1})
    generators.write_records(events, None, t["in"], broker.bootstrap_servers)
    run_main(build(kafka_bootstrap_servers=broker.bootstrap_servers, input_topic=t["in"], output_topic=t["out"],
                   late_topic=t["late"], dlq_topic=t["dlq"], stop_at_end=True))
    records = [json.loads(v) for _, v in read_topic(broker.bootstrap_servers, t["out"])]
    got = observed(records)
    want = sorted(simulate(events, bound=10**15)[0])  # nothing late: compare totals only
    assert [g[:6] for g in got] == [w[:6] for w in want]
    assert [g[6] for g in got] == pytest.approx([w[6] for w in want], abs=0.011)
    assert read_topic(broker.bootstrap_servers, t["late"]) == []
