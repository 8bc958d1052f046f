"""Bytewax steps for two-input and broadcast operators: interval join, window
join, keyed co-process and keyed broadcast process.

Thin wrappers: each builds its core (`operators/joins/interval_join.py`,
`operators/joins/window_join.py`, `operators/process/co_process.py`,
`operators/process/broadcast_state.py`) once to validate its options when the
dataflow is built, then runs one core per shard through
`operators.runtime.keyed.keyed_event_time`. Inputs are keyed streams of
`(key, value)`; both inputs of a step are keyed the same way. `timestamp_of`
and `watermarks` are given once or as a `(left, right)` pair; further
`keyed_event_time` options (`shards`, `partition_of`, `expected_channels`,
`idle_timeout_ms`, `clock`) pass through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence, Union, Unpack

from bytewax.dataflow import Stream
from bytewax.operators import KeyedStream

from operators.joins.interval_join import IntervalJoin, Select
from operators.joins.window_join import WindowJoin
from operators.process.broadcast_state import KeyedBroadcastProcess, KeyedBroadcastProcessFunction
from operators.process.co_process import DOWN, KeyedCoProcess, KeyedCoProcessFunction, check_side_outputs
from operators.runtime.keyed import Wiring, keyed_event_time, system_clock_ms
from operators.time.eventtime import EventTimeLogic, WatermarkGenerator
from operators.windows.assigners import WindowAssigner
from operators.windows.triggers import Trigger

TimestampOf = Union[Callable[[Any], int], Sequence[Callable[[Any], int]]]
Watermarks = Union[
    Callable[[], WatermarkGenerator[Any]], Sequence[Callable[[], WatermarkGenerator[Any]]]
]


@dataclass(frozen=True)
class IntervalJoinOut:
    """`down`: `(key, select(left, right))` per joined pair; `late`:
    `(key, (side, element))`, side 0 = left, 1 = right."""

    down: Stream[tuple[str, Any]]
    late: Stream[tuple[str, tuple[int, Any]]]


@dataclass(frozen=True)
class WindowJoinOut:
    """`down`: `(key, WindowResult)` per joined pair, the result's value being
    `select(left, right)`; `late`: `(key, (side, element))`; `invalid`:
    `(key, (side, element), reason)` for elements the assigner rejected."""

    down: Stream[tuple[str, Any]]
    late: Stream[tuple[str, tuple[int, Any]]]
    invalid: Stream[tuple[str, tuple[int, Any], str]]


@dataclass(frozen=True)
class ProcessOut:
    """Streams of a process-function step: `down` carries `(key, value)` for
    each `out.collect(value)`, `side[port]` for each `ctx.output(port, value)`."""

    down: Stream[tuple[str, Any]]
    side: dict[str, Stream[tuple[str, Any]]]


def _run(
    step_id: str,
    inputs: list[KeyedStream[Any]],
    logic: Callable[[], EventTimeLogic[Any]],
    ports: Sequence[str],
    timestamp_of: TimestampOf,
    watermarks: Watermarks,
    wiring: Wiring,
    broadcast: Optional[Stream[Any]] = None,
) -> dict[str, Stream[Any]]:
    logic()  # refuse bad options while the dataflow is being built
    return keyed_event_time(
        step_id,
        inputs,
        timestamp_of=timestamp_of,
        watermarks=watermarks,
        logic=logic,
        ports=ports,
        broadcast=broadcast,
        **wiring,
    )


def interval_join(
    step_id: str,
    left: KeyedStream[Any],
    right: KeyedStream[Any],
    *,
    lower_ms: int,
    upper_ms: int,
    timestamp_of: TimestampOf,
    watermarks: Watermarks,
    lower_inclusive: bool = True,
    upper_inclusive: bool = True,
    select: Optional[Select] = None,
    **wiring: Unpack[Wiring],
) -> IntervalJoinOut:
    """Join each left element with every right element of the same key whose
    timestamp lies in `[left.ts + lower_ms, left.ts + upper_ms]` (Flink's
    `intervalJoin(...).between(lower, upper)`; `*_inclusive=False` are
    `lowerBoundExclusive()` / `upperBoundExclusive()`)."""

    def logic() -> IntervalJoin:
        return IntervalJoin(
            lower_ms,
            upper_ms,
            lower_inclusive=lower_inclusive,
            upper_inclusive=upper_inclusive,
            select=select,
        )

    outs = _run(step_id, [left, right], logic, ("down", "late"), timestamp_of, watermarks, wiring)
    return IntervalJoinOut(down=outs["down"], late=outs["late"])


def window_join(
    step_id: str,
    left: KeyedStream[Any],
    right: KeyedStream[Any],
    *,
    assigner: WindowAssigner,
    timestamp_of: TimestampOf,
    watermarks: Watermarks,
    select: Optional[Select] = None,
    trigger: Optional[Trigger] = None,
    allowed_lateness_ms: int = 0,
    **wiring: Unpack[Wiring],
) -> WindowJoinOut:
    """Join the left and right elements of each key that share a window of
    `assigner` (Flink's `join(...).where(...).equalTo(...).window(...)`)."""
    clock = wiring.get("clock", system_clock_ms)

    def logic() -> WindowJoin:
        return WindowJoin(
            assigner,
            select=select,
            trigger=trigger,
            allowed_lateness_ms=allowed_lateness_ms,
            clock=clock,
        )

    outs = _run(
        step_id, [left, right], logic, ("down", "late", "invalid"), timestamp_of, watermarks, wiring
    )
    return WindowJoinOut(down=outs["down"], late=outs["late"], invalid=outs["invalid"])


def co_process(
    step_id: str,
    left: KeyedStream[Any],
    right: KeyedStream[Any],
    *,
    function: KeyedCoProcessFunction[Any, Any],
    timestamp_of: TimestampOf,
    watermarks: Watermarks,
    side_outputs: Iterable[str] = (),
    **wiring: Unpack[Wiring],
) -> ProcessOut:
    """Run `function` over two connected keyed streams (Flink's
    `connect(...).keyBy(...).process(KeyedCoProcessFunction)`)."""
    if not isinstance(function, KeyedCoProcessFunction):
        raise TypeError(f"{step_id}: function must be a KeyedCoProcessFunction, got {function!r}")
    ports = tuple(check_side_outputs(side_outputs))
    clock = wiring.get("clock", system_clock_ms)

    def logic() -> KeyedCoProcess:
        return KeyedCoProcess(function, clock=clock, side_outputs=ports)

    outs = _run(step_id, [left, right], logic, (DOWN, *ports), timestamp_of, watermarks, wiring)
    return ProcessOut(down=outs[DOWN], side={port: outs[port] for port in ports})


def broadcast_process(
    step_id: str,
    events: KeyedStream[Any],
    broadcast: Stream[Any],
    *,
    function: KeyedBroadcastProcessFunction[Any, Any],
    timestamp_of: Callable[[Any], int],
    watermarks: Callable[[], WatermarkGenerator[Any]],
    side_outputs: Iterable[str] = (),
    **wiring: Unpack[Wiring],
) -> ProcessOut:
    """Apply the low-rate `broadcast` stream (rules, config) to the keyed
    `events` with `function` (Flink's `connect(broadcastStream).process(
    KeyedBroadcastProcessFunction)`). Every broadcast element reaches every
    shard, in order; broadcast elements carry no event time."""
    if not isinstance(function, KeyedBroadcastProcessFunction):
        raise TypeError(
            f"{step_id}: function must be a KeyedBroadcastProcessFunction, got {function!r}"
        )
    ports = tuple(check_side_outputs(side_outputs))
    clock = wiring.get("clock", system_clock_ms)

    def logic() -> KeyedBroadcastProcess:
        return KeyedBroadcastProcess(function, clock=clock, side_outputs=ports)

    outs = _run(
        step_id, [events], logic, (DOWN, *ports), timestamp_of, watermarks, wiring, broadcast
    )
    return ProcessOut(down=outs[DOWN], side={port: outs[port] for port in ports})
