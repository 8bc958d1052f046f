"""Keyed process function: one keyed stream into a user function with per-key
state and timers — a Python idiom of Flink's `KeyedProcessFunction`.

The single-input sibling of `operators/process/co_process.py`, sharing its runtime
(`KeyedFunctionRuntime`): `ctx.state` is a plain dict per key (freed when
empty), `ctx.timer_service` registers event-time timers (fired once the
watermark reaches them) and processing-time timers (fired once the injected
clock reaches them), `out.collect(v)` emits `(key, v)` on `down` and
`ctx.output(port, v)` on a declared side output. A typical use is state with
a time-to-live:

    class Latest(KeyedProcessFunction):
        def process_element(self, value, ctx, out):
            now = ctx.timer_service.current_processing_time()
            ctx.state["value"], ctx.state["expires"] = value, now + TTL
            ctx.timer_service.register_processing_time_timer(now + TTL)
        def on_timer(self, timestamp, ctx, out):
            if ctx.state.get("expires") == timestamp:
                ctx.state.clear()

Plain Python, no Bytewax import; run it with `operators.runtime.keyed.keyed_event_time`
(`logic=lambda: KeyedProcess(function, clock=clock)`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Generic, Iterable, TypeVar

from operators.process.co_process import Collector, Context, KeyedFunctionRuntime
from operators.time.eventtime import Clock

V = TypeVar("V")


class KeyedProcessFunction(ABC, Generic[V]):
    """User logic over one keyed stream (Flink's `KeyedProcessFunction`).
    Keep state in `ctx.state`, not on `self`: only `ctx.state` and timers are
    snapshotted."""

    @abstractmethod
    def process_element(self, value: V, ctx: Context, out: Collector) -> None:
        """One element; `ctx.timestamp` is its event time."""

    def on_timer(self, timestamp: int, ctx: Context, out: Collector) -> None:
        """A registered timer fired; `ctx.time_domain` says which kind."""


class KeyedProcess(KeyedFunctionRuntime):
    """Runs a `KeyedProcessFunction` for all keys of one shard. Every element
    reaches the function, whatever its lateness (as in Flink);
    `ctx.timer_service.current_watermark()` lets the function judge."""

    def __init__(self, function: KeyedProcessFunction[Any], *, clock: Clock, side_outputs: Iterable[str] = ()) -> None:
        if not isinstance(function, KeyedProcessFunction):
            raise TypeError(f"function must be a KeyedProcessFunction, got {function!r}")
        super().__init__(clock=clock, side_outputs=side_outputs)
        self.function = function

    def on_element(self, key: str, ts: int, value: Any, side: int = 0) -> None:
        self.call(self.function.process_element, key, ts, value)

    def on_timer(self, ts: int, ctx: Context, out: Collector) -> None:
        self.function.on_timer(ts, ctx, out)
