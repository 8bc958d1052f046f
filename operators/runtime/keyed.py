"""Bytewax wiring for keyed event-time operators.

One function, `keyed_event_time`, turns any `EventTimeLogic` into a dataflow
step. Two stateful Bytewax steps do the work:

1. **watermark** — keyed by input channel (an input stream and, when
   `partition_of` is given, a source partition). Runs the channel's
   `WatermarkGenerator`, stamps every element with the channel watermark in
   force before it and routes it to its key's shard; after each batch it
   announces the channel watermark to every shard, so shards that got none of
   the batch still see event time move. Elements and announcements carry the
   watermark values the channel passed in the batch, and a shard fires each
   timer at the first of them at or past its time, as Flink's per-event
   watermarks would (`EventTimeLogic.advance`). Every shard gets those
   values, so between processes they are most of what a batch carries:
   they pickle as one int64 block of bytes, packed once per batch
   (`_Steps`), where a list pickles an int at a time. Elements travel in lists, one per
   channel and batch into this step and one per shard out of it: Bytewax
   charges every item a hop between steps, and a list is one item.
2. **shards** — keyed by shard (a stable hash of the user key modulo
   `shards`). Each shard holds one `EventTimeLogic` for all its keys and a
   `ChannelWatermarks` that takes the minimum over channels, as Flink's
   operators do over their input partitions.

Keying by a fixed number of shards instead of by user key keeps the per-event
cost independent of the number of keys: Bytewax builds and snapshots one logic
per shard, not one per user. Shards are hashed with CRC-32 so a key lands in the
same shard in every process and after every resume.
"""

from __future__ import annotations

import pickle
import time
import zlib
from array import array
from collections import Counter
from itertools import repeat
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from typing import Any, Callable, Hashable, Iterable, Mapping, Optional, Sequence, TypedDict, TypeVar, Union

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import KeyedStream, StatefulBatchLogic

from eventio import metrics, snapshots
from operators.time.eventtime import (
    ChannelWatermarks,
    Clock,
    EventTimeLogic,
    MAX_WATERMARK,
    MIN_WATERMARK,
    WatermarkGenerator,
)

V = TypeVar("V")

DEFAULT_SHARDS = 32
SHARD_CACHE_KEYS = 100_000

_EVENTS = 0
_ANNOUNCE = 1
_BROADCAST = 2


_port_of = itemgetter(0)
"""The port of an emitted `(port, item)`."""
_item_of = itemgetter(1)
"""The item of an emitted `(port, item)`."""


class Wiring(TypedDict, total=False):
    """`keyed_event_time` options the wrappers pass through."""

    shards: int
    partition_of: Callable[[Any], Hashable]
    expected_channels: Union[int, Callable[[], int], Sequence[Union[int, Callable[[], int]]]]
    idle_timeout_ms: int
    clock: Clock


