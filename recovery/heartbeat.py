"""A per-worker heartbeat: one tick every interval, so quiet sink partitions
still see a call in every epoch.

Bytewax calls a sink partition only when it receives items, and snapshots it
only at the end of an epoch in which it did. An exactly-once sink commits an
epoch's output at its next call after the snapshot, so without a tick a
partition that goes quiet would hold its last epoch's output back until new
data arrives. `heartbeats` emits `None` on every worker every `interval`;
the sink wiring fans each tick out to all of its partitions.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Optional

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import DynamicSource, StatelessSourcePartition


MAX_SLEEP = timedelta(milliseconds=10)
"""Longest the heartbeat input sleeps, so it delays an epoch by at most this."""


class _Ticker(StatelessSourcePartition[None]):
    """Emits one `None` whenever `interval` has passed since the last one."""

    def __init__(self, interval: timedelta) -> None:
        self._interval = interval
        self._due = datetime.now(timezone.utc)

    def next_batch(self) -> list[None]:
        now = datetime.now(timezone.utc)
        if now < self._due:
            return []
        self._due = now + self._interval
        return [None]

    def next_awake(self) -> Optional[datetime]:
        # Bytewax advances an input's epoch only when it wakes the input, so
        # sleeping until the next tick would hold every epoch back by up to
        # an interval and stall the whole dataflow: wake often, emit rarely.
        return min(self._due, datetime.now(timezone.utc) + MAX_SLEEP)


class HeartbeatSource(DynamicSource[None]):
    """One ticker per worker; unbounded, so a flow using it never ends on its own."""

    def __init__(self, interval: timedelta) -> None:
        if interval <= timedelta(0):
            raise ValueError(f"heartbeat interval must be positive, got {interval}")
        self.interval = interval

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Ticker:
        return _Ticker(self.interval)


def heartbeats(step_id: str, flow: Dataflow, interval: timedelta) -> Stream[None]:
    """A stream of `None` ticks, one per worker every `interval`."""
    return op.input(step_id, flow, HeartbeatSource(interval))
