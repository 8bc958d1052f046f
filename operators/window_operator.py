"""The keyed window operator core with Apache Flink's `WindowOperator` rules.

One `WindowOperator` holds the window state of every key of a shard and
implements `EventTimeLogic` (see `operators/eventtime.py`); it never imports
Bytewax. Rules, as in Flink:

- An element goes into every window its assigner gives it. A window is *late*
  when `window.max_timestamp + allowed_lateness <= watermark` (event-time
  windows only); an element whose windows are all late goes to port `late` as
  `(key, value)`.
- The trigger decides when a window fires (FIRE emits, PURGE drops the
  contents). With the default event-time trigger a window fires when the
  watermark reaches its max timestamp, and an element added to a window the
  watermark already passed (within the allowed lateness) fires it at once.
- Window state is freed at cleanup time, `max_timestamp + allowed_lateness` in
  event time (`max_timestamp` in processing time); global windows never.
- Merging (session) windows that intersect merge their contents (aggregate
  `merge`, or concatenated element lists) and their trigger state (`on_merge`).

Results go to port `down` as `(key, WindowResult)`; elements an assigner
rejects (`InvalidElement`) go to port `invalid` as `(key, (value, reason))`.

Supersession (an extension; Flink leaves it to the user): every result lists
in `supersedes` the windows of its key whose latest earlier result it
replaces, because its contents include theirs: nothing for a window's first
result, the window itself when it fires again, the sessions' earlier-fired
windows when they merged into it. A purge drops the contents, so the next
result of that window replaces nothing: the earlier one stays final. A
consumer that deletes the latest row of every window in `supersedes` and then
writes the new result holds exactly the results no later result replaced.
`is_late_update` is `bool(supersedes)`.

Window functions: an incremental `AggregateFunction` (`create`, `add(acc,
value)`, `merge`, `result`), a process function `(key, window, elements,
watermark) -> iterable of values` over the buffered elements, or both (the
process function then receives the one aggregate result, as Flink's
`aggregate(aggFn, windowFn)`).

`WindowOperator(...)` returns one of three engines with identical semantics:
fixed-size event-time windows and event-time sessions with the default
trigger get specialised engines (a few dict operations per element, one timer
entry per window or per key instead of per element); everything else runs the
general engine, a direct rendering of Flink's trigger and merging machinery.
"""

from __future__ import annotations

import gc
import heapq
from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Generic, Hashable, Iterable, NamedTuple, Optional, Sequence, TypeVar

from operators.eventtime import MAX_WATERMARK, Clock, EventTimeLogic, WatermarkPath
from operators.timer_wheel import TimerWheel
from operators.triggers import EventTimeTrigger, Trigger, TriggerResult
from operators.windows import (
    FixedSizeWindows,
    InvalidElement,
    SessionWindows,
    Window,
    WindowAssigner,
)

V = TypeVar("V")
A = TypeVar("A")
R = TypeVar("R")

ProcessWindowFunction = Callable[[str, Window, list, int], Iterable[Any]]
"""`(key, window, elements, watermark) -> results`; `elements` must not be
kept or mutated."""


class AggregateFunction(ABC, Generic[V, A, R]):
    """Incremental window aggregation (Flink's `AggregateFunction`).

    `add` and `merge` may update the accumulator in place but must return it.
    `merge` is required only for merging (session) windows.
    """

    @abstractmethod
    def create(self) -> A:
        """A fresh accumulator."""

    @abstractmethod
    def add(self, acc: A, value: V) -> A:
        """Fold one element into `acc`."""

    def merge(self, a: A, b: A) -> A:
        """Combine the accumulators of two merging windows."""
        raise NotImplementedError(f"{type(self).__name__} does not support merging windows")

    @abstractmethod
    def result(self, acc: A) -> R:
        """The window's value from its accumulator."""


def _identity(acc: Any) -> Any:
    return acc


def _append(acc: list, value: Any) -> list:
    acc.append(value)
    return acc


def _concat(a: list, b: list) -> list:
    a.extend(b)
    return a


def _count(acc: int, value: Any) -> int:
    return acc + 1


def _zero() -> int:
    return 0


def _count_and_sum() -> list:
    return [0, 0.0]


def _add_pairs(a: list, b: list) -> list:
    return [a[0] + b[0], a[1] + b[1]]


def _summing(value_of: Callable[[Any], float]) -> Callable[[list, Any], list]:
    """`add` for a [count, sum] accumulator."""

    def add(acc: list, element: Any) -> list:
        acc[0] += 1
        acc[1] += value_of(element)
        return acc

    return add


def _count_and_mean(acc: list) -> tuple[int, float]:
    return (acc[0], acc[1] / acc[0])


def _mean(acc: list) -> float:
    return acc[1] / acc[0]


