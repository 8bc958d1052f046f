"""Windows and window assigners with Apache Flink's semantics.

A `Window` is the half-open interval `[start, end)` of epoch milliseconds; its
`max_timestamp` is `end - 1`, the last instant it covers and the event time at
which the default trigger fires it. Assigners decide which windows an element
belongs to, as Flink's `WindowAssigner` does:

- `TumblingEventTimeWindows` / `TumblingProcessingTimeWindows` (size, offset)
- `SlidingEventTimeWindows` / `SlidingProcessingTimeWindows` (size, slide,
  offset): every window whose `[start, end)` contains the timestamp
- `EventTimeSessionWindows` / `ProcessingTimeSessionWindows`: a fixed gap, or
  a gap computed per element (`gap_of(value) -> ms`); merging
- `CalendarWindows`: calendar days, ISO weeks, months, quarters or years in a
  time zone (a quarter in Europe/Berlin starts at local midnight)
- `GlobalWindows`: one window per key that never ends

Custom assigners subclass `WindowAssigner` and implement
`assign(ts, value, now_ms) -> windows`; merging ones set `is_merging = True`
and may override `merge_windows`; processing-time ones set
`is_event_time = False` and `needs_clock = True` to receive processing time
from the operator's injected clock as `now_ms` (0 otherwise). An assigner that cannot place an element raises
`InvalidElement`; the operator sends that element to its `invalid` port.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import date, datetime, timedelta
from typing import Any, Callable, ClassVar, NamedTuple, Optional, Sequence, Union
from zoneinfo import ZoneInfo

from operators.time.eventtime import MAX_WATERMARK, MIN_WATERMARK
from operators.windows.triggers import EventTimeTrigger, NeverTrigger, ProcessingTimeTrigger, Trigger


class Window(NamedTuple):
    """The half-open event-time interval `[start, end)` in epoch ms.

    A plain tuple underneath: cheap, hashable, picklable, and equal to
    `(start, end)`.
    """

    start: int
    end: int

    @property
    def max_timestamp(self) -> int:
        """The last millisecond inside the window."""
        return self.end - 1

    def intersects(self, other: "Window") -> bool:
        """True when the windows overlap or touch (Flink's `intersects`)."""
        return self.start <= other.end and other.start <= self.end

    def cover(self, other: "Window") -> "Window":
        """The smallest window spanning both."""
        return Window(min(self.start, other.start), max(self.end, other.end))


GLOBAL_WINDOW = Window(MIN_WATERMARK, MAX_WATERMARK + 1)
"""The single window of `GlobalWindows`; its max timestamp is `MAX_WATERMARK`."""


class InvalidElement(ValueError):
    """An element an assigner cannot place in any window (e.g. a dynamic gap
    that is not a positive integer); the message says why."""


def merge_overlapping(windows: Sequence[Window]) -> list[tuple[Window, list[Window]]]:
    """Group windows that intersect (touching included), as Flink's
    `TimeWindow.mergeWindows`: returns `(cover, members)` for every group of
    two or more windows, members sorted by start."""
    groups: list[tuple[Window, list[Window]]] = []
    cover: Optional[Window] = None
    members: list[Window] = []
    for w in sorted(windows):
        if cover is not None and cover.intersects(w):
            cover = cover.cover(w)
            members.append(w)
            continue
        if len(members) > 1:
            groups.append((cover, members))  # type: ignore[arg-type]
        cover, members = w, [w]
    if len(members) > 1:
        groups.append((cover, members))  # type: ignore[arg-type]
    return groups


class WindowAssigner(ABC):
    """Decides which windows an element belongs to (Flink's `WindowAssigner`).

    `is_event_time` says which clock closes the windows: event-time windows
    fire and are cleaned up by the watermark and can be late; processing-time
    windows are closed by the injected clock and are never late;
    `needs_clock` assigners read that clock (`now_ms`).
    `is_merging` assigners produce windows the operator merges with
    `merge_windows` (Flink's `MergingWindowAssigner`).
    """

    is_merging: ClassVar[bool] = False
    is_event_time: ClassVar[bool] = True
    needs_clock: ClassVar[bool] = False

    @abstractmethod
    def assign(self, ts: int, value: Any, now_ms: int) -> Sequence[Window]:
        """The windows of an element with event time `ts` seen at `now_ms`."""

    def default_trigger(self) -> Trigger:
        """The trigger used when none is given (Flink's `getDefaultTrigger`):
        fire when the watermark, or for processing-time windows the clock,
        passes the window's max timestamp."""
        return EventTimeTrigger() if self.is_event_time else ProcessingTimeTrigger()

    def merge_windows(self, windows: Sequence[Window]) -> list[tuple[Window, list[Window]]]:
        """Merge groups among `windows`: `(result, members)` per group."""
        return merge_overlapping(windows)


class FixedSizeWindows(WindowAssigner):
    """Windows of `size_ms` starting every `slide_ms`, shifted by `offset_ms`.

    Window starts are the instants `offset + k * slide`; an element belongs to
    every window whose `[start, start + size)` contains its timestamp,
    negative timestamps included (Flink's `getWindowStartWithOffset`).
    Tumbling windows are the case `slide == size`.
    """

    __slots__ = ("size_ms", "slide_ms", "offset_ms")

    def __init__(self, size_ms: int, slide_ms: int, offset_ms: int = 0) -> None:
        if size_ms <= 0 or slide_ms <= 0:
            raise ValueError(f"window size and slide must be > 0 ms, got {size_ms} and {slide_ms}")
        if abs(offset_ms) >= slide_ms:
            raise ValueError(f"window offset must satisfy |offset| < slide, got {offset_ms}")
        self.size_ms = size_ms
        self.slide_ms = slide_ms
        self.offset_ms = offset_ms

    def last_start(self, ts: int) -> int:
        """Start of the latest window containing `ts`."""
        return ts - (ts - self.offset_ms) % self.slide_ms

    def starts(self, ts: int) -> range:
        """Starts of all windows containing `ts`, latest first."""
        return range(self.last_start(ts), ts - self.size_ms, -self.slide_ms)

    def assign(self, ts: int, value: Any, now_ms: int) -> Sequence[Window]:
        t = ts if self.is_event_time else now_ms
        size = self.size_ms
        return [Window(s, s + size) for s in self.starts(t)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.size_ms}, {self.slide_ms}, offset={self.offset_ms})"


