"""Count-or-timeout micro-batches per user.

Key `user_id`; one global window per user with `CountOrTimeoutTrigger`
(`operators/windows/triggers.py`): a user's buffered events are emitted and purged
when `BATCH_COUNT` (100) have arrived, or `BATCH_TIMEOUT_MS` (5 min) of
processing time after the first event buffered since the last emission,
whichever comes first. Processing time comes from the injected clock.

End of input: at the end of a bounded input (a file, or Kafka with
`STOP_AT_END=true`) processing-time timeouts can no longer come due, so the
trigger is wrapped in `FireAtEndOfInput` (`operators/windows/end_of_input.py`): every
user's partial batch is emitted then with reason `end_of_input`, and nothing
is lost. On an unbounded input every batch ends by count or timeout.

One output per batch: `{"user_id", "event_count", "total_amount",
"first_timestamp", "last_timestamp", "reason"}` where `total_amount` sums the
events' `amount` (events without one add 0), `first_timestamp` and
`last_timestamp` are the smallest and largest event timestamps in the
batch, and `reason` is `count`, `timeout` or `end_of_input`. Event time plays
no part: events are never late.

    python -m bytewax.run flows.count_or_timeout:flow
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Callable

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from eventio.bytewax_run import exits_on_configuration_error, lazy_flow
from eventio.event import Event
from eventio.flow_setup import SHARDS, SHARED_SETTINGS, configure
from eventio.flowio import read_events, write_dead_letters, write_output
from eventio.settings import FlowSettings, Setting, integer
from flows import Quickstart
from operators import (
    AggregateFunction,
    BoundedOutOfOrderness,
    CountOrTimeoutTrigger,
    FireAtEndOfInput,
    GlobalWindows,
    MAX_WATERMARK,
    MIN_WATERMARK,
    WindowResult,
    key_by,
    system_clock_ms,
    window,
)

MINUTE = 60_000


class BatchStats(AggregateFunction[Event, list, tuple[int, float, int, int]]):
    """[count, total amount, first timestamp, last timestamp]."""

    def create(self) -> list:
        return [0, 0.0, MAX_WATERMARK, MIN_WATERMARK]

    def add(self, acc: list, event: Event) -> list:
        acc[0] += 1
        if event.amount is not None:
            acc[1] += event.amount
        ts = event.timestamp
        if ts < acc[2]:
            acc[2] = ts
        if ts > acc[3]:
            acc[3] = ts
        return acc

    def result(self, acc: list) -> tuple[int, float, int, int]:
        return (acc[0], acc[1], acc[2], acc[3])


def batch_record(count: int) -> Callable[[tuple[str, WindowResult]], dict[str, Any]]:
    """The output record of one batch; a full batch fired by count, a
    firing at the final watermark by the end of input, any other by timeout."""

    def record(item: tuple[str, WindowResult]) -> dict[str, Any]:
        user, r = item
        n, total, first, last = r.value
        reason = "count" if n >= count else "end_of_input" if r.watermark == MAX_WATERMARK else "timeout"
        return {
            "user_id": user,
            "event_count": n,
            "total_amount": round(total, 2),
            "first_timestamp": first,
            "last_timestamp": last,
            "reason": reason,
        }

    return record


SETTINGS = FlowSettings(
    "count_or_timeout",
    SHARED_SETTINGS,
    (Setting("BATCH_COUNT", integer(1), 100, "events per full batch"),
     Setting("BATCH_TIMEOUT_MS", integer(1, unit="milliseconds"), 5 * MINUTE,
             "processing time from a batch's first event to its emission"),
     SHARDS),
)
QUICKSTART = Quickstart.of("bursts")
"""How to make input for it and run it."""
EXAMPLE_OUTPUT = {"user_id": "u00005", "event_count": 100, "total_amount": 5410.23,
                  "first_timestamp": 1704068758154, "last_timestamp": 1704069055889, "reason": "count"}
"""A real output record (of the generator's events)."""


@exits_on_configuration_error
def build(**overrides: Any) -> Dataflow:
    """The flow, configured by `SETTINGS` from the environment and
    `overrides` (their lower-case names, and `clock`: processing time in
    ms, for tests)."""
    s, cfg = configure(SETTINGS, overrides, extra=("clock",))
    count, timeout = s["batch_count"], s["batch_timeout_ms"]
    clock = overrides.get("clock", system_clock_ms)

    flow = Dataflow("count_or_timeout")
    src = read_events(flow, "read", cfg)
    batches = window(
        "batches",
        key_by("by_user", src.events, attrgetter("user_id")),
        assigner=GlobalWindows(),
        trigger=FireAtEndOfInput(CountOrTimeoutTrigger(count, timeout)),
        aggregate=BatchStats(),
        timestamp_of=attrgetter("timestamp"),
        watermarks=lambda: BoundedOutOfOrderness(0),
        shards=s["shards"],
        clock=clock,
    )
    unencodable = write_output("out", op.map("format", batches.down, batch_record(count)), cfg,
                 key_of=lambda r: r["user_id"])
    write_dead_letters("dlq", src.errors, cfg, unencodable)
    return flow


__getattr__ = lazy_flow(build)
