"""Window join: Flink's `stream.join(other).where(...).equalTo(...)
.window(assigner).apply(join)`.

Flink builds the window join as a co-group over the union of both inputs,
each element tagged with its input, run by the ordinary window operator; this
module does the same with `operators/windows/operator.py` and the assigners of
`operators/windows/assigners.py`. When a window of a key fires, every (left, right) pair
of that key and window is emitted as `("down", (key, WindowResult))` whose
`value` is `select(left, right)` (default: the tuple), lefts in arrival order
outer, rights inner. A window with elements of only one side emits nothing
(an inner join). Lateness, allowed lateness, triggers and merging sessions are
the window operator's: an element whose windows are all late goes to `late`
as `(key, (side, element))`; a window re-firing for a late element (within
the allowed lateness) emits all its pairs again, as in Flink, each result
carrying the firing's `supersedes` (the window itself: replace all pairs of
its earlier firing). Plain Python, no Bytewax import.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, Sequence

from operators.joins.interval_join import Select
from operators.time.eventtime import Clock, EventTimeLogic
from operators.windows.assigners import Window, WindowAssigner
from operators.windows.operator import WindowOperator
from operators.windows.triggers import Trigger


def _pairs(select: Optional[Select]) -> Callable[[str, Window, list, int], Iterable[Any]]:
    """The window function: the cross product of a window's two sides."""

    def join(key: str, window: Window, elements: list, watermark: int) -> Iterable[Any]:
        lefts = [value for side, value in elements if side == 0]
        rights = [value for side, value in elements if side == 1]
        if select is None:
            return [(left, right) for left in lefts for right in rights]
        return [select(left, right) for left in lefts for right in rights]

    return join


class WindowJoin(EventTimeLogic[Any]):
    """Window join state for all keys of one shard (see module docstring)."""

    state_kind = "windows"

    def __init__(
        self,
        assigner: WindowAssigner,
        *,
        select: Optional[Select] = None,
        trigger: Optional[Trigger] = None,
        allowed_lateness_ms: int = 0,
        clock: Optional[Clock] = None,
    ) -> None:
        super().__init__()
        self._windows: WindowOperator[Any] = WindowOperator(
            assigner,
            trigger=trigger,
            allowed_lateness_ms=allowed_lateness_ms,
            process=_pairs(select),
            clock=clock,
        )

    def on_element(self, key: str, ts: int, value: Any, side: int = 0) -> None:
        windows = self._windows
        windows.watermark = self.watermark
        windows.on_element(key, ts, (side, value))
        self._collect()

    def next_event_time(self) -> Optional[int]:
        return self._windows.next_event_time()

    def on_watermark(self, wm: int) -> None:
        self.advance(wm)

    def advance(self, wm: int, steps: Sequence[int] = ()) -> None:
        self.watermark = wm
        self._windows.advance(wm, steps)
        self._collect()

    def on_processing_time(self, now_ms: int) -> None:
        self._windows.on_processing_time(now_ms)
        self._collect()

    def next_processing_time(self) -> Optional[int]:
        return self._windows.next_processing_time()

    def _collect(self) -> None:
        inner = self._windows.emitted
        if inner:
            self.emitted.extend(inner)
            inner.clear()

    def snapshot(self) -> Any:
        return self._windows.snapshot()

    def restore(self, state: Any) -> None:
        self._windows.restore(state)

    def state_size(self) -> int:
        """Open windows, as the window operator counts them."""
        return self._windows.state_size()