class Aggregate(AggregateFunction[V, A, R]):
    """An `AggregateFunction` made of plain callables."""

    __slots__ = ("create", "add", "merge", "result")

    def __init__(
        self,
        create: Callable[[], A],
        add: Callable[[A, V], A],
        merge: Optional[Callable[[A, A], A]] = None,
        result: Callable[[A], R] = _identity,
    ) -> None:
        self.create = create  # type: ignore[method-assign]
        self.add = add  # type: ignore[method-assign]
        self.merge = merge  # type: ignore[method-assign,assignment]
        self.result = result  # type: ignore[method-assign]

    @classmethod
    def count(cls) -> "Aggregate[Any, int, int]":
        """Number of elements."""
        return cls(_zero, _count, int.__add__)

    @classmethod
    def count_and_mean(cls, value_of: Callable[[V], float]) -> "Aggregate[V, list, tuple[int, float]]":
        """`(count, mean of value_of(element))`."""
        return cls(_count_and_sum, _summing(value_of), _add_pairs, _count_and_mean)

    @classmethod
    def mean(cls, value_of: Callable[[V], float]) -> "Aggregate[V, list, float]":
        """Mean of `value_of(element)`."""
        return cls(_count_and_sum, _summing(value_of), _add_pairs, _mean)

    @classmethod
    def collect(cls) -> "Aggregate[Any, list, list]":
        """All elements, in arrival order (merged sessions: by session start);
        each result is a fresh list."""
        return cls(list, _append, _concat, list)


class WindowResult(NamedTuple):
    """One firing of one window of one key. `supersedes`: the windows of the
    key whose latest earlier result this one replaces, sorted (see the module
    docstring); every value of one firing carries the same."""

    key: str
    window_start: int
    window_end: int
    value: Any
    supersedes: tuple[Window, ...]
    watermark: int

    @property
    def window(self) -> Window:
        return Window(self.window_start, self.window_end)

    @property
    def is_late_update(self) -> bool:
        """Whether this result replaces an earlier one."""
        return bool(self.supersedes)


_new_tuple = tuple.__new__
"""`_new_tuple(WindowResult, fields)` builds a result without the Python-level
`__new__` of named tuples; results are built on every firing."""

_FIRST: tuple[Window, ...] = ()
"""`supersedes` of a result that replaces nothing."""

SNAPSHOT_FORMAT = 2
"""Snapshots are `(engine, state, SNAPSHOT_FORMAT)`; format 1, `(engine,
state)`, was written before results carried `supersedes` and still restores."""


class _Missing:
    """The type of `_MISSING`, "no contents": it pickles by reference, so the
    sentinel stays identical across a snapshot and restore."""

    __slots__ = ()

    def __reduce__(self) -> str:
        return "_MISSING"


_MISSING: Any = _Missing()

_ENGINE_IDS_BEFORE = {
    "_TumblingWindows": "tumbling",
    "_SlidingWindows": "sliding",
    "_EventTimeSessions": "sessions",
    "_GeneralWindows": "general",
}
"""Snapshots written before engines had ids were tagged with the engine's
class name."""


class _TimerIndex:
    """Timers bucketed by firing time: `time -> {entry: None}` plus a heap of
    the distinct times. Registering an existing timer is a no-op; deleted
    timers leave at most a stale time in the heap, skipped when popped."""

    __slots__ = ("buckets", "times")

    def __init__(self) -> None:
        self.buckets: dict[int, dict[Hashable, None]] = {}
        self.times: list[int] = []

    def add(self, time: int, entry: Hashable) -> None:
        bucket = self.buckets.get(time)
        if bucket is None:
            self.buckets[time] = {entry: None}
            heapq.heappush(self.times, time)
        else:
            bucket[entry] = None

    def remove(self, time: int, entry: Hashable) -> None:
        bucket = self.buckets.get(time)
        if bucket is not None:
            bucket.pop(entry, None)
            if not bucket:
                del self.buckets[time]

    def pop_due(self, limit: int) -> Optional[tuple[int, dict[Hashable, None]]]:
        """The earliest bucket with time <= `limit`, removed, or None."""
        times = self.times
        while times and times[0] <= limit:
            time = heapq.heappop(times)
            bucket = self.buckets.pop(time, None)
            if bucket:
                return time, bucket
        return None

    def next_time(self) -> Optional[int]:
        times = self.times
        while times and times[0] not in self.buckets:
            heapq.heappop(times)
        return times[0] if times else None


