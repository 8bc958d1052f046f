"""Interval join: Flink's `KeyedStream.intervalJoin(...).between(lower, upper)`.

Two keyed inputs, side 0 (left) and side 1 (right). A left element `l` and a
right element `r` of the same key join when

    l.ts + lower <= r.ts <= l.ts + upper

with either bound made exclusive by option (Flink's `lowerBoundExclusive()` /
`upperBoundExclusive()`, which move the bound by one millisecond). An element
whose timestamp is behind the watermark in force when it arrives
(`ts < watermark`, Flink's `isLate`) is late: it joins nothing and goes to the
`late` port as `(key, (side, element))`.

Each key keeps one buffer per side, ordered by timestamp, so finding join
partners is two binary searches. Buffers are freed by the watermark with
Flink's cleanup times: a left element is kept until the watermark passes
`ts + max(upper, 0)`, a right element until it passes `ts + max(-lower, 0)`.
Plain Python, no Bytewax import; `operators/joins/wiring.py` wires it into a dataflow.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from heapq import heappop, heappush
from typing import Any, Callable, Optional

from operators.time.eventtime import EventTimeLogic

Select = Callable[[Any, Any], Any]
"""Builds the joined result from a left and a right element."""

_Buffer = tuple[list[int], list[Any]]
"""Timestamps in ascending order and the elements at the same positions."""


def effective_bounds(
    lower_ms: int, upper_ms: int, lower_inclusive: bool = True, upper_inclusive: bool = True
) -> tuple[int, int]:
    """The inclusive interval `[lower, upper]` the options describe.

    Raises `ValueError` for an interval that can hold no timestamp, so a join
    that could never emit is refused when the dataflow is built.
    """
    for name, bound in (("lower_ms", lower_ms), ("upper_ms", upper_ms)):
        if isinstance(bound, bool) or not isinstance(bound, int):
            raise ValueError(f"{name} must be an int of milliseconds, got {bound!r}")
    if lower_ms > upper_ms:
        raise ValueError(f"lower_ms ({lower_ms}) must be <= upper_ms ({upper_ms})")
    lower = lower_ms if lower_inclusive else lower_ms + 1
    upper = upper_ms if upper_inclusive else upper_ms - 1
    if lower > upper:
        raise ValueError(
            f"the interval between {lower_ms} and {upper_ms} ms with these exclusive "
            "bounds holds no timestamp; nothing could ever join"
        )
    return lower, upper


class _Side:
    """Buffered elements of one input for all keys, and their cleanup times.

    Every buffered element has exactly one cleanup registration
    `(ts + offset, key)`: in a FIFO while registrations arrive in time order
    (the common, cheap case) and in a heap otherwise. Since an element and its
    registration expire together, each registration popped frees the oldest
    element of its key.
    """

    __slots__ = ("buffers", "in_order", "out_of_order", "offset", "low", "high")

    def __init__(self, offset: int, low: int, high: int) -> None:
        self.buffers: dict[str, _Buffer] = {}
        self.in_order: deque[tuple[int, str]] = deque()
        self.out_of_order: list[tuple[int, str]] = []
        self.offset = offset
        self.low = low
        self.high = high

    def expire(self, wm: int) -> None:
        """Free every element with `ts + offset < wm`."""
        buffers = self.buffers
        queue = self.in_order
        while queue and queue[0][0] < wm:
            self._free_oldest(buffers, queue.popleft()[1])
        heap = self.out_of_order
        while heap and heap[0][0] < wm:
            self._free_oldest(buffers, heappop(heap)[1])

    @staticmethod
    def _free_oldest(buffers: dict[str, _Buffer], key: str) -> None:
        stamps, values = buffers[key]
        if len(stamps) == 1:
            del buffers[key]
        else:
            del stamps[0]
            del values[0]

    def size(self) -> int:
        return len(self.in_order) + len(self.out_of_order)

    def snapshot(self) -> tuple[Any, ...]:
        return (self.buffers, self.in_order, self.out_of_order)

    def restore(self, state: tuple[Any, ...]) -> None:
        self.buffers, self.in_order, self.out_of_order = state


class IntervalJoin(EventTimeLogic[Any]):
    """Interval join state for all keys of one shard.

    Emits `("down", (key, select(left, right)))` for every joined pair — by
    default `select` builds the tuple `(left, right)` — at the moment the
    second of the two elements arrives, partners in timestamp order; and
    `("late", (key, (side, element)))` for late elements.
    """

    state_kind = "buffered_elements"

    def __init__(
        self,
        lower_ms: int,
        upper_ms: int,
        *,
        lower_inclusive: bool = True,
        upper_inclusive: bool = True,
        select: Optional[Select] = None,
    ) -> None:
        super().__init__()
        lower, upper = effective_bounds(lower_ms, upper_ms, lower_inclusive, upper_inclusive)
        self.select = select
        # Each side: cleanup offset (Flink's cleanup timers fire at
        # ts + max(upper, 0) for the left, ts + max(-lower, 0) for the right)
        # and where partners lie relative to one of its elements.
        self._sides = (_Side(max(upper, 0), lower, upper), _Side(max(-lower, 0), -upper, -lower))

    def on_element(self, key: str, ts: int, value: Any, side: int = 0) -> None:
        if ts < self.watermark:
            self.emitted.append(("late", (key, (side, value))))
            return
        mine = self._sides[side]
        own = mine.buffers.get(key)
        if own is None:
            mine.buffers[key] = ([ts], [value])
        else:
            stamps, values = own
            if ts >= stamps[-1]:
                stamps.append(ts)
                values.append(value)
            else:
                at = bisect_right(stamps, ts)
                stamps.insert(at, ts)
                values.insert(at, value)
        due = ts + mine.offset
        queue = mine.in_order
        if not queue or due >= queue[-1][0]:
            queue.append((due, key))
        else:
            heappush(mine.out_of_order, (due, key))

        other = self._sides[1 - side].buffers.get(key)
        if other is None:
            return
        stamps, values = other
        start = bisect_left(stamps, ts + mine.low)
        stop = bisect_right(stamps, ts + mine.high, start)
        if start == stop:
            return
        append = self.emitted.append
        select = self.select
        if side == 0:
            if select is None:
                for partner in values[start:stop]:
                    append(("down", (key, (value, partner))))
            else:
                for partner in values[start:stop]:
                    append(("down", (key, select(value, partner))))
        elif select is None:
            for partner in values[start:stop]:
                append(("down", (key, (partner, value))))
        else:
            for partner in values[start:stop]:
                append(("down", (key, select(partner, value))))

    def on_watermark(self, wm: int) -> None:
        self.watermark = wm
        left, right = self._sides
        left.expire(wm)
        right.expire(wm)

    def snapshot(self) -> Any:
        return (self._sides[0].snapshot(), self._sides[1].snapshot())

    def restore(self, state: Any) -> None:
        left, right = state
        self._sides[0].restore(left)
        self._sides[1].restore(right)

    def state_size(self) -> int:
        """Buffered elements over both sides and all keys."""
        return self._sides[0].size() + self._sides[1].size()
