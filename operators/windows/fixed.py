"""The fast engines for fixed-size event-time windows (tumbling and
sliding) with the event-time trigger; see `FixedWindowsEngine`."""

from __future__ import annotations

import heapq
from typing import Any, Optional, Sequence, TypeVar

from operators.time.eventtime import WatermarkPath
from operators.windows.assigners import FixedSizeWindows, Window
from operators.windows.operator import _MISSING, WindowOperator
from operators.windows.results import _FIRST, WindowResult, _new_tuple

V = TypeVar("V")


class FixedWindowsEngine(WindowOperator[V]):
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

    Elements are placed by `FixedSizeWindows.last_start` and `starts`,
    computed inline (a method call per element would cost the hot path);
    `choose_engine` runs an assigner that overrides them on the general
    engine.
    """

    assigner: FixedSizeWindows

    def __init__(self, assigner: FixedSizeWindows, **kwargs: Any) -> None:
        super().__init__(assigner, **kwargs)
        self._size = assigner.size_ms
        self._slide = assigner.slide_ms
        self._offset = assigner.offset_ms
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


class TumblingEngine(FixedWindowsEngine[V]):
    """`FixedWindowsEngine` for one window per element."""

    engine_id = "tumbling"

    def on_element(self, key: str, ts: int, value: V, side: int = 0) -> None:
        size = self._size
        start = ts - (ts - self._offset) % size  # FixedSizeWindows.last_start, inline
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


class SlidingEngine(FixedWindowsEngine[V]):
    """`FixedWindowsEngine` for overlapping windows, or windows with gaps."""

    engine_id = "sliding"

    def on_element(self, key: str, ts: int, value: V, side: int = 0) -> None:
        size = self._size
        wm = self.watermark
        last = ts - (ts - self._offset) % self._slide  # FixedSizeWindows.last_start, inline
        if last <= ts - size:  # in the gap between windows (slide > size)
            if ts + self.allowed_lateness_ms <= wm:
                self.emitted.append(("late", (key, value)))
            return
        horizon = wm - self.allowed_lateness_ms - size + 1
        windows = self._windows
        add = self._add
        skipped = True
        for start in range(last, ts - size, -self._slide):  # FixedSizeWindows.starts
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