class WindowOperator(EventTimeLogic[V]):
    """Keyed windows for all keys of one shard; see the module docstring.

    `assigner` places elements in windows; `trigger` defaults to the
    assigner's Flink default; `allowed_lateness_ms` applies to event-time
    windows; give `aggregate`, `process` or both; `clock` supplies processing
    time (required by assigners and triggers that set `needs_clock`).
    """

    state_kind = "windows"

    engine_id: ClassVar[str]
    """The engine's name in its snapshots; stable across releases."""

    def __new__(cls, assigner: WindowAssigner, **kwargs: Any) -> "WindowOperator[V]":
        if cls is WindowOperator:
            trigger = kwargs.get("trigger")
            cls = choose_engine(assigner, assigner.default_trigger() if trigger is None else trigger)
        return super().__new__(cls)

    def __init__(
        self,
        assigner: WindowAssigner,
        *,
        trigger: Optional[Trigger] = None,
        allowed_lateness_ms: int = 0,
        aggregate: Optional[AggregateFunction[V, Any, Any]] = None,
        process: Optional[ProcessWindowFunction] = None,
        clock: Optional[Clock] = None,
    ) -> None:
        super().__init__()
        if not isinstance(assigner, WindowAssigner):
            raise TypeError(f"assigner must be a WindowAssigner, got {assigner!r}")
        if type(allowed_lateness_ms) is not int or allowed_lateness_ms < 0:
            raise ValueError(f"allowed_lateness_ms must be an int >= 0, got {allowed_lateness_ms!r}")
        if aggregate is None and process is None:
            raise ValueError("give a window function: aggregate=, process= or both")
        trigger = assigner.default_trigger() if trigger is None else trigger
        if assigner.is_merging:
            if not trigger.can_merge():
                raise ValueError(f"{trigger!r} cannot be used with merging windows ({assigner!r})")
            if aggregate is not None and not _can_merge(aggregate):
                raise ValueError(f"merging windows ({assigner!r}) need an aggregate with merge")
        if clock is None and (assigner.needs_clock or trigger.needs_clock):
            raise ValueError(f"{assigner!r} with {trigger!r} reads processing time: give a clock")
        self.assigner = assigner
        self.trigger = trigger
        self.allowed_lateness_ms = allowed_lateness_ms
        self.aggregate = aggregate
        self.process = process
        self.clock = clock
        contents = Aggregate.collect() if aggregate is None else aggregate
        self._create = contents.create
        self._add = contents.add
        self._merge = contents.merge
        self._result = contents.result

    def _emit(self, key: str, start: int, end: int, acc: Any, supersedes: tuple[Window, ...], wm: int) -> None:
        """Evaluate a window's contents and emit its result(s) on `down`."""
        process = self.process
        if process is None:
            result = _new_tuple(WindowResult, (key, start, end, self._result(acc), supersedes, wm))
            self.emitted.append(("down", (key, result)))
            return
        elements = list(acc) if self.aggregate is None else [self._result(acc)]
        append = self.emitted.append
        for value in process(key, Window(start, end), elements, wm):
            append(("down", (key, _new_tuple(WindowResult, (key, start, end, value, supersedes, wm)))))

    def on_watermark(self, wm: int) -> None:
        self.advance(wm)

    @abstractmethod
    def advance(self, wm: int, steps: Sequence[int] = ()) -> None:
        """Move to `wm` and fire what is due in one pass over the timers, each
        firing at the first of `steps` at or past its time (`WatermarkPath`),
        as `EventTimeLogic.advance` would with one call per value. The wiring
        calls it per element whenever the watermark moves, so each engine
        implements it as one cheap check before `_fire_due`."""

    def _fire_due(self, wm: int, steps: Sequence[int]) -> None:
        """Run `_advance(wm, path)` with the cyclic garbage collector paused.

        A watermark can fire a great many windows at once (a million sessions
        at the end of input); their results are new acyclic tuples, and CPython
        would otherwise re-scan the growing result list in repeated full
        collections. Reference counting still frees memory meanwhile.
        """
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            self._advance(wm, WatermarkPath(wm, steps) if steps else None)
        finally:
            if paused:
                gc.enable()

    @abstractmethod
    def _advance(self, wm: int, path: Optional[WatermarkPath]) -> None:
        """Fire and free what is due at watermark `wm`, a timer for time `t`
        firing at watermark `path.at(t)` (`wm` without a path)."""

    def _tagged(self, state: Any) -> tuple[str, Any, int]:
        return (self.engine_id, state, SNAPSHOT_FORMAT)

    def _untagged(self, snapshot: tuple[Any, ...]) -> tuple[Any, int]:
        """The engine's state and the snapshot's format."""
        engine, state = snapshot[0], snapshot[1]
        if _ENGINE_IDS_BEFORE.get(engine, engine) != self.engine_id:
            raise ValueError(
                f"snapshot was taken by the {engine} engine, cannot restore into {self.engine_id}: "
                "the window assigner or trigger changed"
            )
        return state, snapshot[2] if len(snapshot) > 2 else 1


def _can_merge(aggregate: AggregateFunction[Any, Any, Any]) -> bool:
    merge = getattr(aggregate, "merge", None)
    if merge is None:
        return False
    return getattr(type(aggregate), "merge", None) is not AggregateFunction.merge


_FIXED_LAYOUT = ("assign", "last_start", "starts")
"""The `FixedSizeWindows` methods whose rule the fixed-window engines follow."""

_SESSION_LAYOUT = ("assign", "gap", "merge_windows")
"""The `SessionWindows` methods whose rule the session engine follows."""


def _inherits(assigner: WindowAssigner, base: type[WindowAssigner], methods: Sequence[str]) -> bool:
    """Whether `assigner` is a `base` that overrides none of `methods`."""
    kind = type(assigner)
    return isinstance(assigner, base) and all(getattr(kind, m) is getattr(base, m) for m in methods)


def choose_engine(assigner: WindowAssigner, trigger: Trigger) -> type[WindowOperator[Any]]:
    """The engine for `assigner` with `trigger` (the default one resolved).

    The fast engines serve event-time fixed-size windows and sessions with
    the event-time trigger; they place elements by the rules of
    `FixedSizeWindows` and `SessionWindows`, so an assigner subclass that
    overrides any of those methods, or another trigger, gets the general
    engine, which asks the assigner and the trigger for everything.
    """
    if type(trigger) is EventTimeTrigger and assigner.is_event_time:
        if _inherits(assigner, FixedSizeWindows, _FIXED_LAYOUT):
            assert isinstance(assigner, FixedSizeWindows)
            return _TumblingWindows if assigner.slide_ms == assigner.size_ms else _SlidingWindows
        if _inherits(assigner, SessionWindows, _SESSION_LAYOUT):
            return _EventTimeSessions
    return _GeneralWindows


