"""The keyed window operator core with Apache Flink's `WindowOperator` rules.

One `WindowOperator` holds the window state of every key of a shard and
implements `EventTimeLogic` (see `operators/time/eventtime.py`); it never imports
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

`WindowOperator(...)` returns one of the engines `choose_engine`
(`operators/windows/engines.py`) picks, with identical semantics: fixed-size
event-time windows and event-time sessions with the default trigger get
specialised engines (`fixed.py`, `sessions.py`: a few dict operations per
element, one timer entry per window or per key instead of per element);
everything else runs the general engine (`general.py`), a direct rendering of
Flink's trigger and merging machinery. This module holds what they share: the
constructor's checks, result emission, firing with the collector paused and
the snapshot tags.
"""

from __future__ import annotations

import gc
from abc import abstractmethod
from typing import Any, ClassVar, Optional, Sequence, TypeVar

from operators.time.eventtime import Clock, EventTimeLogic, WatermarkPath
from operators.windows.assigners import Window, WindowAssigner
from operators.windows.functions import Aggregate, AggregateFunction, ProcessWindowFunction
from operators.windows.results import WindowResult, _new_tuple
from operators.windows.triggers import Trigger

V = TypeVar("V")


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
class name, as it was then."""



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
            from operators.windows.engines import choose_engine  # the engines subclass this class

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

