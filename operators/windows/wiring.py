"""Bytewax operators for keyed event-time windows (Flink's `window(...)`).

Thin wrappers: the semantics live in `operators/windows/operator.py`, the
sharding and watermark plumbing in `operators/runtime/keyed.py`. Example:

    out = window(
        "clicks_per_minute", keyed_clicks,
        assigner=TumblingEventTimeWindows(60_000),
        aggregate=Aggregate.count(),
        timestamp_of=lambda e: e.timestamp,
        watermarks=lambda: BoundedOutOfOrderness(5_000),
        allowed_lateness_ms=60_000,
    )
    # out.down: (key, WindowResult); out.late: (key, value);
    # out.invalid: (key, (value, reason))
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Callable, Optional, Sequence, Unpack

from bytewax.dataflow import Stream
from bytewax.operators import KeyedStream

from eventio import metrics
from operators.runtime.keyed import Wiring, keyed_event_time, system_clock_ms
from operators.time.eventtime import WatermarkGenerator
from operators.windows.assigners import GlobalWindows, WindowAssigner
from operators.windows.functions import AggregateFunction, ProcessWindowFunction
from operators.windows.operator import WindowOperator
from operators.windows.results import WindowResult
from operators.windows.triggers import CountTrigger, PurgingTrigger, Trigger

PORTS = ("down", "late", "invalid")

_result = itemgetter(1)
_supersedes = itemgetter(WindowResult._fields.index("supersedes"))
"""`(key, WindowResult)` -> the result -> its `supersedes`, at C speed:
firings are counted per result, as late updates when `supersedes` is not
empty (`WindowResult.is_late_update`)."""


@dataclass(frozen=True)
class WindowOut:
    """The streams of a window step.

    `down`: `(key, WindowResult)` for every firing; `late`: `(key, value)` for
    elements all of whose windows were late (Flink's late-data side output);
    `invalid`: `(key, (value, reason))` for elements the assigner rejected.
    """

    down: KeyedStream[WindowResult]
    late: KeyedStream[Any]
    invalid: KeyedStream[tuple[Any, str]]


def window(
    step_id: str,
    up: KeyedStream[Any],
    *,
    assigner: WindowAssigner,
    timestamp_of: Callable[[Any], int],
    watermarks: Callable[[], WatermarkGenerator[Any]],
    trigger: Optional[Trigger] = None,
    allowed_lateness_ms: int = 0,
    aggregate: Optional[AggregateFunction[Any, Any, Any]] = None,
    process: Optional[ProcessWindowFunction] = None,
    **wiring: Unpack[Wiring],
) -> WindowOut:
    """Window a keyed stream with Flink's semantics.

    `assigner`, `trigger`, `allowed_lateness_ms`, `aggregate` and `process` are
    those of `WindowOperator`; `timestamp_of`, `watermarks` and the `Wiring`
    options (`shards`, `partition_of`, `expected_channels`, `idle_timeout_ms`,
    `clock`) those of `keyed_event_time`. A bad configuration raises at build
    time.
    """
    clock = wiring.get("clock", system_clock_ms)

    def logic() -> WindowOperator[Any]:
        return WindowOperator(
            assigner,
            trigger=trigger,
            allowed_lateness_ms=allowed_lateness_ms,
            aggregate=aggregate,
            process=process,
            clock=clock,
        )

    try:
        logic()
    except (TypeError, ValueError) as ex:
        raise ValueError(f"{step_id}: {ex}") from ex
    on_time = metrics.WINDOW_FIRINGS.labels(step_id, "false")
    late = metrics.WINDOW_FIRINGS.labels(step_id, "true")

    def count_firings(batch: list[tuple[str, WindowResult]]) -> None:
        late_updates = sum(map(bool, map(_supersedes, map(_result, batch))))
        if late_updates:
            late.inc(late_updates)
        if len(batch) > late_updates:
            on_time.inc(len(batch) - late_updates)

    streams: dict[str, Stream[Any]] = keyed_event_time(
        step_id,
        [up],
        timestamp_of=timestamp_of,
        watermarks=watermarks,
        logic=logic,
        ports=PORTS,
        observers={"down": count_firings},
        **wiring,
    )
    return WindowOut(streams["down"], streams["late"], streams["invalid"])  # type: ignore[arg-type]


def count_window(
    step_id: str,
    up: KeyedStream[Any],
    count: int,
    *,
    aggregate: Optional[AggregateFunction[Any, Any, Any]] = None,
    process: Optional[ProcessWindowFunction] = None,
    **kwargs: Any,
) -> WindowOut:
    """Flink's `countWindow(count)`: every `count` elements of a key form one
    window, evaluated and purged (global windows with a purging count
    trigger). Other keyword arguments are those of `window`."""
    return window(
        step_id,
        up,
        assigner=GlobalWindows(),
        trigger=PurgingTrigger(CountTrigger(count)),
        aggregate=aggregate,
        process=process,
        **kwargs,
    )


__all__: Sequence[str] = ("PORTS", "WindowOut", "count_window", "window")