class _FixedWindows(WindowOperator[V]):
    """Fixed-size event-time windows with the event-time trigger.

    All keys share the windows of a fixed-size assigner, so state is
    `window start -> {key: accumulator}` and timers are per window start, not
    per key: `_to_fire` holds the starts whose on-time firing is pending (a
    window created after the watermark passed it fires on its elements
    instead), `_to_free` every start, in cleanup order. Flat dicts of strings
    and accumulators also keep the garbage collector's work independent of
    the number of keys.

    Supersession needs no state: once the watermark has passed a window,
    every key with contents in it has had a result (on time, or at once for
    its late elements), so a late element replaces the key's earlier result
    exactly when the key already had contents there.
    """

    assigner: FixedSizeWindows

    def __init__(self, assigner: FixedSizeWindows, **kwargs: Any) -> None:
        super().__init__(assigner, **kwargs)
        self._size = assigner.size_ms
        self._last_start = assigner.last_start
        self._starts = assigner.starts
        self._windows: dict[int, dict[str, Any]] = {}
        self._to_fire: list[int] = []
        self._to_free: list[int] = []

    def _open(self, start: int, wm: int) -> dict[str, Any]:
        """A new window start: its state and its timers."""
        accs: dict[str, Any] = {}
        self._windows[start] = accs
        if start + self._size - 1 > wm:
            heapq.heappush(self._to_fire, start)
        heapq.heappush(self._to_free, start)
        return accs

    def next_event_time(self) -> Optional[int]:
        to_fire = self._to_fire
        return to_fire[0] + self._size - 1 if to_fire else None

    def advance(self, wm: int, steps: Sequence[int] = ()) -> None:
        self.watermark = wm
        to_free = self._to_free
        if to_free and to_free[0] + self._size - 1 <= wm:  # something may fire or be freed
            self._fire_due(wm, steps)

    def _advance(self, wm: int, path: Optional[WatermarkPath]) -> None:
        last = self._size - 1
        to_fire = self._to_fire
        while to_fire and to_fire[0] + last <= wm:
            start = heapq.heappop(to_fire)
            at = wm if path is None else path.at(start + last)
            self._fire_all(start, start + self._size, self._windows[start], at)
        to_free = self._to_free
        horizon = last + self.allowed_lateness_ms
        while to_free and to_free[0] + horizon <= wm:
            del self._windows[heapq.heappop(to_free)]

    def _fire_all(self, start: int, end: int, accs: dict[str, Any], wm: int) -> None:
        """The on-time firing of window `[start, end)` for every key."""
        first = _FIRST
        if self.process is not None:
            for key, acc in accs.items():
                self._emit(key, start, end, acc, first, wm)
            return
        result = self._result
        append = self.emitted.append
        for key, acc in accs.items():
            append(("down", (key, _new_tuple(WindowResult, (key, start, end, result(acc), first, wm)))))

    def _late_firing(self, key: str, start: int, acc: Any, replaces: bool, wm: int) -> None:
        """Fire window `start` of `key` for a late element; `replaces` when the
        key had contents there before it."""
        window = _new_tuple(Window, (start, start + self._size))
        self._emit(key, start, window[1], acc, (window,) if replaces else _FIRST, wm)

    def snapshot(self) -> Any:
        return self._tagged((self._windows, self._to_fire, self._to_free))

    def restore(self, state: Any) -> None:
        self._windows, self._to_fire, self._to_free = self._untagged(state)[0]

    def state_size(self) -> int:
        return sum(len(accs) for accs in self._windows.values())


class _TumblingWindows(_FixedWindows[V]):
    """`_FixedWindows` for one window per element."""

    engine_id = "tumbling"

    def on_element(self, key: str, ts: int, value: V, side: int = 0) -> None:
        size = self._size
        start = self._last_start(ts)
        max_ts = start + size - 1
        wm = self.watermark
        if max_ts + self.allowed_lateness_ms <= wm:
            self.emitted.append(("late", (key, value)))
            return
        accs = self._windows.get(start)
        if accs is None:
            accs = self._open(start, wm)
        old = accs.get(key, _MISSING)
        acc = accs[key] = self._add(self._create() if old is _MISSING else old, value)
        if max_ts <= wm:
            self._late_firing(key, start, acc, old is not _MISSING, wm)


class _SlidingWindows(_FixedWindows[V]):
    """`_FixedWindows` for overlapping windows, or windows with gaps."""

    engine_id = "sliding"

    def on_element(self, key: str, ts: int, value: V, side: int = 0) -> None:
        size = self._size
        wm = self.watermark
        starts = self._starts(ts)
        if not starts:  # in the gap between windows (slide > size)
            if ts + self.allowed_lateness_ms <= wm:
                self.emitted.append(("late", (key, value)))
            return
        horizon = wm - self.allowed_lateness_ms - size + 1
        windows = self._windows
        add = self._add
        skipped = True
        for start in starts:
            if start <= horizon:
                break  # this window and all earlier ones are late
            skipped = False
            accs = windows.get(start)
            if accs is None:
                accs = self._open(start, wm)
            old = accs.get(key, _MISSING)
            acc = accs[key] = add(self._create() if old is _MISSING else old, value)
            if start + size - 1 <= wm:
                self._late_firing(key, start, acc, old is not _MISSING, wm)
        if skipped:
            self.emitted.append(("late", (key, value)))


Session = tuple[int, int, Any]
"""One open session: (start, end, accumulator)."""


