"""flows.realtime_analytics against the brute-force Flink reference."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any


from eventio import generators
from flows.realtime_analytics import build
from tests.windowing_reference import Reference, Spec
from tests.flow_files import OUTPUTS, run_on_files

MINUTE = 60_000


def _events() -> list[dict[str, Any]]:
    events = list(generators.disorder(generators.sessions(5000, seed=21, users=100), seed=21,
                                      bound_ms=3 * MINUTE, late_fraction=0.04, late_by_ms=30 * MINUTE))
    # Events this flow cannot use: logins and logouts have no category; drop one value.
    i = next(i for i, e in enumerate(events) if "category" in e)
    events[i] = {k: v for k, v in events[i].items() if k != "value"}
    return events


def _usable(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if "category" in e and "value" in e]


def _reference(events: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    spec = Spec(kind="tumbling", size=5 * MINUTE, lateness=10 * MINUTE, bound=2 * MINUTE,
                evaluate=lambda vals: (len(vals), sum(v for v, _ in vals) / len(vals)))
    return Reference(spec).run([(e["category"], e["timestamp"], (e["value"], e["event_id"]), 0) for e in events])


def _run(tmp_path: Path, events: list[dict[str, Any]], **extra: Any) -> dict[str, list[dict[str, Any]]]:
    return run_on_files(build, tmp_path, map(json.dumps, events), (*OUTPUTS, "late_summary"), **extra)


def test_windows_late_updates_and_late_events_match_flinks_rules(tmp_path: Path) -> None:
    events = _events()
    out = _run(tmp_path, events, shards=1)
    firings, late = _reference(_usable(events))
    want = Counter((k, s, e, n, round(avg, 9), bool(sup), json.dumps(sup), wm) for k, s, e, (n, avg), sup, wm in firings)
    got = Counter((r["category"], r["window_start"], r["window_end"], r["event_count"],
                   round(r["average_value"], 9), r["is_late_update"],
                   json.dumps(r["supersedes"]), r["watermark"]) for r in out["output"])
    assert got == want
    assert any(r["is_late_update"] for r in out["output"])
    assert sorted(e["event_id"] for e in out["late_output"]) == sorted(v[1] for _, v in late)
    assert late
    unusable = [e for e in events if "category" not in e or "value" not in e]
    assert len(unusable) > 2, "logins and logouts carry no category"
    assert sorted(d["reason"] for d in out["error_output"]) == sorted(
        f"event {e['event_id']!r} has no {'category' if 'category' not in e else 'value'!r}, which this flow requires"
        for e in unusable
    )


def test_results_do_not_depend_on_sharding(tmp_path: Path) -> None:
    """With keys spread over shards, each shard sees most watermark advances
    only in batches; the firings still report Flink's per-event watermark."""
    events = _events()
    firings, _ = _reference(_usable(events))
    want = Counter((k, s, e, n, round(avg, 9), bool(sup), json.dumps(sup), wm) for k, s, e, (n, avg), sup, wm in firings)
    for shards in (7, 32):
        out = _run(tmp_path / str(shards), events, shards=shards)
        got = Counter((r["category"], r["window_start"], r["window_end"], r["event_count"],
                       round(r["average_value"], 9), r["is_late_update"],
                       json.dumps(r["supersedes"]), r["watermark"]) for r in out["output"])
        assert got == want


def test_late_data_summary_and_alerts_with_a_fake_clock(tmp_path: Path) -> None:
    """All late events fall into one processing-time hour of the fake clock."""
    events = _events()
    now = 1_800_000_000_000
    out = _run(tmp_path, events, late_alert_threshold=23, clock=lambda: now)
    late_per_category = Counter(e["category"] for e in out["late_output"])
    summaries = [r for r in out["late_summary"] if "alert" not in r]
    alerts = [r for r in out["late_summary"] if "alert" in r]
    hour = now - now % 3_600_000
    assert {r["category"]: r["late_events"] for r in summaries} == dict(late_per_category)
    assert all((r["window_start"], r["window_end"]) == (hour, hour + 3_600_000) for r in summaries)
    assert sorted(a["category"] for a in alerts) == sorted(c for c, n in late_per_category.items() if n > 23)
    assert alerts and len(alerts) < len(summaries)
