"""A timer wheel for event-time timers of many keys.

Timers `(time, key)` are kept in slots of `2**SLOT_BITS` ms; as the watermark
moves forward, `pop_due` sweeps the slots it passed. Adding a timer is a dict
lookup and two list appends, popping one is amortised O(1) plus a sort of
the few timers due together, and a heap orders the slots, not the timers. A
heap of times with a dict per time (`window_operator._TimerIndex`) costs an
O(log n) pop that walks cold memory with a million keys, and a dict per
distinct time.

Plain Python, no Bytewax. Duplicate and stale timers are the caller's to
skip (the session engine checks each key's due time).
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Any, Optional

from operators.time.eventtime import MAX_WATERMARK

SLOT_BITS = 10
"""Slots of 1,024 ms: at a few thousand timers per second of event time a
slot holds a handful per shard, and a batch's watermark passes a few."""

Timer = tuple[int, str]


class TimerWheel:
    """Timers by slot, swept in time order (see module docstring). A slot is
    one flat list `[time, key, time, key, ...]`: no tuple per timer for the
    cyclic garbage collector to examine (it looks at every new tuple at
    least once), only one list per slot."""

    __slots__ = ("slots", "order", "low")

    def __init__(self) -> None:
        self.slots: dict[int, list[Any]] = {}
        self.order: list[int] = []
        """A heap of the slots in `slots`."""
        self.low = MAX_WATERMARK
        """No timer is earlier than this; the first slot's start if that is later."""

    def add(self, time: int, key: str) -> None:
        slot = time >> SLOT_BITS
        timers = self.slots.get(slot)
        if timers is None:
            self.slots[slot] = [time, key]
            heappush(self.order, slot)
        else:
            timers.append(time)
            timers.append(key)
        if time < self.low:
            self.low = time

    def pop_due(self, wm: int) -> list[Timer]:
        """Every timer at or before `wm`, removed, in time order (then key)."""
        if wm < self.low:
            return []
        slots, order = self.slots, self.order
        last = wm >> SLOT_BITS
        flat: list[Any] = []
        while order and order[0] < last:
            flat += slots.pop(heappop(order))
        due = list(zip(flat[::2], flat[1::2]))
        if order and order[0] == last:  # the slot `wm` is in: keep its later timers
            timers = slots[last]
            pairs = list(zip(timers[::2], timers[1::2]))
            due += [timer for timer in pairs if timer[0] <= wm]
            later = [x for timer in pairs if timer[0] > wm for x in timer]
            if later:
                slots[last] = later
            else:
                del slots[last]
                heappop(order)
        self.low = self._low(last)
        due.sort()
        return due

    def _low(self, last: int) -> int:
        if not self.order:
            return MAX_WATERMARK
        first = self.order[0]
        return min(self.slots[first][::2]) if first == last else first << SLOT_BITS

    def earliest(self) -> Optional[int]:
        """The earliest timer's time, or None."""
        return min(self.slots[self.order[0]][::2]) if self.order else None