class _EventTimeSessions(WindowOperator[V]):
    """Event-time sessions with the event-time trigger.

    State: one dict entry per key holding the time the key is scheduled for
    (`due`) and its sessions: the tuple `(due, start, end, acc)` for the usual
    single open session, the list `[due, (start, end, acc), ...]` sorted by
    start when disorder left several apart. One lookup per element, and plain
    tuples the garbage collector untracks.

    A session's next action is its firing at `end - 1` while the watermark is
    below that, then its cleanup `allowed_lateness` later. Each key is
    scheduled once, at or before the earliest next action of its sessions;
    extending a session does not touch the schedule: when a key comes due its
    sessions are checked and the key rescheduled. A session fires when its
    key is processed at its max timestamp. Keys wait in a `TimerWheel`.

    `advance_deferred` only moves the watermark; the keys it makes due are
    processed by `flush`, or by the key's next element before that element
    (`_catch_up`). With a million keys nearly every element makes some other
    key's session due, and one pass per batch costs far less than one per
    element.

    Supersession: a session the watermark has passed has had a result in its
    current form (once its key is caught up), so one that a late element
    extends or merges replaces the result of each such session it absorbed.
    When the merged session still lies ahead of the watermark, those windows
    wait in `_replaced` (key -> windows, usually empty) until it fires.
    """

    engine_id = "sessions"

    assigner: SessionWindows

    def __init__(self, assigner: SessionWindows, **kwargs: Any) -> None:
        super().__init__(assigner, **kwargs)
        self._gap_ms = assigner.gap_ms
        self._gap = assigner.gap
        self._keys: dict[str, Any] = {}
        self._timers = TimerWheel()
        self._count = 0
        self._deferred: Optional[Sequence[int]] = None
        """The steps of the path `advance_deferred` moved along, while firings wait."""
        self._replaced: dict[str, list[Window]] = {}
        """Fired windows absorbed into a session of the key that has not fired yet."""

    def on_element(self, key: str, ts: int, value: V, side: int = 0) -> None:
        gap = self._gap_ms
        if gap is None:
            try:
                gap = self._gap(value)
            except InvalidElement as ex:
                self.emitted.append(("invalid", (key, (value, str(ex)))))
                return
        end = ts + gap
        wm = self.watermark
        state = self._keys.get(key)
        if state is not None and state[0] <= wm:
            state = self._catch_up(key, state, wm, WatermarkPath(wm, self._deferred or ()).at_any)
        if state is None:
            if end - 1 + self.allowed_lateness_ms <= wm:
                self.emitted.append(("late", (key, value)))
                return
            acc = self._add(self._create(), value)
            self._count += 1
            self._keys[key] = (self._touched(key, None, ts, end, acc, wm, _FIRST), ts, end, acc)
            return
        single = state.__class__ is tuple
        if single:
            due, start, stop, acc = state
        else:
            due = state[0]
            start, stop, acc = state[-1]
        # The usual element: it touches the last session and no other (before
        # the last one, sessions end before `ts`).
        if start <= end and ts <= stop and (single or ts > state[-2][1]):
            fired = None if stop - 1 > wm else (_new_tuple(Window, (start, stop)),)
            if ts < start:
                start = ts
            if end > stop:
                stop = end
            acc = self._add(acc, value)
            if fired is not None:
                due = self._touched(key, due, start, stop, acc, wm, fired)
            if single:
                self._keys[key] = (due, start, stop, acc)
            else:
                state[0] = due
                state[-1] = (start, stop, acc)
            return
        self._insert(key, state, ts, end, value, wm)

    def _insert(self, key: str, state: Any, start: int, end: int, value: V, wm: int) -> None:
        """Add `[start, end)` to a key's sessions, merging those it touches."""
        due: int = state[0]
        hits: list[Session] = []
        sessions: list[Session] = []
        for s in [state[1:]] if state.__class__ is tuple else state[1:]:
            (hits if s[0] <= end and start <= s[1] else sessions).append(s)
        fired = _FIRST
        if hits:
            acc = hits[0][2]
            for other in hits[1:]:
                acc = self._merge(acc, other[2])
            start = min(start, hits[0][0])
            end = max(end, hits[-1][1])
            self._count -= len(hits) - 1
            fired = tuple(_new_tuple(Window, (s[0], s[1])) for s in hits if s[1] - 1 <= wm)
        elif end - 1 + self.allowed_lateness_ms <= wm:
            self.emitted.append(("late", (key, value)))
            return
        else:
            acc = self._create()
            self._count += 1
        acc = self._add(acc, value)
        sessions.append((start, end, acc))
        sessions.sort(key=_session_start)
        self._store(key, self._touched(key, due, start, end, acc, wm, fired), sessions)

    def _store(self, key: str, due: Optional[int], sessions: list[Session]) -> None:
        if not sessions:
            del self._keys[key]
        elif len(sessions) == 1:
            self._keys[key] = (due, *sessions[0])
        else:
            self._keys[key] = [due, *sessions]

    def _touched(
        self, key: str, due: Optional[int], start: int, end: int, acc: Any, wm: int, fired: tuple[Window, ...]
    ) -> int:
        """After an element: fire a session the watermark has passed, replacing
        the results of the `fired` sessions it absorbed (else remember them
        for its firing); return the key's due time, scheduling the key earlier
        if the session's next action comes before `due`."""
        max_ts = end - 1
        if max_ts > wm:
            action = max_ts
            if fired:
                self._replaced.setdefault(key, []).extend(fired)
        else:
            self._emit(key, start, end, acc, fired, wm)
            action = max_ts + self.allowed_lateness_ms
        if due is None or action < due:
            self._timers.add(action, key)
            return action
        return due

    def next_event_time(self) -> Optional[int]:
        return self._timers.earliest()

    def advance(self, wm: int, steps: Sequence[int] = ()) -> None:
        if self._deferred is not None:
            self.flush()
        self.watermark = wm
        if self._timers.low <= wm:
            self._fire_due(wm, steps)

    def advance_deferred(self, wm: int, steps: Sequence[int]) -> None:
        if self._deferred is not steps:
            if self._deferred is not None:
                self.flush()
            self._deferred = steps
        self.watermark = wm

    def flush(self) -> None:
        """Fire what `advance_deferred` put off: every timer at the value of
        the path an `advance` call per step would have fired it at, since the
        watermarks passed were all values of the same steps."""
        steps = self._deferred
        if steps is not None:
            self._deferred = None
            if self._timers.low <= self.watermark:
                self._fire_due(self.watermark, steps)

    def _catch_up(self, key: str, state: Any, wm: int, at: Callable[[int], int]) -> Any:
        """Take every action of a key due by `wm`, a firing at `t` reporting
        watermark `at(t)`; return the key's state after. Timers this leaves
        behind are skipped when popped (the key's due time moved on)."""
        while state is not None and state[0] <= wm:
            t = state[0]
            self._process_sessions(key, [state[1:]] if state.__class__ is tuple else state[1:], t, at(t))
            state = self._keys.get(key)
        return state

    def _advance(self, wm: int, path: Optional[WatermarkPath]) -> None:
        """Process every key due by `wm`, in time order, taking all its
        actions up to `wm` at once: fire its sessions ending at a due time,
        free those whose cleanup time has come, reschedule the key at its
        first action after `wm`. Keys are independent, so this fires what one
        pass per due time would. A key with one session is handled here;
        `_catch_up` handles the rest."""
        states = self._keys
        lateness = self.allowed_lateness_ms
        replaced = self._replaced
        result = None if self.process is not None else self._result
        append = self.emitted.append
        add = self._timers.add
        at: Callable[[int], int] = (lambda t: wm) if path is None else path.at_any
        for t, key in self._timers.pop_due(wm):
            state = states.get(key)
            if state is None or state[0] != t:
                continue  # rescheduled or gone
            if state.__class__ is not tuple:
                self._catch_up(key, state, wm, at)
                continue
            _, start, end, acc = state
            max_ts = end - 1
            if max_ts > t:  # scheduled before the session was extended
                if max_ts > wm:
                    states[key] = (max_ts, start, end, acc)
                    add(max_ts, key)
                    continue
                t = max_ts
            if max_ts == t:
                fired = self._superseded(key, start, end) if replaced else _FIRST
                if result is None:
                    self._emit(key, start, end, acc, fired, at(t))
                else:
                    append(("down", (key, _new_tuple(WindowResult, (key, start, end, result(acc), fired, at(t))))))
            cleanup = max_ts + lateness
            if cleanup <= wm:
                del states[key]
                self._count -= 1
            else:
                states[key] = (cleanup, start, end, acc)
                add(cleanup, key)

    def _process_sessions(self, key: str, sessions: list[Session], t: int, wm: int) -> None:
        """Process a key's sessions at its due time `t` (firings report watermark
        `wm`): fire those ending at `t`, free those past cleanup, reschedule."""
        lateness = self.allowed_lateness_ms
        kept: list[Session] = []
        nxt: Optional[int] = None
        for session in sessions:
            start, end, acc = session
            max_ts = end - 1
            if max_ts == t:
                self._emit(key, start, end, acc, self._superseded(key, start, end) if self._replaced else _FIRST, wm)
            if max_ts + lateness <= t:
                continue
            kept.append(session)
            action = max_ts if max_ts > t else max_ts + lateness
            if nxt is None or action < nxt:
                nxt = action
        self._count -= len(sessions) - len(kept)
        self._store(key, nxt, kept)
        if nxt is not None:
            self._timers.add(nxt, key)

    def _superseded(self, key: str, start: int, end: int) -> tuple[Window, ...]:
        """Take the key's remembered fired windows inside `[start, end)`."""
        windows = self._replaced.get(key)
        if windows is None:
            return _FIRST
        inside = [w for w in windows if start <= w[0] and w[1] <= end]
        if inside:
            rest = [w for w in windows if not (start <= w[0] and w[1] <= end)]
            if rest:
                self._replaced[key] = rest
            else:
                del self._replaced[key]
        return tuple(sorted(inside))

    def snapshot(self) -> Any:
        return self._tagged((self._keys, self._count, self._replaced))

    def restore(self, state: Any) -> None:
        """Timers are rebuilt from each key's due time, not snapshotted.
        Format 1 did not remember fired windows absorbed into a session still
        ahead of the watermark: such a session's result lists none of them."""
        saved, version = self._untagged(state)
        if version == 1:
            (self._keys, self._count), self._replaced = saved, {}
        else:
            self._keys, self._count, self._replaced = saved
        self._timers = TimerWheel()
        for key, sessions in self._keys.items():
            self._timers.add(sessions[0], key)
        self._deferred = None

    def state_size(self) -> int:
        return self._count