class TumblingEventTimeWindows(FixedSizeWindows):
    """Consecutive, non-overlapping event-time windows of `size_ms`."""

    def __init__(self, size_ms: int, offset_ms: int = 0) -> None:
        super().__init__(size_ms, size_ms, offset_ms)


class SlidingEventTimeWindows(FixedSizeWindows):
    """Event-time windows of `size_ms` starting every `slide_ms`."""


class TumblingProcessingTimeWindows(FixedSizeWindows):
    """Tumbling windows of the processing time at which elements arrive."""

    is_event_time = False
    needs_clock = True

    def __init__(self, size_ms: int, offset_ms: int = 0) -> None:
        super().__init__(size_ms, size_ms, offset_ms)


class SlidingProcessingTimeWindows(FixedSizeWindows):
    """Sliding windows of the processing time at which elements arrive."""

    is_event_time = False
    needs_clock = True


GapOf = Callable[[Any], int]


class SessionWindows(WindowAssigner):
    """Sessions: each element opens `[t, t + gap)` and windows that intersect
    (touching included) merge. `gap_of(value)` computes the gap per element
    (Flink's dynamic gap); a gap that is not a positive int makes the element
    invalid."""

    is_merging = True
    __slots__ = ("gap_ms", "gap_of")

    def __init__(self, gap_ms: Optional[int] = None, gap_of: Optional[GapOf] = None) -> None:
        if (gap_ms is None) == (gap_of is None):
            raise ValueError("give exactly one of gap_ms (fixed gap) or gap_of (dynamic gap)")
        if gap_ms is not None and gap_ms <= 0:
            raise ValueError(f"session gap must be > 0 ms, got {gap_ms}")
        self.gap_ms = gap_ms
        self.gap_of = gap_of

    @classmethod
    def with_gap(cls, gap_ms: int) -> "SessionWindows":
        return cls(gap_ms=gap_ms)

    @classmethod
    def with_dynamic_gap(cls, gap_of: GapOf) -> "SessionWindows":
        return cls(gap_of=gap_of)

    def gap(self, value: Any) -> int:
        """The session gap for `value`; raises `InvalidElement` if unusable."""
        if self.gap_of is None:
            return self.gap_ms  # type: ignore[return-value]
        try:
            gap = self.gap_of(value)
        except Exception as ex:
            raise InvalidElement(f"session gap extractor failed: {ex!r}") from ex
        if type(gap) is not int or gap <= 0:
            raise InvalidElement(f"session gap must be a positive int of ms, got {gap!r}")
        return gap

    def assign(self, ts: int, value: Any, now_ms: int) -> Sequence[Window]:
        start = ts if self.is_event_time else now_ms
        return [Window(start, start + self.gap(value))]

    def __repr__(self) -> str:
        gap = self.gap_ms if self.gap_of is None else self.gap_of
        return f"{type(self).__name__}(gap={gap!r})"


