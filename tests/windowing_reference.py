"""Brute-force reference of Apache Flink's keyed window operator rules.

Written from the documented rules only, sharing no code with `operators/`:
windows are found by enumerating candidate starts, sessions merge by repeated
pairwise merging, every watermark advance scans every window. Slow and
obviously correct; the property tests compare the real operator against it.

Driving protocol (the tests drive the operator the same way): for each event
`(key, ts, value, advance_ms)` processing time moves forward by `advance_ms`
and due processing-time timers fire, then the element is processed against
the watermark in force, then the watermark becomes `max ts seen - bound - 1`
if that is higher. At the end of input the watermark jumps to its maximum.

Rules:
- A window `[s, e)` is late when `e - 1 + lateness <= watermark`; an element is
  added to each of its windows that is not late; if all are late the element
  is reported late; so is an element in no window (sliding windows with
  gaps) whose own `ts + lateness <= watermark`. For sessions, the element's window `[ts, ts + gap)` first
  merges with every window of the key it overlaps or touches; only a window
  that merged with nothing can be late.
- Triggers: "event" fires a window when the watermark reaches `e - 1`, or at
  once when an element arrives at a window the watermark has passed; "count"
  fires every N elements; "count_timeout" fires and purges at N elements or
  `timeout` ms of processing time after the first element since the last
  purge; "purging_*" purge on every firing. A firing of a window with no
  elements since its last purge emits nothing.
- A firing *supersedes* every earlier result of its key that no result has
  superseded yet, whose window lies inside the firing's window and all of
  whose elements the firing holds (elements are told apart by arrival, not
  by value); it lists their windows, sorted. It is a late update exactly when
  it supersedes something. The results nothing superseded are the final ones
  (`final`): what a consumer applying `supersedes` must end up holding.
- Window state disappears when the watermark reaches `e - 1 + lateness`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

MAX_WM = 2**63 - 1
MIN_WM = -(2**63)

Firing = tuple[str, int, int, Any, tuple[tuple[int, int], ...], int]
"""(key, window start, window end, value, supersedes, watermark)"""


@dataclass
class _Result:
    key: str
    start: int
    end: int
    value: Any
    ids: frozenset[int]


@dataclass
class Spec:
    """What to simulate."""

    kind: str  # "tumbling" | "sliding" | "session" | "dynamic"
    size: int = 0
    slide: int = 0
    offset: int = 0
    gap: int = 0
    gap_of: Optional[Callable[[Any], int]] = None
    lateness: int = 0
    trigger: str = "event"  # event | purging_event | count | purging_count | count_timeout
    count: int = 1
    timeout: int = 1
    bound: int = 0
    evaluate: Callable[[list[Any]], Any] = lambda elements: tuple(sorted(elements))


@dataclass
class _Win:
    start: int
    end: int
    elements: list[Any] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    count: int = 0
    deadline: Optional[int] = None
    pending: bool = False
    holds_new: bool = False


def windows_of(spec: Spec, ts: int, value: Any) -> list[tuple[int, int]]:
    """Every window the element belongs to, by enumeration."""
    if spec.kind == "session":
        return [(ts, ts + spec.gap)]
    if spec.kind == "dynamic":
        assert spec.gap_of is not None
        return [(ts, ts + spec.gap_of(value))]
    slide = spec.size if spec.kind == "tumbling" else spec.slide
    found = []
    k = (ts - spec.size - spec.offset) // slide - 2
    while spec.offset + k * slide <= ts:
        start = spec.offset + k * slide
        if start <= ts < start + spec.size:
            found.append((start, start + spec.size))
        k += 1
    return found


class Reference:
    """The simulation; `run` returns (firings, late elements)."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.wm = MIN_WM
        self.now = 0
        self.max_seen: Optional[int] = None
        self.windows: dict[str, list[_Win]] = {}
        self.firings: list[Firing] = []
        self.late: list[tuple[str, Any]] = []
        self.live: list[_Result] = []
        self.arrivals = 0

    @property
    def final(self) -> list[tuple[str, int, int, Any]]:
        """(key, start, end, value) of every result nothing superseded."""
        return [(r.key, r.start, r.end, r.value) for r in self.live]

    def run(self, events: list[tuple[str, int, Any, int]]) -> tuple[list[Firing], list[tuple[str, Any]]]:
        for key, ts, value, advance in events:
            self.step(key, ts, value, advance)
        self.advance_watermark(MAX_WM)
        return self.firings, self.late

    def step(self, key: str, ts: int, value: Any, advance: int) -> None:
        self.now += advance
        self.processing_time()
        self.element(key, ts, value)
        self.max_seen = ts if self.max_seen is None else max(self.max_seen, ts)
        wm = self.max_seen - self.spec.bound - 1
        if wm > self.wm:
            self.advance_watermark(wm)

    def is_late(self, w: _Win) -> bool:
        return w.end - 1 + self.spec.lateness <= self.wm

    def fire(self, key: str, w: _Win, purge: bool) -> None:
        if w.elements:
            value = self.spec.evaluate(list(w.elements))
            ids = frozenset(w.ids)
            covered = [
                r for r in self.live if r.key == key and w.start <= r.start and r.end <= w.end and r.ids <= ids
            ]
            for r in covered:
                self.live.remove(r)
            self.live.append(_Result(key, w.start, w.end, value, ids))
            supersedes = tuple(sorted((r.start, r.end) for r in covered))
            self.firings.append((key, w.start, w.end, value, supersedes, self.wm))
        if purge:
            w.elements = []
            w.ids = []

    def element(self, key: str, ts: int, value: Any) -> None:
        spec = self.spec
        wins = self.windows.setdefault(key, [])
        targets: list[_Win] = []
        candidates = windows_of(spec, ts, value)
        if spec.kind in ("session", "dynamic"):
            ((start, end),) = windows_of(spec, ts, value)
            wins.append(_Win(start, end, holds_new=True))
            merged = True
            while merged:
                merged = False
                for a in wins:
                    for b in wins:
                        if a is not b and a.start <= b.end and b.start <= a.end:
                            wins.remove(a)
                            wins.remove(b)
                            deadlines = [d for d in (a.deadline, b.deadline) if d is not None]
                            wins.append(
                                _Win(
                                    min(a.start, b.start),
                                    max(a.end, b.end),
                                    a.elements + b.elements,
                                    a.ids + b.ids,
                                    a.count + b.count,
                                    min(deadlines) if deadlines else None,
                                    False,
                                    a.holds_new or b.holds_new,
                                )
                            )
                            merged = True
                            break
                    if merged:
                        break
            (target,) = [w for w in wins if w.holds_new]
            target.holds_new = False
            if self.is_late(target):
                wins.remove(target)
            else:
                targets.append(target)
        else:
            for start, end in candidates:
                if end - 1 + spec.lateness <= self.wm:
                    continue
                found = [w for w in wins if (w.start, w.end) == (start, end)]
                if found:
                    targets.append(found[0])
                else:
                    w = _Win(start, end)
                    wins.append(w)
                    targets.append(w)
        if not targets and (candidates or ts + spec.lateness <= self.wm):
            self.late.append((key, value))
        self.arrivals += 1
        for w in targets:
            w.elements.append(value)
            w.ids.append(self.arrivals)
            self.on_element_trigger(key, w)
        if not wins:
            del self.windows[key]

    def on_element_trigger(self, key: str, w: _Win) -> None:
        spec = self.spec
        behind = w.end - 1 <= self.wm
        if spec.trigger in ("event", "purging_event"):
            if behind:
                self.fire(key, w, spec.trigger == "purging_event")
            else:
                w.pending = True
        elif spec.trigger in ("count", "purging_count"):
            w.count += 1
            if w.count >= spec.count:
                w.count = 0
                self.fire(key, w, spec.trigger == "purging_count")
        elif spec.trigger == "count_timeout":
            if w.deadline is None:
                w.deadline = self.now + spec.timeout
            w.count += 1
            if w.count >= spec.count:
                w.count = 0
                w.deadline = None
                self.fire(key, w, True)
        else:
            raise ValueError(spec.trigger)

    def processing_time(self) -> None:
        while True:
            due = [
                (w.deadline, key, w)
                for key, wins in self.windows.items()
                for w in wins
                if w.deadline is not None and w.deadline <= self.now
            ]
            if not due:
                return
            _, key, w = min(due, key=lambda d: d[0])
            w.count = 0
            w.deadline = None
            self.fire(key, w, True)

    def advance_watermark(self, wm: int) -> None:
        self.wm = wm
        lateness = self.spec.lateness
        while True:
            moments = []
            for key, wins in self.windows.items():
                for w in wins:
                    if w.pending and w.end - 1 <= wm:
                        moments.append((w.end - 1, 0, key, w))
                    if w.end - 1 + lateness <= wm:
                        moments.append((w.end - 1 + lateness, 1, key, w))
            if not moments:
                return
            _, kind, key, w = min(moments, key=lambda m: (m[0], m[1]))
            if kind == 0:
                w.pending = False
                self.fire(key, w, self.spec.trigger == "purging_event")
            else:
                self.windows[key].remove(w)
                if not self.windows[key]:
                    del self.windows[key]