def _session_start(s: Session) -> int:
    return s[0]


class _Slot:
    """A window of a key: its contents (accumulator, or `_MISSING` when empty
    or purged), its trigger's state, and `fired`: the windows whose latest
    result holds only contents this window still has (its next result
    supersedes them). `fired` is None when restored from a format-1 snapshot,
    until `_GeneralWindows.restore` sets it."""

    __slots__ = ("contents", "tstate", "fired")

    def __init__(self, contents: Any = _MISSING, tstate: Any = None, fired: tuple[Window, ...] = _FIRST) -> None:
        self.contents = contents
        self.tstate = tstate
        self.fired: Optional[tuple[Window, ...]] = fired

    def __getstate__(self) -> tuple[Any, Any, Optional[tuple[Window, ...]]]:
        return (self.contents, self.tstate, self.fired)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.contents, self.tstate = state[0], state[1]
        self.fired = state[2] if len(state) > 2 else None


class _Context:
    """The `TriggerContext` of the general engine, rebound to the current
    (key, window) before each trigger call, as Flink reuses its context."""

    __slots__ = ("op", "key", "window", "slot", "merged_states")

    def __init__(self, op: "_GeneralWindows[Any]") -> None:
        self.op = op
        self.key = ""
        self.window = Window(0, 0)
        self.slot = _Slot()
        self.merged_states: list[Any] = []

    def bind(self, key: str, window: Window, slot: _Slot) -> "_Context":
        self.key = key
        self.window = window
        self.slot = slot
        return self

    @property
    def state(self) -> Any:
        return self.slot.tstate

    @state.setter
    def state(self, value: Any) -> None:
        self.slot.tstate = value

    @property
    def current_watermark(self) -> int:
        return self.op.watermark

    @property
    def current_processing_time(self) -> int:
        clock = self.op.clock
        if clock is None:
            raise RuntimeError("this window operator has no clock: processing time is unavailable")
        return clock()

    def register_event_time_timer(self, time: int) -> None:
        self.op._event.add(time, (self.key, self.window))

    def delete_event_time_timer(self, time: int) -> None:
        self.op._delete_timer(self.op._event, True, time, self.key, self.window)

    def register_processing_time_timer(self, time: int) -> None:
        self.op._proc.add(time, (self.key, self.window))

    def delete_processing_time_timer(self, time: int) -> None:
        self.op._delete_timer(self.op._proc, False, time, self.key, self.window)


