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

from eventio.bytewax_run import exits_on_configuration_error, lazy_flow
from eventio.config import side_output_settings
from eventio.flow_setup import ALLOWED_LATENESS_MS, SHARDS, SHARED_SETTINGS, WATERMARK_BOUND_MS, configure
from eventio.flowio import read_events, require, write_dead_letters, write_json, write_late, write_output
from eventio.settings import FlowSettings, Setting, integer
from flows import Quickstart
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


SETTINGS = FlowSettings(
    "realtime_analytics",
    SHARED_SETTINGS,
    (Setting("WINDOW_MS", integer(1, unit="milliseconds"), 5 * MINUTE, "tumbling window size"),
     WATERMARK_BOUND_MS.with_default(2 * MINUTE), ALLOWED_LATENESS_MS.with_default(10 * MINUTE),
     Setting("LATE_SUMMARY_MS", integer(1, unit="milliseconds"), HOUR,
             "processing-time window of the late-data summary"),
     Setting("LATE_ALERT_THRESHOLD", integer(0), 100,
             "more late events than this in a category and summary window add an alert record"),
     *side_output_settings("late_summary", "late-summary", "the late-data summary and alerts"),
     SHARDS),
)
QUICKSTART = Quickstart.of("disorder")
"""How to make input for it and run it."""
EXAMPLE_OUTPUT = {"category": "clothing", "window_start": 1704068100000, "window_end": 1704068400000,
                  "event_count": 70, "average_value": 45.18228571428573, "is_late_update": True,
                  "supersedes": [[1704068100000, 1704068400000]], "watermark": 1704068835100}
"""A real output record (of the generator's events)."""


@exits_on_configuration_error
def build(**overrides: Any) -> Dataflow:
    """The flow, configured by `SETTINGS` from the environment and
    `overrides` (their lower-case names, and `clock`: processing time in
    ms, for tests)."""
    s, cfg = configure(SETTINGS, overrides, extra=("clock",))
    size, bound, lateness = s["window_ms"], s["watermark_bound_ms"], s["allowed_lateness_ms"]
    summary_ms, threshold = s["late_summary_ms"], s["late_alert_threshold"]
    clock = overrides.get("clock", system_clock_ms)

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
        shards=s["shards"],
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
        cfg.side_output("late_summary", s, "late-summary"),
        key_of=lambda r: r["category"],
    ))
    write_dead_letters("dlq", src.errors, cfg, *unencodable)
    return flow


__getattr__ = lazy_flow(build)
