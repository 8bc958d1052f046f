"""Quarterly reports per region.

Key `region` (events without one go to the dead-letter output); calendar
quarters of `REPORT_TIMEZONE` as event-time windows (`CalendarWindows`: a
quarter runs from local midnight of January, April, July or October 1st to
the next one, so in Europe/Berlin it starts at 23:00 or 22:00 UTC the day
before); watermark bound 2 min; events beyond the allowed lateness go to the
late output.

One output per firing: `{"region", "year", "quarter", "window_start",
"window_end", "event_count", "total_amount", "is_late_update", "supersedes"}` where `year`
and `quarter` (1-4) name the local quarter, `window_start`/`window_end` are
its bounds in epoch ms (end exclusive), `event_count` counts the region's
events and `total_amount` sums their `amount` (events without one add 0),
rounded to cents. With allowed lateness, an event arriving after its quarter
fired re-fires it with the updated totals, `supersedes: [[window_start,
window_end]]` (the record it replaces) and `is_late_update: true`; a first
record has `supersedes: []`.

    python -m bytewax.run flows.quarterly_reports:flow
"""

from __future__ import annotations

from datetime import datetime
from operator import attrgetter
from typing import Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from eventio.bytewax_run import exits_on_configuration_error, lazy_flow
from eventio.event import Event
from eventio.flow_setup import (ALLOWED_LATENESS_MS, IDLE_TIMEOUT_MS, SHARDS, SHARED_SETTINGS, WATERMARK_BOUND_MS,
                               configure)
from eventio.flowio import read_events, require, write_dead_letters, write_late, write_output
from eventio.settings import FlowSettings, Kind, Setting
from flows import Quickstart
from operators import AggregateFunction, BoundedOutOfOrderness, CalendarWindows, WindowResult, key_by, window

MINUTE = 60_000


class CountAndTotal(AggregateFunction[Event, list, tuple[int, float]]):
    """[events, sum of amount]."""

    def create(self) -> list:
        return [0, 0.0]

    def add(self, acc: list, event: Event) -> list:
        acc[0] += 1
        if event.amount is not None:
            acc[1] += event.amount
        return acc

    def merge(self, a: list, b: list) -> list:
        return [a[0] + b[0], a[1] + b[1]]

    def result(self, acc: list) -> tuple[int, float]:
        return (acc[0], acc[1])


def time_zone(name: str) -> ZoneInfo:
    """The time zone `name`; `ValueError` if it is not a known one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as ex:
        raise ValueError(name) from ex


def _is_time_zone(value: object) -> bool:
    try:
        return isinstance(value, str) and time_zone(value) is not None
    except ValueError:
        return False


SETTINGS = FlowSettings(
    "quarterly_reports",
    SHARED_SETTINGS,
    (Setting("REPORT_TIMEZONE", Kind("an IANA time zone name such as Europe/Berlin", lambda text: time_zone(text).key,
                                     _is_time_zone), "UTC", "IANA time zone whose calendar quarters are reported"),
     WATERMARK_BOUND_MS.with_default(2 * MINUTE),
     ALLOWED_LATENESS_MS.with_doc("how long after a quarter closes late events still update it"),
     IDLE_TIMEOUT_MS, SHARDS),
)
QUICKSTART = Quickstart.of("quarterly")
"""How to make input for it and run it."""
EXAMPLE_OUTPUT = {"region": "amer", "year": 2024, "quarter": 3, "window_start": 1719792000000,
                  "window_end": 1727740800000, "event_count": 126, "total_amount": 28162.19,
                  "is_late_update": False, "supersedes": []}
"""A real output record (of the generator's events)."""


def quarter_record(tz: ZoneInfo) -> Callable[[tuple[str, WindowResult]], dict[str, Any]]:
    """The output record of one quarter firing."""

    def record(item: tuple[str, WindowResult]) -> dict[str, Any]:
        region, r = item
        count, total = r.value
        local = datetime.fromtimestamp(r.window_start // 1000, tz)
        return {
            "region": region,
            "year": local.year,
            "quarter": (local.month - 1) // 3 + 1,
            "window_start": r.window_start,
            "window_end": r.window_end,
            "event_count": count,
            "total_amount": round(total, 2),
            "is_late_update": r.is_late_update,
            "supersedes": r.supersedes,
        }

    return record


@exits_on_configuration_error
def build(**overrides: Any) -> Dataflow:
    """The flow, configured by `SETTINGS` from the environment and
    `overrides` (their lower-case names)."""
    s, cfg = configure(SETTINGS, overrides)
    tz = time_zone(s["report_timezone"])
    bound, idle = s["watermark_bound_ms"], s["idle_timeout_ms"]

    flow = Dataflow("quarterly_reports")
    src = require("regional", read_events(flow, "read", cfg), "region")
    quarters = window(
        "quarters",
        key_by("by_region", src.events, attrgetter("region")),
        assigner=CalendarWindows("quarter", tz),
        allowed_lateness_ms=s["allowed_lateness_ms"],
        aggregate=CountAndTotal(),
        timestamp_of=attrgetter("timestamp"),
        watermarks=lambda: BoundedOutOfOrderness(bound),
        partition_of=attrgetter("channel"),
        expected_channels=src.channels,
        idle_timeout_ms=idle or None,
        shards=s["shards"],
    )
    unencodable = [
        write_output("out", op.map("format", quarters.down, quarter_record(tz)), cfg, key_of=lambda r: r["region"]),
        write_late("late", op.map("late_events", quarters.late, lambda kv: kv[1]), cfg),
    ]
    write_dead_letters("dlq", src.errors, cfg, *unencodable)
    return flow


__getattr__ = lazy_flow(build)