class _GeneralWindows(WindowOperator[V]):
    """Any assigner with any trigger: Flink's `WindowOperator` step by step.

    State: `key -> {window: _Slot}` (for merging assigners, the key's active
    windows), event-time and processing-time timers keyed by (key, window).
    Cleanup timers share the timer index with trigger timers, so a trigger
    timer at the cleanup time is one timer, as in Flink. A firing supersedes
    its slot's `fired` windows and leaves `fired` as the window itself, or
    empty when it purges; merged slots pool their `fired` windows.
    """

    engine_id = "general"

    def __init__(self, assigner: WindowAssigner, **kwargs: Any) -> None:
        super().__init__(assigner, **kwargs)
        self._slots: dict[str, dict[Window, _Slot]] = {}
        self._event = _TimerIndex()
        self._proc = _TimerIndex()
        self._ctx = _Context(self)
        self._count = 0

    def _cleanup_time(self, window: Window) -> Optional[int]:
        """When a window's state is freed, or None for never."""
        if self.assigner.is_event_time:
            time = window.max_timestamp + self.allowed_lateness_ms
        else:
            time = window.max_timestamp
        return time if time < MAX_WATERMARK else None

    def _is_late(self, window: Window) -> bool:
        if not self.assigner.is_event_time:
            return False
        cleanup = self._cleanup_time(window)
        return cleanup is not None and cleanup <= self.watermark

    def _cleanup_index(self) -> _TimerIndex:
        return self._event if self.assigner.is_event_time else self._proc

    def _delete_timer(self, index: _TimerIndex, event_time: bool, time: int, key: str, window: Window) -> None:
        """A trigger's timer deletion; the window's cleanup timer stays."""
        if event_time == self.assigner.is_event_time and time == self._cleanup_time(window):
            return
        index.remove(time, (key, window))

    def on_element(self, key: str, ts: int, value: V, side: int = 0) -> None:
        now = self.clock() if self.assigner.needs_clock else 0  # type: ignore[misc]
        try:
            windows = self.assigner.assign(ts, value, now)
        except InvalidElement as ex:
            self.emitted.append(("invalid", (key, (value, str(ex)))))
            return
        if not windows:
            self._late_if_behind(key, ts, value)
            return
        slots = self._slots.get(key)
        if slots is None:
            slots = {}
        merging = self.assigner.is_merging
        trigger = self.trigger
        ctx = self._ctx
        skipped = True
        for window in windows:
            if merging:
                window = self._add_merging_window(key, slots, window)
                if self._is_late(window):
                    del slots[window]
                    self._count -= 1
                    continue
                slot = slots[window]
            else:
                if self._is_late(window):
                    continue
                slot = slots.get(window)
                if slot is None:
                    slot = slots[window] = _Slot()
                    self._count += 1
            skipped = False
            contents = self._create() if slot.contents is _MISSING else slot.contents
            slot.contents = self._add(contents, value)
            self._apply(trigger.on_element(value, ts, window, ctx.bind(key, window, slot)), key, window, slot)
            cleanup = self._cleanup_time(window)
            if cleanup is not None:
                self._cleanup_index().add(cleanup, (key, window))
        if slots:
            self._slots[key] = slots
        else:
            self._slots.pop(key, None)
        if skipped:
            self.emitted.append(("late", (key, value)))

    def _late_if_behind(self, key: str, ts: int, value: V) -> None:
        """An element in no window is late if its own timestamp is (Flink)."""
        if self.assigner.is_event_time and ts + self.allowed_lateness_ms <= self.watermark:
            self.emitted.append(("late", (key, value)))

    def _add_merging_window(self, key: str, slots: dict[Window, _Slot], new: Window) -> Window:
        """Add `new` to the key's active windows, merging those it intersects
        (Flink's `MergingWindowSet.addWindow`); returns the window the element
        belongs to."""
        result_window = new
        absorbed = False
        for merged, members in self.assigner.merge_windows([*slots, new]):
            members = list(members)
            if new in members:
                members.remove(new)
                absorbed = True
                result_window = merged
            if members == [merged]:
                continue  # the new window lies inside an existing one
            self._merge_slots(key, slots, merged, members)
        if not absorbed:
            slots[new] = _Slot()
            self._count += 1
        return result_window

    def _merge_slots(self, key: str, slots: dict[Window, _Slot], merged: Window, members: list[Window]) -> None:
        """Replace `members` by `merged`: merge contents and trigger state,
        clear the members' triggers and cleanup timers."""
        old = [slots.pop(m) for m in members]
        contents = [s.contents for s in old if s.contents is not _MISSING]
        acc = _MISSING
        if contents:
            acc = contents[0]
            for other in contents[1:]:
                acc = self._merge(acc, other)
        fired = tuple(sorted(w for s in old for w in s.fired))  # type: ignore[union-attr]
        target = slots[merged] = _Slot(acc, fired=fired)
        self._count += 1 - len(old)
        ctx = self._ctx.bind(key, merged, target)
        ctx.merged_states = [s.tstate for s in old]
        self.trigger.on_merge(merged, ctx)
        ctx.merged_states = []
        index = self._cleanup_index()
        for window, slot in zip(members, old):
            self.trigger.clear(window, ctx.bind(key, window, slot))
            cleanup = self._cleanup_time(window)
            if cleanup is not None:
                index.remove(cleanup, (key, window))

    def _apply(self, result: TriggerResult, key: str, window: Window, slot: _Slot) -> None:
        if result.is_fire and slot.contents is not _MISSING:
            self._emit(key, window.start, window.end, slot.contents, slot.fired, self.watermark)  # type: ignore[arg-type]
            slot.fired = (window,)
        if result.is_purge:
            slot.contents = _MISSING
            slot.fired = _FIRST

    def next_event_time(self) -> Optional[int]:
        return self._event.next_time()

    def advance(self, wm: int, steps: Sequence[int] = ()) -> None:
        self.watermark = wm
        times = self._event.times
        if times and times[0] <= wm:
            self._fire_due(wm, steps)

    def _advance(self, wm: int, path: Optional[WatermarkPath]) -> None:
        """Triggers and the window function read `self.watermark`: during a
        firing it is the value the timer fires at."""
        timers = self._event
        while (due := timers.pop_due(wm)) is not None:
            t, entries = due
            if path is not None:
                self.watermark = path.at(t)
            for key, window in entries:
                self._on_timer(key, window, t, True)
        self.watermark = wm

    def on_processing_time(self, now_ms: int) -> None:
        while (due := self._proc.pop_due(now_ms)) is not None:
            t, entries = due
            for key, window in entries:
                self._on_timer(key, window, t, False)

    def next_processing_time(self) -> Optional[int]:
        return self._proc.next_time()

    def _on_timer(self, key: str, window: Window, t: int, event_time: bool) -> None:
        slots = self._slots.get(key)
        slot = None if slots is None else slots.get(window)
        if slot is None:
            return  # a timer a trigger did not delete, for a window now gone
        ctx = self._ctx.bind(key, window, slot)
        if event_time:
            result = self.trigger.on_event_time(t, window, ctx)
        else:
            result = self.trigger.on_processing_time(t, window, ctx)
        self._apply(result, key, window, slot)
        if event_time == self.assigner.is_event_time and t == self._cleanup_time(window):
            del slots[window]  # type: ignore[union-attr]
            if not slots:
                del self._slots[key]
            self._count -= 1
            self.trigger.clear(window, ctx)

    def snapshot(self) -> Any:
        return self._tagged((self._slots, self._event, self._proc, self._count))

    def restore(self, state: Any) -> None:
        saved, version = self._untagged(state)
        self._slots, self._event, self._proc, self._count = saved
        if version == 1:
            for key, slots in self._slots.items():
                for window, slot in slots.items():
                    slot.fired = _FIRST if self._unfired(key, window, slot) else (window,)

    def _unfired(self, key: str, window: Window, slot: _Slot) -> bool:
        """For a format-1 slot, which did not record its firings: whether it
        has had no result since its contents were last purged. Taken to be so
        when it has no contents or still waits for a timer at its max
        timestamp (the event-time and processing-time triggers' firing);
        otherwise it is taken to have fired, so that its next result replaces
        the row a consumer may hold (a wrong guess only marks a first result
        as a late update)."""
        if slot.contents is _MISSING:
            return True
        entry = (key, window)
        t = window.max_timestamp
        return entry in self._event.buckets.get(t, ()) or entry in self._proc.buckets.get(t, ())

    def state_size(self) -> int:
        return self._count
