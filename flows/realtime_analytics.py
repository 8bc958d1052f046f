"""Realtime analytics with late data (the seed's LateDataProcessor).

Key `category`; tumbling 5-minute event-time windows; watermark bound 2 min;
allowed lateness 10 min. One output per firing: `{"category",
"window_start", "window_end", "event_count", "average_value",
"is_late_update", "supersedes", "watermark"}`; a late event re-fires its
window with the updated values, `supersedes: [[window_start, window_end]]`
and `is_late_update: true`, while a window's first record (even one a late
event opened) has `supersedes: []`. Events beyond the allowed lateness go to the
late output; they are also counted per category per hour of processing time
into a late-data summary `{"category", "window_start", "window_end",
"late_events"}` (to `LATE_SUMMARY_PATH`, else next to `OUTPUT_PATH` when that is
set, else `LATE_SUMMARY_TOPIC`), followed by
an alert record `{"alert": "late_data", "category", "late_events",
"threshold", "window_start", "window_end"}` when a category has more than
`LATE_ALERT_THRESHOLD` (100) late events in that hour. At the end of a
bounded input the open summary window is emitted as it stands.

This flow requires `category` and `value` on every event; events without
them go to the dead-letter output.

    python -m bytewax.run flows.realtime_analytics:flow
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Iterable

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from eventio import metrics
from eventio.config import IOConfig, setting, split_overrides
from eventio.flowio import read_events, require, write_dead_letters, write_json, write_late, write_output
from operators import (
    Aggregate,
    BoundedOutOfOrderness,
    FireAtEndOfInput,
    ProcessingTimeTrigger,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
    WindowResult,
    key_by,
    system_clock_ms,
    window,
)

MINUTE = 60_000
HOUR = 60 * MINUTE


def window_record(item: tuple[str, WindowResult]) -> dict[str, Any]:
    category, r = item
    count, mean = r.value
    return {
        "category": category,
        "window_start": r.window_start,
        "window_end": r.window_end,
        "event_count": count,
        "average_value": mean,
        "is_late_update": r.is_late_update,
        "supersedes": r.supersedes,
        "watermark": r.watermark,
    }


def summary_records(threshold: int) -> Any:
    """Late-data summary, plus an alert when the count exceeds `threshold`."""

    def records(item: tuple[str, WindowResult]) -> Iterable[dict[str, Any]]:
        category, r = item
        summary = {"category": category, "window_start": r.window_start,
                   "window_end": r.window_end, "late_events": r.value}
        yield summary
        if r.value > threshold:
            yield {"alert": "late_data", "category": category, "late_events": r.value,
                   "threshold": threshold, "window_start": r.window_start, "window_end": r.window_end}

    return records


def build(**overrides: Any) -> Dataflow:
    """The flow, configured by the environment and `overrides`
    (`window_ms`, `watermark_bound_ms`, `allowed_lateness_ms`,
    `late_summary_ms`, `late_alert_threshold`, `late_summary_path`,
    `late_summary_topic`, `shards`, `clock`, IO settings)."""
    io, rest = split_overrides(overrides)
    cfg = IOConfig.from_env(io)
    size = setting("window_ms", 5 * MINUTE, rest)
    bound = setting("watermark_bound_ms", 2 * MINUTE, rest)
    lateness = setting("allowed_lateness_ms", 10 * MINUTE, rest)
    summary_ms = setting("late_summary_ms", HOUR, rest)
    threshold = setting("late_alert_threshold", 100, rest)
    clock = rest.get("clock", system_clock_ms)
    metrics.serve_from_env()

    flow = Dataflow("realtime_analytics")
    src = require("valid", read_events(flow, "read", cfg), "category", "value")
    by_category = key_by("by_category", src.events, attrgetter("category"))
    windows = window(
        "windows",
        by_category,
        assigner=TumblingEventTimeWindows(size),
        allowed_lateness_ms=lateness,
        aggregate=Aggregate.count_and_mean(attrgetter("value")),
        timestamp_of=attrgetter("timestamp"),
        watermarks=lambda: BoundedOutOfOrderness(bound),
        partition_of=attrgetter("channel"),
        expected_channels=src.channels,
        shards=setting("shards", 32, rest),
    )
    unencodable = [write_output("out", op.map("format", windows.down, window_record), cfg, key_of=lambda r: r["category"])]
    late = op.map("late_events", windows.late, lambda kv: kv[1])
    unencodable.append(write_late("late", late, cfg))

    summary = window(
        "late_summary",
        key_by("late_by_category", late, attrgetter("category")),
        assigner=TumblingProcessingTimeWindows(summary_ms),
        trigger=FireAtEndOfInput(ProcessingTimeTrigger()),
        aggregate=Aggregate.count(),
        timestamp_of=attrgetter("timestamp"),
        watermarks=lambda: BoundedOutOfOrderness(bound),
        clock=clock,
    )
    unencodable.append(write_json(
        "summary",
        op.flat_map("summary_records", summary.down, summary_records(threshold)),
        cfg,
        cfg.side_output("late_summary", rest, "late-summary"),
        key_of=lambda r: r["category"],
    ))
    write_dead_letters("dlq", src.errors, cfg, *unencodable)
    return flow


flow = build()
