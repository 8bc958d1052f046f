"""A timer index: timers bucketed by firing time, for cores that register
many timers per time (the general window engine's trigger and cleanup
timers). Plain Python."""

from __future__ import annotations

import heapq
from typing import Hashable, Optional


class TimerIndex:
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

