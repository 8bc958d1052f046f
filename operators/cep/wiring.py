"""Bytewax step for complex event processing: Flink's `CEP.pattern(...)`.

A thin wrapper: it compiles the pattern once while the dataflow is built (so
a malformed pattern fails there, not at run time) and runs one
`operators.cep.operator.CepOperator` per shard through
`operators.runtime.keyed.keyed_event_time`. The input is a keyed stream of
`(key, event)`; patterns match per key.

    alerts = match_pattern(
        "fraud", keyed_events, pattern,
        timestamp_of=lambda e: e.timestamp,
        watermarks=lambda: BoundedOutOfOrderness(2_000),
        select=lambda key, m: (m["login"][0], m["tx"][0]),
    )
    op.output("alerts", alerts.down, sink)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Unpack

from bytewax.dataflow import Stream
from bytewax.operators import KeyedStream

from operators.cep.operator import CepOperator, Enrich, PORTS, Select, SelectTimedOut
from operators.cep.patterns import Pattern
from operators.runtime.keyed import Wiring, keyed_event_time, system_clock_ms
from operators.time.eventtime import WatermarkGenerator


@dataclass(frozen=True)
class CepOut:
    """`down`: `(key, match)` or `(key, select(key, match))`, a match being
    `{pattern name: [events]}`; `late`: `(key, event)` for events at or below
    the watermark on arrival; `timed_out`: `(key, partial match)` or
    `(key, select_timed_out(key, partial, timeout_ts))` for partial matches
    that outlived `within`; `errors`: `(key, event or match, message)` when a
    condition or select function raised."""

    down: Stream[tuple[str, Any]]
    late: Stream[tuple[str, Any]]
    timed_out: Stream[tuple[str, Any]]
    errors: Stream[tuple[str, Any, str]]


class _NoWatermarks(WatermarkGenerator[Any]):
    """Processing-time matching needs no event-time watermarks."""

    def on_event(self, value: Any, ts: int) -> Optional[int]:
        return None


def match_pattern(
    step_id: str,
    up: KeyedStream[Any],
    pattern: Pattern,
    *,
    timestamp_of: Optional[Callable[[Any], int]] = None,
    watermarks: Optional[Callable[[], WatermarkGenerator[Any]]] = None,
    select: Optional[Select] = None,
    select_timed_out: Optional[SelectTimedOut] = None,
    processing_time: bool = False,
    enrich: Optional[Enrich] = None,
    **wiring: Unpack[Wiring],
) -> CepOut:
    """Detect `pattern` in each key's events.

    In event time (the default) `timestamp_of` and `watermarks` are required:
    events are matched in timestamp order once the watermark passes them.
    With `processing_time=True` events are matched on arrival and `within`
    counts processing time from the `clock` option. `enrich(key, event,
    context)` prepares each event just before matching, in matching order,
    with per-key context kept in the snapshot (see `operators.cep.operator.Enrich`).
    """
    if not processing_time and (timestamp_of is None or watermarks is None):
        raise ValueError(f"{step_id}: event-time matching needs timestamp_of and watermarks")
    clock = wiring.get("clock", system_clock_ms)

    def logic() -> CepOperator:
        return CepOperator(
            pattern,
            select=select,
            select_timed_out=select_timed_out,
            processing_time=processing_time,
            clock=clock,
            enrich=enrich,
        )

    logic()  # refuse a malformed pattern while the dataflow is being built
    outs = keyed_event_time(
        step_id,
        [up],
        timestamp_of=timestamp_of if timestamp_of is not None else (lambda value: 0),
        watermarks=watermarks if watermarks is not None else _NoWatermarks,
        logic=logic,
        ports=PORTS,
        **wiring,
    )
    return CepOut(down=outs["down"], late=outs["late"], timed_out=outs["timed_out"], errors=outs["errors"])
