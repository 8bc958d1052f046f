"""Event time: watermark generators, per-channel watermark combination, and the
contract every keyed event-time operator core implements.

Plain Python, no Bytewax import. The Bytewax wiring lives in
`operators/runtime/keyed.py`; it computes watermarks per input channel (one channel per
source partition and input), tags every element with the watermark in force
before it, and feeds one `EventTimeLogic` per shard of keys.

Watermarks are epoch milliseconds. `MIN_WATERMARK` means "nothing seen";
`MAX_WATERMARK` is reached at the end of a bounded input, as in Flink, and fires
every pending event-time timer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Hashable, Optional, Sequence, TypeVar

MIN_WATERMARK: int = -(2**63)
MAX_WATERMARK: int = 2**63 - 1

V = TypeVar("V")

Clock = Callable[[], int]
"""Processing time in epoch milliseconds; injectable so tests use a fake clock."""


class WatermarkGenerator(ABC, Generic[V]):
    """Per-channel watermark generation, as Flink's `WatermarkGenerator`.

    `on_event` is called for every element of the channel in arrival order and
    may return a new watermark (punctuated generators); `on_periodic` is called
    with processing time between batches (periodic generators). A generator's
    state must be picklable: it is snapshotted with the channel.
    """

    @abstractmethod
    def on_event(self, value: V, ts: int) -> Optional[int]:
        """Observe one element; return a new watermark or None."""

    def on_periodic(self, now_ms: int) -> Optional[int]:
        """Called with processing time; return a new watermark or None."""
        return None


class BoundedOutOfOrderness(WatermarkGenerator[Any]):
    """Flink's `forBoundedOutOfOrderness`: max timestamp seen − bound − 1 ms."""

    __slots__ = ("bound_ms", "max_ts")

    def __init__(self, bound_ms: int) -> None:
        if bound_ms < 0:
            raise ValueError(f"out-of-orderness bound must be >= 0, got {bound_ms}")
        self.bound_ms = bound_ms
        self.max_ts = MIN_WATERMARK + bound_ms + 1

    def on_event(self, value: Any, ts: int) -> Optional[int]:
        if ts > self.max_ts:
            self.max_ts = ts
            return ts - self.bound_ms - 1
        return None

    def __getstate__(self) -> tuple[int, int]:
        return (self.bound_ms, self.max_ts)

    def __setstate__(self, state: tuple[int, int]) -> None:
        self.bound_ms, self.max_ts = state


@dataclass
class ChannelWatermarks:
    """Combines per-channel watermarks into an operator watermark.

    The operator watermark is the minimum over the active channels, as Flink's
    per-partition watermarks and two-input operators do: a channel read ahead
    of the others does not make their elements late. With `expected` set, the
    watermark stays at `MIN_WATERMARK` until that many channels have reported,
    as Flink holds it for splits that have sent nothing yet.
    A channel without news for `idle_timeout_ms` of processing time is idle and
    left out of the minimum (Flink's `withIdleness`); when every channel is
    idle, the watermark advances with processing time from where it stood, so
    quiet keys' windows still close. The combined watermark never goes back.
    """

    idle_timeout_ms: Optional[int] = None
    expected: int = 0
    channels: dict[Hashable, int] = field(default_factory=dict)
    last_seen: dict[Hashable, int] = field(default_factory=dict)
    current: int = MIN_WATERMARK
    idle_since: Optional[int] = None
    idle_base: int = MIN_WATERMARK
    started_at: Optional[int] = None

    def update(self, channel: Hashable, wm: int, now_ms: int) -> int:
        """Record channel news (an element or an announced watermark)."""
        channels = self.channels
        old = channels.get(channel)
        if old is None or wm > old:
            channels[channel] = wm
        self.last_seen[channel] = now_ms
        self.idle_since = None
        if self.idle_timeout_ms is None and len(channels) >= self.expected:
            # The common case, once per advancing element: no idleness to judge.
            low = wm if len(channels) == 1 else min(channels.values())
            if low > self.current:
                self.current = low
            return self.current
        return self._recompute(now_ms)

    def cap(self, channel: Hashable) -> Optional[int]:
        """While `channel` alone advances, the operator watermark is
        `min(its watermark, cap)`: the minimum over the other channels
        (`MAX_WATERMARK` if there are none). None when that does not hold,
        because the channel is new, channels are still to report or idleness
        is judged: then every advance goes through `update`. Lets a caller
        with a run of one channel's watermarks call `update` once, for the
        last of them."""
        channels = self.channels
        if self.idle_timeout_ms is not None or channel not in channels or len(channels) < self.expected:
            return None
        if len(channels) == 1:
            return MAX_WATERMARK
        return min(wm for ch, wm in channels.items() if ch != channel)

    def on_processing_time(self, now_ms: int) -> int:
        """Re-evaluate idleness at processing time `now_ms`."""
        return self._recompute(now_ms)

    def next_idle_check(self) -> Optional[int]:
        """Processing time at which idleness could next change the watermark."""
        if self.idle_timeout_ms is None or not self.last_seen:
            return None
        if len(self.channels) < self.expected and self.started_at is not None:
            return self.started_at + self.idle_timeout_ms
        if self.idle_since is not None:
            return None  # advancing with processing time; the caller polls
        return min(self.last_seen.values()) + self.idle_timeout_ms

    def _recompute(self, now_ms: int) -> int:
        timeout = self.idle_timeout_ms
        if self.started_at is None:
            self.started_at = now_ms
        if len(self.channels) < self.expected and (
            timeout is None or now_ms - self.started_at < timeout
        ):
            candidate = MIN_WATERMARK
        elif timeout is None:
            candidate = min(self.channels.values(), default=MIN_WATERMARK)
        else:
            active = [
                wm
                for ch, wm in self.channels.items()
                if now_ms - self.last_seen.get(ch, now_ms) < timeout
            ]
            if active:
                candidate = min(active)
            elif self.channels:
                if self.idle_since is None:
                    self.idle_since = max(self.last_seen.values()) + timeout
                    self.idle_base = max(self.current, max(self.channels.values()))
                candidate = self.idle_base + max(0, now_ms - self.idle_since)
            else:
                candidate = MIN_WATERMARK
        if candidate > self.current:
            self.current = candidate
        return self.current


