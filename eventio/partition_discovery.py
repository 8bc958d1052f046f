"""Partitions that appear while a flow runs, found as Flink's Kafka source
finds them (`partition.discovery.interval.millis`): new partitions of the
input topics, and the partitions of new topics that match the input pattern
(`INPUT_TOPIC_PATTERN`, Flink's `setTopicPattern`).

Bytewax fixes a source's partitions when a run starts, so a partition found
later is read by one of them: its owner, the same in every process
(`owner_of`). The owner reads it from its beginning (Flink's rule for
discovered partitions) and keeps its offset in its own recovery state, so a
resumed run continues it exactly; that owner keeps it for the life of the
recovery store. Plain code, no Kafka: the metadata comes from a callable.
"""

from __future__ import annotations

import logging
import re
import time
import zlib
from typing import Callable, Iterable, Mapping, Optional, Sequence

_log = logging.getLogger(__name__)

Metadata = Callable[[], Mapping[str, int]]
"""`metadata()`: the partition count of every topic of the cluster. All
topics, never named ones: asking for a topic that does not exist creates it
on brokers that auto-create topics (Tansu does)."""


def part_key(topic: str, partition: int) -> str:
    """The source partition name of `partition` of `topic`, as Bytewax's
    `KafkaSource` names it: `"{partition}-{topic}"`."""
    return f"{partition}-{topic}"


def topic_of(key: str) -> str:
    return key.split("-", 1)[1]


class TopicSelection:
    """The input topics: a list (`INPUT_TOPIC`) or a regular expression
    every character of a topic's name must match (`INPUT_TOPIC_PATTERN`,
    as Java's `Pattern.matcher(topic).matches()`); internal topics
    (`__consumer_offsets`, ...) never match a pattern."""

    def __init__(self, topics: Sequence[str] = (), pattern: Optional[str] = None) -> None:
        self.topics = list(topics)
        self.pattern = None if pattern is None else re.compile(pattern)

    def __contains__(self, topic: str) -> bool:
        if self.pattern is None:
            return topic in self.topics
        return not topic.startswith("__") and self.pattern.fullmatch(topic) is not None

    def describe(self) -> str:
        """E.g. "topics matching 'orders-.*'", for messages."""
        return f"topics matching {self.pattern.pattern!r}" if self.pattern is not None else f"topics {self.topics}"


def owner_of(key: str, base: Sequence[str], adopted: Mapping[str, str]) -> str:
    """The source partition that reads discovered partition `key`: the one
    the recovery store says, else one of `base` (the partitions the run
    started with, sorted) by the CRC-32 of `key`, the same in every process."""
    owner = adopted.get(key)
    if owner is not None:
        return owner
    return base[zlib.crc32(key.encode()) % len(base)]


class PartitionDiscovery:
    """Polls `metadata` every `interval_ms` (0: never) for partitions of the
    `selected` topics not yet `known`; `poll()` returns their keys, once.
    A metadata request that fails is logged and tried again at the next
    interval: a broker that stays away stops the run elsewhere."""

    def __init__(self, metadata: Metadata, selected: TopicSelection, known: Iterable[str], interval_ms: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._metadata = metadata
        self._selected = selected
        self._known = set(known)
        self._interval_s = interval_ms / 1000
        self._clock = clock
        self._next = clock() + self._interval_s

    def poll(self) -> list[str]:
        """The keys of partitions found since the last poll, sorted; `[]`
        before the interval has passed."""
        if not self._interval_s or self._clock() < self._next:
            return []
        self._next = self._clock() + self._interval_s
        try:
            counts = self._metadata()
        except Exception as ex:  # noqa: BLE001 - discovery retries; health checks stop a run without brokers
            _log.warning("partition discovery of %s failed, trying again in %g s: %s",
                         self._selected.describe(), self._interval_s, ex)
            return []
        found = sorted(part_key(topic, p) for topic, count in counts.items() if topic in self._selected
                       for p in range(count) if part_key(topic, p) not in self._known)
        self._known.update(found)
        return found