def system_clock_ms() -> int:
    """Wall-clock processing time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def shard_of(key: str, shards: int) -> str:
    """The shard key for a user key; stable across processes and resumes."""
    return str(zlib.crc32(key.encode()) % shards)


class _Steps(list):  # type: ignore[type-arg]
    """The watermark values a channel passed in one batch, ascending: a list
    in this process; pickled (for a shard in another process) as one int64
    array, packed on the first pickling and reused for every other shard.
    Measured here for 30,000 values, a file batch: 1.6-3.3 ms a pickle as
    a list, against 2 ms to pack once and 0.26 ms a pickle after that; a
    batch is pickled twice (elements, announcement) for each shard in
    another process. Appending to it
    costs what appending to a list does (an `array` costs 5x), and it is
    complete before Bytewax pickles it. Watermarks are int64 milliseconds
    (`MIN_WATERMARK`..`MAX_WATERMARK`)."""

    __slots__ = ("_packed",)

    def __reduce__(self) -> tuple[Any, ...]:
        try:
            packed = self._packed
        except AttributeError:
            packed = self._packed = array("q", list(self)).tobytes()  # from an exact list: 1.6x faster
        return _unpacked_steps, (packed,)


def _unpacked_steps(packed: bytes) -> "array[int]":
    """The steps a shard in another process gets: an int64 array, which
    `WatermarkPath` searches as it does a list."""
    steps = array("q")
    steps.frombytes(packed)
    return steps


def _per_input(value: Union[Any, Sequence[Any]], count: int, name: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"{name}: expected {count} entries, one per input, got {len(value)}")
        return list(value)
    return [value] * count


class _ChannelLogic(StatefulBatchLogic[Any, Any, Any]):
    """Watermark generation for one input channel (see module docstring)."""

    def __init__(
        self,
        step_id: str,
        side: int,
        timestamp_of: Callable[[Any], int],
        generator: WatermarkGenerator[Any],
        shard_keys: list[str],
        clock: Clock,
        resume: Optional[tuple[str, int, WatermarkGenerator[Any]]],
    ) -> None:
        self.event_time_lag = metrics.newest_event(step_id)
        self.channel = ""
        self.side = side
        self.timestamp_of = timestamp_of
        self.shard_keys = shard_keys
        self.clock = clock
        if resume is None:
            self.watermark = MIN_WATERMARK
            self.generator = generator
        else:
            self.channel, self.watermark, self.generator = resume
        self.announced = self.watermark
        self.newest = MIN_WATERMARK
        """The newest timestamp seen, for the event-time lag gauge."""
        self.shard_of: dict[str, int] = {}
        """The shard of keys seen, up to `SHARD_CACHE_KEYS` of them: a dict
        lookup instead of encoding and hashing the key (0.1 us an element)."""

    def on_batch(self, values: list[tuple[str, list[tuple[str, Any]]]]) -> tuple[Iterable[Any], bool]:
        self.channel = values[0][0]
        on_event = self.generator.on_event
        timestamp_of = self.timestamp_of
        nshards = len(self.shard_keys)
        crc32 = zlib.crc32
        shard_of = self.shard_of
        cached = shard_of.get
        by_shard: dict[int, list[tuple[int, str, int, Any]]] = {}
        wm = self.watermark
        steps = _Steps((wm,))
        newest = self.newest
        for _, group in values:
            for key, value in group:
                ts = timestamp_of(value)
                if ts > newest:
                    newest = ts
                shard = cached(key)
                if shard is None:
                    shard = crc32(key.encode()) % nshards
                    if len(shard_of) < SHARD_CACHE_KEYS:
                        shard_of[key] = shard
                events = by_shard.get(shard)
                if events is None:
                    events = by_shard[shard] = []
                events.append((wm, key, ts, value))
                new = on_event(value, ts)
                if new is not None and new > wm:
                    wm = new
                    steps.append(wm)
        now = self.clock()
        new = self.generator.on_periodic(now)
        if new is not None and new > wm:
            wm = new
            steps.append(wm)
        self.watermark = wm
        if newest != self.newest:
            self.newest = self.event_time_lag.ms = newest
        channel, side, shard_keys = self.channel, self.side, self.shard_keys
        out: list[tuple[str, tuple[Any, ...]]] = [
            (shard_keys[shard], (_EVENTS, channel, side, events, steps)) for shard, events in by_shard.items()
        ]
        out.extend(self._announce(steps))
        return out, False

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        new = self.generator.on_periodic(self.clock())
        if new is not None and new > self.watermark:
            self.watermark = new
        return self._announce(), False

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        # A finished input holds nothing back, as a finished Flink source.
        self.watermark = MAX_WATERMARK
        return self._announce(), False

    def notify_at(self) -> Optional[datetime]:
        if type(self.generator).on_periodic is WatermarkGenerator.on_periodic:
            return None
        return datetime.now(timezone.utc) + timedelta(milliseconds=200)

    def _announce(self, steps: Sequence[int] = ()) -> list[tuple[str, tuple[Any, ...]]]:
        """The channel watermark for every shard, with the values it went
        through in this batch (`steps`, see `EventTimeLogic.advance`)."""
        if self.watermark <= self.announced:
            return []
        self.announced = self.watermark
        item = (_ANNOUNCE, self.channel, self.watermark, steps)
        return [(shard, item) for shard in self.shard_keys]

    def snapshot(self) -> bytes:
        return pickle.dumps(
            (self.channel, self.watermark, self.generator), protocol=pickle.HIGHEST_PROTOCOL
        )


class _ShardLogic(StatefulBatchLogic[Any, Any, Any]):
    """All keys of one shard: channel watermarks plus one `EventTimeLogic`."""

    def __init__(
        self,
        step_id: str,
        core: EventTimeLogic[Any],
        idle_timeout_ms: Optional[int],
        expected_channels: int,
        clock: Clock,
        resume: Optional[bytes],
    ) -> None:
        self.core = core
        self.stepped = type(core).next_event_time is not EventTimeLogic.next_event_time
        """Whether the core's firings depend on the watermark's path (see
        `EventTimeLogic.advance`); others jump straight to the new watermark."""
        self.clock = clock
        self.step_id = step_id
        self.events_in = metrics.EVENTS_IN.labels(step_id)
        self.behind_watermark = metrics.EVENTS_BEHIND_WATERMARK.labels(step_id)
        self.processing_seconds = metrics.PROCESSING_SECONDS.labels(step_id)
        self.watermark_time = metrics.watermark(step_id)
        self.state_entries = metrics.STATE_ENTRIES.labels(step_id, core.state_kind)
        self.snapshot_seconds = metrics.SNAPSHOT_SECONDS.labels(step_id)
        self.reported_size = 0
        if resume is None:
            self.clocks = ChannelWatermarks(idle_timeout_ms=idle_timeout_ms, expected=expected_channels)
        else:
            self.clocks, core_state = snapshots.loads(resume)
            core.restore(core_state)
            core.watermark = self.clocks.current

    def on_batch(self, values: list[tuple[Any, ...]]) -> tuple[Iterable[Any], bool]:
        started = time.perf_counter()
        now = self.clock()
        core = self.core
        clocks = self.clocks
        known = clocks.channels
        on_element = core.on_element
        advance_deferred = core.advance_deferred
        stepped = self.stepped
        seen = set()
        events = 0
        behind = 0
        for item in values:
            kind = item[0]
            if kind == _EVENTS:
                _, channel, side, group, steps = item
                events += len(group)
                seen.add(channel)
                cap = clocks.cap(channel)
                last = known.get(channel)
                for stamped, key, ts, value in group:
                    if last is None or stamped > last:
                        last = stamped
                        if cap is None:
                            wm = clocks.update(channel, stamped, now)
                        else:
                            wm = stamped if stamped < cap else cap
                        if wm > core.watermark:
                            if not stepped:
                                core.on_watermark(wm)
                            elif wm == stamped:
                                advance_deferred(wm, steps)
                            else:
                                core.advance(wm, steps)
                    if ts <= core.watermark:
                        behind += 1
                    on_element(key, ts, value, side)
                if cap is not None and last is not None and last > known[channel]:
                    clocks.update(channel, last, now)
            elif kind == _ANNOUNCE:
                self._advance(clocks.update(item[1], item[2], now), item[3])
            else:
                core.on_broadcast(item[1])
        core.flush()
        for channel in seen:
            clocks.last_seen[channel] = now
        self._advance(clocks.on_processing_time(now))
        self._processing_time(now)
        out = self._drain()
        if behind:
            self.behind_watermark.inc(behind)
        if events:
            self.events_in.inc(events)
        if core.watermark > MIN_WATERMARK:
            self.watermark_time.ms = core.watermark
        self.processing_seconds.inc(time.perf_counter() - started)
        return out, False

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        now = self.clock()
        self._advance(self.clocks.on_processing_time(now))
        self._processing_time(now)
        return self._drain(), False

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        self._advance(MAX_WATERMARK)
        return self._drain(), False

    def notify_at(self) -> Optional[datetime]:
        due = [
            t
            for t in (self.core.next_processing_time(), self.clocks.next_idle_check())
            if t is not None
        ]
        if self.clocks.idle_since is not None:
            due.append(self.clock() + 200)
        if not due:
            return None
        delay = max(0, min(due) - self.clock())
        return datetime.now(timezone.utc) + timedelta(milliseconds=delay)

    def _advance(self, wm: int, steps: Sequence[int] = ()) -> None:
        if wm > self.core.watermark:
            if self.stepped:
                self.core.advance(wm, steps)
            else:
                self.core.on_watermark(wm)

    def _processing_time(self, now: int) -> None:
        due = self.core.next_processing_time()
        if due is not None and due <= now:
            self.core.on_processing_time(now)

    def _drain(self) -> list[tuple[str, list[Any]]]:
        """The logic's emissions as one `(port, items)` per port, so a result
        costs Bytewax one hop per batch rather than one per item."""
        size = self.core.state_size()
        if size != self.reported_size:
            self.state_entries.inc(size - self.reported_size)
            self.reported_size = size
        emitted = self.core.emitted
        if not emitted:
            return []
        self.core.emitted = []
        counts = Counter(map(_port_of, emitted))
        for port, n in counts.items():
            metrics.RECORDS_OUT.labels(self.step_id, port).inc(n)
        if len(counts) == 1:
            return [(emitted[0][0], list(map(_item_of, emitted)))]
        by_port: dict[str, list[Any]] = {port: [] for port in counts}
        for port, item in emitted:
            by_port[port].append(item)
        return list(by_port.items())

    def snapshot(self) -> bytes:
        started = time.perf_counter()
        state = pickle.dumps((self.clocks, self.core.snapshot()), protocol=pickle.HIGHEST_PROTOCOL)
        self.snapshot_seconds.observe(time.perf_counter() - started)
        return state


def key_by(step_id: str, up: Stream[V], key_of: Callable[[V], str]) -> KeyedStream[V]:
    """`op.key_on` in one call per batch rather than one per item: `(key,
    item)` pairs, the keys from `key_of` (a C callable such as
    `attrgetter("user_id")` keeps it all in C). A key that is not a string
    is a `TypeError` naming the step, as in `op.key_on`."""

    def keyed(batch: list[V]) -> list[tuple[str, V]]:
        keys = list(map(key_of, batch))
        if not all(map(isinstance, keys, repeat(str))):
            bad = next(k for k in keys if not isinstance(k, str))
            raise TypeError(f"step {step_id!r}: key {bad!r} of type {type(bad).__name__} is not a str")
        return list(zip(keys, batch))

    return op.flat_map_batch(step_id, up, keyed)  # type: ignore[return-value]


def keyed_event_time(
    step_id: str,
    inputs: Sequence[KeyedStream[V]],
    *,
    timestamp_of: Union[Callable[[V], int], Sequence[Callable[[V], int]]],
    watermarks: Union[Callable[[], WatermarkGenerator[V]], Sequence[Callable[[], WatermarkGenerator[V]]]],
    logic: Callable[[], EventTimeLogic[V]],
    ports: Sequence[str] = ("down", "late"),
    observers: Optional[Mapping[str, Callable[[list[Any]], None]]] = None,
    shards: int = DEFAULT_SHARDS,
    partition_of: Optional[Callable[[V], Hashable]] = None,
    expected_channels: Union[int, Callable[[], int], Sequence[Union[int, Callable[[], int]]]] = 1,
    idle_timeout_ms: Optional[int] = None,
    clock: Clock = system_clock_ms,
    broadcast: Optional[Stream[Any]] = None,
) -> dict[str, Stream[Any]]:
    """Run `logic` over keyed `inputs` in event time; one stream per port.

    `timestamp_of` and `watermarks` are given once or once per input.
    `partition_of(value)` names the source partition an element came from;
    each (input, partition) pair is a watermark channel and the operator
    watermark is the minimum over channels. `expected_channels` (once, or once
    per input; an int or a callable asked once at run time) is how many
    partitions feed each input: the watermark waits until all have reported,
    or until `idle_timeout_ms` passes. Items of `broadcast` reach every
    shard through `EventTimeLogic.on_broadcast`. Every port's stream carries
    the items the logic emitted on it, in emission order per shard;
    `observers[port](items)`, if given, sees each non-empty batch of a port
    (for metrics) without a step of its own, which would cost a Bytewax hop
    per item.
    """
    if not inputs:
        raise ValueError(f"{step_id}: at least one input stream is required")
    if shards < 1:
        raise ValueError(f"{step_id}: shards must be >= 1, got {shards}")
    count = len(inputs)
    ts_fns = _per_input(timestamp_of, count, "timestamp_of")
    wm_factories = _per_input(watermarks, count, "watermarks")
    shard_keys = [str(i) for i in range(shards)]
    expected_per_input = _per_input(expected_channels, count, "expected_channels")

    def expected() -> int:
        if partition_of is None:
            return count
        return sum(e() if callable(e) else e for e in expected_per_input)

    stamped: list[Stream[Any]] = []
    for side, (up, ts_fn, wm_factory) in enumerate(zip(inputs, ts_fns, wm_factories)):
        by_channel = op.flat_map_batch(
            f"{step_id}_channel_{side}", up, _channel_keyer(side, partition_of)
        )

        def build_channel(
            resume: Optional[bytes],
            side: int = side,
            ts_fn: Callable[[Any], int] = ts_fn,
            wm_factory: Callable[[], WatermarkGenerator[Any]] = wm_factory,
        ) -> _ChannelLogic:
            state = None if resume is None else snapshots.loads(resume)
            return _ChannelLogic(step_id, side, ts_fn, wm_factory(), shard_keys, clock, state)

        channel_out = op.stateful_batch(f"{step_id}_watermark_{side}", by_channel, build_channel)
        stamped.append(op.flat_map_batch(f"{step_id}_route_{side}", channel_out, _unwrap))

    if broadcast is not None:
        stamped.append(
            op.flat_map(
                f"{step_id}_broadcast",
                broadcast,
                lambda value: [(shard, (_BROADCAST, value)) for shard in shard_keys],
            )
        )
    merged = stamped[0] if len(stamped) == 1 else op.merge(f"{step_id}_merge", *stamped)

    def build_shard(resume: Optional[bytes]) -> _ShardLogic:
        return _ShardLogic(step_id, logic(), idle_timeout_ms, expected(), clock, resume)

    results = op.stateful_batch(f"{step_id}_shards", merged, build_shard)
    return {
        port: op.flat_map_batch(f"{step_id}_{port}", results, _port_filter(port, (observers or {}).get(port)))
        for port in ports
    }


def _channel_keyer(
    side: int, partition_of: Optional[Callable[[Any], Hashable]]
) -> Callable[[list[tuple[str, Any]]], list[tuple[str, tuple[str, list[tuple[str, Any]]]]]]:
    """Group a batch by watermark channel: one `(channel, (channel,
    [(key, value), ...]))` per channel, so the watermark step costs Bytewax
    one hop per group rather than one per element."""
    if partition_of is None:
        channel = str(side)
        return lambda batch: [(channel, (channel, batch))] if batch else []

    def key(batch: list[tuple[str, Any]]) -> list[tuple[str, tuple[str, list[tuple[str, Any]]]]]:
        if not batch:
            return []
        parts = list(map(partition_of, map(_item_of, batch)))
        first = parts[0]
        if parts.count(first) == len(parts):  # the usual batch: one source partition
            channel = f"{side}:{first}"
            return [(channel, (channel, batch))]
        groups: dict[Hashable, list[tuple[str, Any]]] = {}
        for part, kv in zip(parts, batch):
            group = groups.get(part)
            if group is None:
                group = groups[part] = []
            group.append(kv)
        out = []
        for part, group in groups.items():
            channel = f"{side}:{part}"
            out.append((channel, (channel, group)))
        return out

    return key


def _unwrap(batch: list[tuple[str, tuple[str, Any]]]) -> list[tuple[str, Any]]:
    return [routed for _, routed in batch]


def _port_filter(
    port: str, observe: Optional[Callable[[list[Any]], None]]
) -> Callable[[list[tuple[str, tuple[str, list[Any]]]]], list[Any]]:
    def select(batch: list[tuple[str, tuple[str, list[Any]]]]) -> list[Any]:
        items = [item for _, (p, group) in batch if p == port for item in group]
        if observe is not None and items:
            observe(items)
        return items

    return select