class EventTimeSessionWindows(SessionWindows):
    """Event-time sessions (Flink's `EventTimeSessionWindows` and
    `DynamicEventTimeSessionWindows`)."""


class ProcessingTimeSessionWindows(SessionWindows):
    """Sessions of processing time (Flink's `ProcessingTimeSessionWindows`):
    each element opens `[now, now + gap)`."""

    is_event_time = False
    needs_clock = True


CALENDAR_UNITS = ("day", "week", "month", "quarter", "year")


class CalendarWindows(WindowAssigner):
    """Calendar periods of a time zone: `day`, `week` (ISO, from Monday),
    `month`, `quarter` or `year`, each from local midnight to the next
    period's local midnight, so windows follow DST (a day may last 23 or 25
    hours). The last window found is cached, so elements of the same period
    cost two comparisons."""

    __slots__ = ("unit", "tz", "_cached")

    def __init__(self, unit: str, tz: Union[str, ZoneInfo] = "UTC") -> None:
        if unit not in CALENDAR_UNITS:
            raise ValueError(f"calendar unit must be one of {CALENDAR_UNITS}, got {unit!r}")
        self.unit = unit
        self.tz = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        self._cached = Window(0, 0)

    def assign(self, ts: int, value: Any, now_ms: int) -> Sequence[Window]:
        w = self._cached
        if not w.start <= ts < w.end:
            w = self.window_of(ts)
            self._cached = w
        return (w,)

    def window_of(self, ts: int) -> Window:
        """The calendar period containing `ts`."""
        local = datetime.fromtimestamp(ts // 1000, self.tz).date()
        first = self._period_start(local)
        return Window(self._epoch_ms(first), self._epoch_ms(self._next_start(first)))

    def _period_start(self, d: date) -> date:
        unit = self.unit
        if unit == "day":
            return d
        if unit == "week":
            return d - timedelta(days=d.weekday())
        if unit == "month":
            return d.replace(day=1)
        if unit == "quarter":
            return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)
        return date(d.year, 1, 1)

    def _next_start(self, first: date) -> date:
        unit = self.unit
        if unit == "day":
            return first + timedelta(days=1)
        if unit == "week":
            return first + timedelta(days=7)
        if unit == "year":
            return date(first.year + 1, 1, 1)
        months = 1 if unit == "month" else 3
        index = first.month - 1 + months
        return date(first.year + index // 12, index % 12 + 1, 1)

    def _epoch_ms(self, d: date) -> int:
        """Local midnight of `d` in epoch ms; a midnight skipped by a DST jump
        maps to the instant of the jump."""
        return round(datetime(d.year, d.month, d.day, tzinfo=self.tz).timestamp()) * 1000

    def __getstate__(self) -> tuple[str, str]:
        return (self.unit, self.tz.key)

    def __setstate__(self, state: tuple[str, str]) -> None:
        self.__init__(*state)  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"CalendarWindows({self.unit!r}, {self.tz.key!r})"


class GlobalWindows(WindowAssigner):
    """One window per key spanning all time, never cleaned up. Its default
    trigger never fires: pair it with a count trigger, or an event-time
    trigger to fire once at the end of a bounded input."""

    is_event_time = False
    __slots__ = ()

    def assign(self, ts: int, value: Any, now_ms: int) -> Sequence[Window]:
        return (GLOBAL_WINDOW,)

    def default_trigger(self) -> Trigger:
        """Never fires: the global window has no end."""
        return NeverTrigger()

    def __repr__(self) -> str:
        return "GlobalWindows()"
