"""Session analytics: per-user sessions with a gap that depends on the event.

Key `user_id`; event-time session windows whose gap comes from each event's
type (login 30 min, purchase 60 min, page_view 10 min, idle 2 min, anything
else 15 min), merged as Flink's `MergingWindowSet` does; watermark bound
2 min; allowed lateness 5 min: a late event re-fires its session, or merges
sessions that already fired; events beyond it go to the late output.

One output per firing:
`{"user_id", "session_start", "session_end", "duration_ms", "event_count",
"page_views", "purchases", "total_spent", "is_late_update", "supersedes"}`
where `session_end` is the window's exclusive end (last event + its gap),
`duration_ms = session_end - session_start`, and `supersedes` lists the
`[session_start, session_end]` of the user's earlier records this one
replaces (the session itself when it re-fires, the merged sessions when a
late event joined sessions that had fired; `[]` for a first record);
`is_late_update` is true exactly when `supersedes` is not empty.

    python -m bytewax.run flows.session_analytics:flow
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from eventio.bytewax_run import exits_on_configuration_error, lazy_flow
from eventio.deadletter import DeadLetter
from eventio.event import Event
from eventio.flow_setup import (ALLOWED_LATENESS_MS, IDLE_TIMEOUT_MS, SHARDS, SHARED_SETTINGS, WATERMARK_BOUND_MS,
                               configure)
from eventio.flowio import read_events, write_dead_letters, write_late, write_output
from eventio.settings import FlowSettings
from flows import Quickstart
from operators import AggregateFunction, BoundedOutOfOrderness, EventTimeSessionWindows, WindowResult, key_by, window

MINUTE = 60_000
GAPS_MS = {"login": 30 * MINUTE, "purchase": 60 * MINUTE, "page_view": 10 * MINUTE, "idle": 2 * MINUTE}
DEFAULT_GAP_MS = 15 * MINUTE

SETTINGS = FlowSettings(
    "session_analytics",
    SHARED_SETTINGS,
    (WATERMARK_BOUND_MS.with_default(2 * MINUTE), ALLOWED_LATENESS_MS.with_default(5 * MINUTE), IDLE_TIMEOUT_MS,
     SHARDS),
)
QUICKSTART = Quickstart.of("sessions")
"""How to make input for it and run it."""
EXAMPLE_OUTPUT = {"user_id": "u00408", "session_start": 1704067814395, "session_end": 1704071845113,
                  "duration_ms": 4030718, "event_count": 11, "page_views": 7, "purchases": 1,
                  "total_spent": 114.83, "is_late_update": False, "supersedes": []}
"""A real output record (of the generator's events)."""


def session_gap(event: Event) -> int:
    """The inactivity gap an event opens, by its type."""
    return GAPS_MS.get(event.event_type, DEFAULT_GAP_MS)


class SessionStats(AggregateFunction[Event, list, tuple[int, int, int, float]]):
    """[events, page views, purchases, total spent], merged by addition."""

    def create(self) -> list:
        return [0, 0, 0, 0.0]

    def add(self, acc: list, event: Event) -> list:
        acc[0] += 1
        kind = event.event_type
        if kind == "page_view":
            acc[1] += 1
        elif kind == "purchase":
            acc[2] += 1
            if event.amount is not None:
                acc[3] += event.amount
        return acc

    def merge(self, a: list, b: list) -> list:
        return [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]]

    def result(self, acc: list) -> tuple[int, int, int, float]:
        return (acc[0], acc[1], acc[2], acc[3])


def session_record(item: tuple[str, WindowResult]) -> dict[str, Any]:
    """The output record of one session firing."""
    user, r = item
    count, page_views, purchases, spent = r.value
    return {
        "user_id": user,
        "session_start": r.window_start,
        "session_end": r.window_end,
        "duration_ms": r.window_end - r.window_start,
        "event_count": count,
        "page_views": page_views,
        "purchases": purchases,
        "total_spent": round(spent, 2),
        "is_late_update": r.is_late_update,
        "supersedes": r.supersedes,
    }


def unusable_gap(item: tuple[str, tuple[Event, str]]) -> DeadLetter:
    """A dead letter for an event whose session gap could not be computed."""
    user, (event, reason) = item
    return DeadLetter(event.channel or "?", None, None, user.encode(), event.to_json_bytes(),
                      "InvalidElement", reason)


@exits_on_configuration_error
def build(**overrides: Any) -> Dataflow:
    """The flow, configured by `SETTINGS` from the environment and
    `overrides` (their lower-case names)."""
    s, cfg = configure(SETTINGS, overrides)
    bound, lateness, idle = s["watermark_bound_ms"], s["allowed_lateness_ms"], s["idle_timeout_ms"]

    flow = Dataflow("session_analytics")
    src = read_events(flow, "read", cfg)
    by_user = key_by("by_user", src.events, attrgetter("user_id"))
    sessions = window(
        "sessions",
        by_user,
        assigner=EventTimeSessionWindows.with_dynamic_gap(session_gap),
        allowed_lateness_ms=lateness,
        aggregate=SessionStats(),
        timestamp_of=attrgetter("timestamp"),
        watermarks=lambda: BoundedOutOfOrderness(bound),
        partition_of=attrgetter("channel"),
        expected_channels=src.channels,
        idle_timeout_ms=idle or None,
        shards=s["shards"],
    )
    unencodable = [
        write_output("out", op.map("format", sessions.down, session_record), cfg, key_of=lambda r: r["user_id"]),
        write_late("late", op.map("late_events", sessions.late, lambda kv: kv[1]), cfg),
    ]
    write_dead_letters("dlq", src.errors, cfg, op.map("bad_gap", sessions.invalid, unusable_gap), *unencodable)
    return flow


__getattr__ = lazy_flow(build)
