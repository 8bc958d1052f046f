"""The general window engine: any assigner with any trigger, Flink's
`WindowOperator` step by step; see `GeneralEngine`."""

from __future__ import annotations

from typing import Any, Optional, Sequence, TypeVar

from operators.time.eventtime import MAX_WATERMARK, WatermarkPath
from operators.time.timer_index import TimerIndex
from operators.windows.assigners import InvalidElement, Window, WindowAssigner
from operators.windows.operator import _MISSING, WindowOperator
from operators.windows.results import _FIRST
from operators.windows.triggers import TriggerResult

V = TypeVar("V")


class _Slot:
    """A window of a key: its contents (accumulator, or `_MISSING` when empty
    or purged), its trigger's state, and `fired`: the windows whose latest
    result holds only contents this window still has (its next result
    supersedes them). `fired` is None when restored from a format-1 snapshot,
    until `GeneralEngine.restore` sets it."""

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

    def __init__(self, op: "GeneralEngine[Any]") -> None:
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


class GeneralEngine(WindowOperator[V]):
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
        self._event = TimerIndex()
        self._proc = TimerIndex()
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

    def _cleanup_index(self) -> TimerIndex:
        return self._event if self.assigner.is_event_time else self._proc

    def _delete_timer(self, index: TimerIndex, event_time: bool, time: int, key: str, window: Window) -> None:
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
