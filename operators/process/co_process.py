"""Keyed co-process: two keyed streams into one user function with shared
per-key state and timers — a Python idiom of Flink's `KeyedCoProcessFunction`.

The user subclasses `KeyedCoProcessFunction`:

    class Latest(KeyedCoProcessFunction):
        def process_element1(self, value, ctx, out):
            ctx.state["left"] = value
            ctx.timer_service.register_event_time_timer(ctx.timestamp + 60_000)
        def process_element2(self, value, ctx, out):
            out.collect((ctx.state.get("left"), value))
        def on_timer(self, timestamp, ctx, out):
            ctx.state.clear()

`ctx.state` is a plain dict per key (empty dicts are dropped, so clearing a
key's state frees it); `ctx.timer_service` registers and deletes event-time
timers (fired once the watermark reaches them, `watermark >= ts`, as Flink)
and processing-time timers (fired once the injected clock reaches them);
`out.collect(v)` emits `(key, v)` on `down`, `ctx.output(port, v)` emits
`(key, v)` on a declared side output. Timers are deduplicated per key and
timestamp, as Flink's timer service does.

`KeyedFunctionRuntime` holds what co-process and broadcast-process share:
keyed state, both timer kinds, the context and the collector. Plain Python,
no Bytewax import.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum
from heapq import heapify, heappop, heappush
from typing import Any, Callable, Generic, Iterable, Optional, TypeVar

from operators.time.eventtime import Clock, EventTimeLogic

L = TypeVar("L")
R = TypeVar("R")

DOWN = "down"


class TimeDomain(Enum):
    """Which clock fired a timer (Flink's `TimeDomain`)."""

    EVENT_TIME = "event_time"
    PROCESSING_TIME = "processing_time"


_Timer = tuple[int, str]
"""(timestamp, key)."""


class _Timers:
    """Timers of one time domain for all keys: a set for deduplication and
    deletion, a heap for firing order (deleted entries are skipped on pop)."""

    __slots__ = ("registered", "heap")

    def __init__(self, registered: Optional[set[_Timer]] = None) -> None:
        self.registered: set[_Timer] = registered if registered is not None else set()
        self.heap: list[_Timer] = list(self.registered)
        heapify(self.heap)

    def register(self, ts: int, key: str) -> None:
        if isinstance(ts, bool) or not isinstance(ts, int):
            raise TypeError(f"timer timestamps are int epoch milliseconds, got {ts!r}")
        timer = (ts, key)
        if timer not in self.registered:
            self.registered.add(timer)
            heappush(self.heap, timer)

    def delete(self, ts: int, key: str) -> None:
        self.registered.discard((ts, key))

    def pop_due(self, now: int) -> Optional[_Timer]:
        """Remove and return the earliest timer with timestamp <= `now`."""
        heap, registered = self.heap, self.registered
        while heap and heap[0][0] <= now:
            timer = heappop(heap)
            if timer in registered:
                registered.remove(timer)
                return timer
        return None

    def next_due(self) -> Optional[int]:
        heap, registered = self.heap, self.registered
        while heap and heap[0] not in registered:
            heappop(heap)
        return heap[0][0] if heap else None


class TimerService:
    """Timers and time of the key being processed (Flink's `TimerService`)."""

    __slots__ = ("_runtime",)

    def __init__(self, runtime: KeyedFunctionRuntime) -> None:
        self._runtime = runtime

    def current_watermark(self) -> int:
        return self._runtime.watermark

    def current_processing_time(self) -> int:
        return self._runtime.clock()

    def register_event_time_timer(self, ts: int) -> None:
        """Fire `on_timer(ts)` for this key once the watermark reaches `ts`."""
        self._runtime._event_timers.register(ts, self._runtime.context.current_key)

    def register_processing_time_timer(self, ts: int) -> None:
        """Fire `on_timer(ts)` for this key once processing time reaches `ts`."""
        self._runtime._processing_timers.register(ts, self._runtime.context.current_key)

    def delete_event_time_timer(self, ts: int) -> None:
        self._runtime._event_timers.delete(ts, self._runtime.context.current_key)

    def delete_processing_time_timer(self, ts: int) -> None:
        self._runtime._processing_timers.delete(ts, self._runtime.context.current_key)


class Context:
    """What a user function sees for the element or timer at hand.

    `timestamp` is the element's event time or the firing timer's time;
    `time_domain` is None for elements and the timer's domain in `on_timer`.
    """

    __slots__ = ("_runtime", "current_key", "timestamp", "time_domain", "timer_service")

    def __init__(self, runtime: KeyedFunctionRuntime) -> None:
        self._runtime = runtime
        self.current_key = ""
        self.timestamp = 0
        self.time_domain: Optional[TimeDomain] = None
        self.timer_service = TimerService(runtime)

    @property
    def state(self) -> dict[str, Any]:
        """The current key's state; created on first use, freed when empty."""
        states = self._runtime._states
        state = states.get(self.current_key)
        if state is None:
            state = states[self.current_key] = {}
        return state

    def output(self, port: str, value: Any) -> None:
        """Emit `(key, value)` on the declared side output `port`."""
        if port not in self._runtime.side_outputs:
            raise ValueError(
                f"side output {port!r} is not declared; declared: {sorted(self._runtime.side_outputs)}"
            )
        self._runtime.emitted.append((port, (self.current_key, value)))


class Collector:
    """Emits `(key, value)` on the main output (Flink's `Collector`)."""

    __slots__ = ("_runtime",)

    def __init__(self, runtime: KeyedFunctionRuntime) -> None:
        self._runtime = runtime

    def collect(self, value: Any) -> None:
        runtime = self._runtime
        runtime.emitted.append((DOWN, (runtime.context.current_key, value)))


def check_side_outputs(side_outputs: Iterable[str]) -> frozenset[str]:
    """Validate side output names at build time."""
    ports = tuple(side_outputs)
    for port in ports:
        if not isinstance(port, str) or not port:
            raise ValueError(f"side output names are non-empty strings, got {port!r}")
    if DOWN in ports:
        raise ValueError(f"{DOWN!r} is the main output and cannot be a side output")
    if len(set(ports)) != len(ports):
        raise ValueError(f"side output names must be unique, got {ports}")
    return frozenset(ports)


class KeyedFunctionRuntime(EventTimeLogic[Any]):
    """Keyed state, timers, context and collector shared by the keyed
    process-function operators of one shard. Subclasses route elements and
    timers to their user function through `call`."""

    state_kind = "keys_and_timers"

    def __init__(self, *, clock: Clock, side_outputs: Iterable[str] = ()) -> None:
        super().__init__()
        self.clock = clock
        self.side_outputs = check_side_outputs(side_outputs)
        self._states: dict[str, dict[str, Any]] = {}
        self._event_timers = _Timers()
        self._processing_timers = _Timers()
        self.context = self._new_context()
        self.out = Collector(self)

    def _new_context(self) -> Context:
        return Context(self)

    @abstractmethod
    def on_timer(self, ts: int, ctx: Context, out: Collector) -> None:
        """Hand a firing timer to the user function."""

    def call(
        self,
        handler: Callable[..., None],
        key: str,
        ts: int,
        value: Any,
    ) -> None:
        """Run `handler(value, ctx, out)` for an element of `key` at `ts`."""
        ctx = self.context
        ctx.current_key = key
        ctx.timestamp = ts
        ctx.time_domain = None
        handler(value, ctx, self.out)
        self._drop_if_empty(key)

    def next_event_time(self) -> Optional[int]:
        return self._event_timers.next_due()

    def on_watermark(self, wm: int) -> None:
        self.watermark = wm
        self._fire(self._event_timers, wm, TimeDomain.EVENT_TIME)

    def on_processing_time(self, now_ms: int) -> None:
        self._fire(self._processing_timers, now_ms, TimeDomain.PROCESSING_TIME)

    def next_processing_time(self) -> Optional[int]:
        return self._processing_timers.next_due()

    def _fire(self, timers: _Timers, now: int, domain: TimeDomain) -> None:
        """Fire due timers in time order, including those registered while
        firing that are already due (as Flink's timer service does)."""
        ctx = self.context
        while (timer := timers.pop_due(now)) is not None:
            ts, key = timer
            ctx.current_key = key
            ctx.timestamp = ts
            ctx.time_domain = domain
            self.on_timer(ts, ctx, self.out)
            self._drop_if_empty(key)

    def _drop_if_empty(self, key: str) -> None:
        states = self._states
        if key in states and not states[key]:
            del states[key]

    def snapshot(self) -> Any:
        return (self._states, self._event_timers.registered, self._processing_timers.registered)

    def restore(self, state: Any) -> None:
        states, event_timers, processing_timers = state
        self._states = states
        self._event_timers = _Timers(event_timers)
        self._processing_timers = _Timers(processing_timers)

    def state_size(self) -> int:
        """Keys holding state plus pending timers."""
        return (
            len(self._states)
            + len(self._event_timers.registered)
            + len(self._processing_timers.registered)
        )


class KeyedCoProcessFunction(ABC, Generic[L, R]):
    """User logic over two connected keyed streams (Flink's
    `KeyedCoProcessFunction`). Keep state in `ctx.state`, not on `self`: only
    `ctx.state` and timers are snapshotted."""

    @abstractmethod
    def process_element1(self, value: L, ctx: Context, out: Collector) -> None:
        """One element of the first (left) input."""

    @abstractmethod
    def process_element2(self, value: R, ctx: Context, out: Collector) -> None:
        """One element of the second (right) input."""

    def on_timer(self, timestamp: int, ctx: Context, out: Collector) -> None:
        """A registered timer fired; `ctx.time_domain` says which kind."""


class KeyedCoProcess(KeyedFunctionRuntime):
    """Runs a `KeyedCoProcessFunction` for all keys of one shard. Side 0
    elements go to `process_element1`, side 1 to `process_element2`. Every
    element reaches the function, whatever its lateness (as in Flink);
    `ctx.timer_service.current_watermark()` lets the function judge."""

    def __init__(
        self,
        function: KeyedCoProcessFunction[Any, Any],
        *,
        clock: Clock,
        side_outputs: Iterable[str] = (),
    ) -> None:
        super().__init__(clock=clock, side_outputs=side_outputs)
        self.function = function
        self._handlers = (function.process_element1, function.process_element2)

    def on_element(self, key: str, ts: int, value: Any, side: int = 0) -> None:
        self.call(self._handlers[side], key, ts, value)

    def on_timer(self, ts: int, ctx: Context, out: Collector) -> None:
        self.function.on_timer(ts, ctx, out)

