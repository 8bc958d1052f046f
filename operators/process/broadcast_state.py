"""Broadcast state: a low-rate rules/config stream applied to a keyed event
stream — a Python idiom of Flink's `KeyedBroadcastProcessFunction`.

Every shard receives every broadcast element, in order, and hands it to
`process_broadcast_element(value, ctx)`, which may change the read-write
`ctx.broadcast_state` dict and visit every key's state of the shard with
`ctx.apply_to_keyed_state(fn)`. Because every shard applies the same elements
in the same order, the broadcast state is the same in every shard; it is part
of the shard's snapshot, so it survives recovery. Keyed elements go to
`process_element(value, ctx, out)`, where `ctx.broadcast_state` is a read-only
view and `ctx.state`, timers and side outputs work as in `operators/process/co_process.py`.
Plain Python, no Bytewax import.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import MappingProxyType
from typing import Any, Callable, Generic, Iterable, Mapping, TypeVar, cast

from operators.process.co_process import Collector, Context, KeyedFunctionRuntime
from operators.time.eventtime import Clock

E = TypeVar("E")
B = TypeVar("B")

KeyedStateFunction = Callable[[str, dict[str, Any]], None]
"""Visits one key's state (Flink's `KeyedStateFunction`)."""


class KeyedBroadcastContext(Context):
    """`Context` of a keyed element, plus a read-only view of the broadcast
    state (Flink's `ReadOnlyContext`)."""

    __slots__ = ("broadcast_state",)

    def __init__(self, runtime: KeyedBroadcastProcess) -> None:
        super().__init__(runtime)
        self.broadcast_state: Mapping[Any, Any] = MappingProxyType(runtime.broadcast_state)


class BroadcastContext:
    """What `process_broadcast_element` sees: the read-write broadcast state,
    the shard's keyed state and the current time."""

    __slots__ = ("_runtime",)

    def __init__(self, runtime: KeyedBroadcastProcess) -> None:
        self._runtime = runtime

    @property
    def broadcast_state(self) -> dict[Any, Any]:
        return self._runtime.broadcast_state

    def apply_to_keyed_state(self, function: KeyedStateFunction) -> None:
        """Call `function(key, state)` for every key with state in this shard;
        states left empty are freed."""
        runtime = self._runtime
        states = runtime._states
        for key, state in list(states.items()):
            function(key, state)
            runtime._drop_if_empty(key)

    def current_watermark(self) -> int:
        return self._runtime.watermark

    def current_processing_time(self) -> int:
        return self._runtime.clock()


class KeyedBroadcastProcessFunction(ABC, Generic[E, B]):
    """User logic joining a keyed stream with broadcast rules (Flink's
    `KeyedBroadcastProcessFunction`). Keep state in `ctx.state` and
    `ctx.broadcast_state`, not on `self`: only those and timers are
    snapshotted. Broadcast handling must be deterministic — it runs once per
    shard and every shard must reach the same broadcast state."""

    @abstractmethod
    def process_element(self, value: E, ctx: KeyedBroadcastContext, out: Collector) -> None:
        """One keyed element; `ctx.broadcast_state` is read-only here."""

    @abstractmethod
    def process_broadcast_element(self, value: B, ctx: BroadcastContext) -> None:
        """One broadcast element; update `ctx.broadcast_state`."""

    def on_timer(self, timestamp: int, ctx: KeyedBroadcastContext, out: Collector) -> None:
        """A registered timer fired; `ctx.time_domain` says which kind."""


class KeyedBroadcastProcess(KeyedFunctionRuntime):
    """Runs a `KeyedBroadcastProcessFunction` for all keys of one shard.
    Every keyed element reaches the function, whatever its lateness."""

    state_kind = "keys_timers_and_broadcast_entries"

    def __init__(
        self,
        function: KeyedBroadcastProcessFunction[Any, Any],
        *,
        clock: Clock,
        side_outputs: Iterable[str] = (),
    ) -> None:
        self.broadcast_state: dict[Any, Any] = {}
        super().__init__(clock=clock, side_outputs=side_outputs)
        self.function = function
        self._broadcast_context = BroadcastContext(self)

    def _new_context(self) -> Context:
        return KeyedBroadcastContext(self)

    def on_element(self, key: str, ts: int, value: Any, side: int = 0) -> None:
        self.call(self.function.process_element, key, ts, value)

    def on_broadcast(self, value: Any) -> None:
        self.function.process_broadcast_element(value, self._broadcast_context)

    def on_timer(self, ts: int, ctx: Context, out: Collector) -> None:
        self.function.on_timer(ts, cast(KeyedBroadcastContext, ctx), out)

    def snapshot(self) -> Any:
        return (super().snapshot(), self.broadcast_state)

    def restore(self, state: Any) -> None:
        keyed, broadcast = state
        super().restore(keyed)
        self.broadcast_state = broadcast
        self.context = self._new_context()

    def state_size(self) -> int:
        """Keys holding state, pending timers and broadcast state entries."""
        return super().state_size() + len(self.broadcast_state)