class WatermarkPath:
    """The watermark values a shard's batch passed on its way to `wm`
    (ascending `steps`, see `EventTimeLogic.advance`): `at(t)` is the one a
    timer for time `t` fires at, the first at or past `t`, or `wm`. Engines
    that pop their timers in time order ask for each time in turn; a timer
    set while firing for a time already passed fires at the current value."""

    __slots__ = ("_steps", "_wm", "_lo")

    def __init__(self, wm: int, steps: Sequence[int]) -> None:
        self._steps = steps
        self._wm = wm
        self._lo = 0

    def at(self, t: int) -> int:
        self._lo = bisect_left(self._steps, t, self._lo)
        return self._value(self._lo)

    def at_any(self, t: int) -> int:
        """`at` for times asked in any order, so without the cursor: for
        engines whose timers are never set in the past while firing."""
        return self._value(bisect_left(self._steps, t))

    def _value(self, lo: int) -> int:
        steps = self._steps
        return steps[lo] if lo < len(steps) and steps[lo] < self._wm else self._wm


class EventTimeLogic(ABC, Generic[V]):
    """The state of one keyed event-time operator for all keys of one shard.

    Implementations (window operator, interval join, CEP engine) hold per-key
    state in plain Python structures and never import Bytewax. The wiring calls:

    - `on_watermark(wm)` whenever the operator watermark strictly advances,
      always before the element that follows it; through `advance` when the
      watermark passed other values on the way (see there);
    - `on_element(key, ts, value, side)` for each element, in arrival order;
      `self.watermark` is then the watermark in force before that element, so
      the logic decides lateness itself (`side` is 0 or 1 for two-input
      operators);
    - `on_processing_time(now_ms)` once `now_ms >= next_processing_time()`.

    Results go to `self.emitted` as `(port, item)` pairs, for example
    `("down", result)` or `("late", element)`; the wiring drains the list.
    """

    state_kind: str = "entries"
    """What `state_size` counts, the `kind` label of the state gauge
    (`windows`, `buffered_elements`, ...)."""

    def __init__(self) -> None:
        self.watermark: int = MIN_WATERMARK
        self.emitted: list[tuple[str, Any]] = []

    @abstractmethod
    def on_element(self, key: str, ts: int, value: V, side: int = 0) -> None:
        """Handle one element judged against `self.watermark`."""

    def on_watermark(self, wm: int) -> None:
        """Advance event time to `wm` and fire what is due."""
        self.watermark = wm

    def next_event_time(self) -> Optional[int]:
        """The lowest watermark at which `on_watermark` would fire something,
        or None when nothing is pending or firing does not depend on the
        watermark's path (then `advance` jumps)."""
        return None

    def advance(self, wm: int, steps: Sequence[int] = ()) -> None:
        """Move the watermark to `wm` as if it had passed, one by one, the
        ascending watermark values `steps` below it. Flink emits a watermark
        after every element; the wiring sees a shard's share of them only in
        batches, so it hands over the values the channel went through and
        whatever is due fires at the first of them at or past its time, with
        that watermark, as in Flink. Only values where something is due cost
        a call; the window engines override it to fire everything due in one
        pass over their timers, asking a `WatermarkPath` for each firing's value."""
        lo = bisect_right(steps, self.watermark)
        while (due := self.next_event_time()) is not None and due < wm:
            lo = bisect_left(steps, due, lo)
            if lo == len(steps) or steps[lo] >= wm:
                break
            self.on_watermark(steps[lo])
            lo += 1
        self.on_watermark(wm)

    def advance_deferred(self, wm: int, steps: Sequence[int]) -> None:
        """`advance` to a `wm` that is one of `steps`, letting the core put
        off firing keys no element touches until `flush()`, which the wiring
        calls at the end of every batch. Every firing still happens at the
        watermark `advance` would give it, and before any later element of
        its key; only the order of results across keys changes. The default
        fires at once."""
        self.advance(wm, steps)

    def flush(self) -> None:
        """Fire what `advance_deferred` put off."""

    def on_processing_time(self, now_ms: int) -> None:
        """Fire processing-time timers due at `now_ms`."""

    def on_broadcast(self, value: Any) -> None:
        """Receive an element of the operator's broadcast input; every shard
        receives every broadcast element, in order."""
        raise NotImplementedError(f"{type(self).__name__} takes no broadcast input")

    def next_processing_time(self) -> Optional[int]:
        """Earliest pending processing-time timer, or None."""
        return None

    @abstractmethod
    def snapshot(self) -> Any:
        """Picklable state, handed back to `restore` on resume. The wiring
        pickles it at once, so live structures may be returned uncopied."""

    @abstractmethod
    def restore(self, state: Any) -> None:
        """Load state produced by `snapshot`."""

    def state_size(self) -> int:
        """Number of open units of state, of the kind `state_kind` names,
        exported as a gauge."""
        return 0
