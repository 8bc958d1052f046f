"""Where a Kafka partition without recovery state starts (`START_OFFSET`),
as Flink's `OffsetsInitializer`s choose it.

`earliest`, `latest`, `committed` (the consumer group's committed offset,
`CONSUMER_GROUP`; a partition without one stops the run, as Flink's
`committedOffsets()` does), `committed:earliest` / `committed:latest`
(`committedOffsets(OffsetResetStrategy.EARLIEST / LATEST)`: without a
committed offset, start there) and `timestamp:<epoch ms or ISO-8601 with a
UTC offset>` (`timestamp(ms)`: the first record at or after that time, the
end of the partition if there is none).

It applies only to partitions the recovery store has no position for:
after a first start, Bytewax recovery's positions win.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal, Optional

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

Kind = Literal["earliest", "latest", "committed", "timestamp"]
Fallback = Literal["earliest", "latest"]
EXPECTED = ("'earliest', 'latest', 'committed', 'committed:earliest', 'committed:latest' or "
            "'timestamp:<epoch milliseconds or ISO-8601 time with a UTC offset>'")
_RESET = {"earliest": OFFSET_BEGINNING, "latest": OFFSET_END}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class NoCommittedOffsetError(ValueError):
    """`START_OFFSET=committed` and the group has no offset for a partition."""


@dataclass(frozen=True)
class StartPosition:
    """A parsed `START_OFFSET`: `kind`, the `fallback` of a committed start
    (None: none, a partition without a committed offset is an error) and
    the `timestamp_ms` of a timestamp start."""

    kind: Kind = "earliest"
    fallback: Optional[Fallback] = None
    timestamp_ms: Optional[int] = None

    @property
    def needs_group(self) -> bool:
        """Whether it reads a consumer group's committed offsets."""
        return self.kind == "committed"

    def offset(self, consumer: Consumer, group: str, topic: str, partition: int, timeout_s: float) -> int:
        """The offset partition `partition` of `topic` starts at: a real
        offset, `OFFSET_BEGINNING` or `OFFSET_END`, asked of the cluster
        with `consumer` (of consumer group `group`) when needed."""
        if self.kind in _RESET:
            return _RESET[self.kind]
        if self.kind == "timestamp":
            (found,) = consumer.offsets_for_times([TopicPartition(topic, partition, self.timestamp_ms)],
                                                  timeout=timeout_s)
            return found.offset if found.offset >= 0 else OFFSET_END
        (found,) = consumer.committed([TopicPartition(topic, partition)], timeout=timeout_s)
        if found.offset >= 0:
            return found.offset
        if self.fallback is None:
            raise NoCommittedOffsetError(
                f"START_OFFSET=committed: consumer group {group!r} (CONSUMER_GROUP) has no committed offset for "
                f"partition {partition} of topic {topic!r}; commit one, or set START_OFFSET=committed:earliest or "
                "committed:latest to start such partitions there")
        return _RESET[self.fallback]


def parse_start_offset(raw: str) -> StartPosition:
    """`START_OFFSET`'s value as a `StartPosition`; `ValueError` naming the
    variable, the value and what is expected for anything else."""
    text = raw.strip()
    kind, _, arg = text.partition(":")
    kind = kind.strip().lower()
    arg = arg.strip()
    if kind in _RESET and not arg:
        return StartPosition(kind)  # type: ignore[arg-type]
    if kind == "committed" and arg.lower() in ("", "earliest", "latest"):
        return StartPosition("committed", fallback=arg.lower() or None)  # type: ignore[arg-type]
    if kind == "timestamp" and arg:
        return StartPosition("timestamp", timestamp_ms=_timestamp_ms(raw, arg))
    raise ValueError(f"START_OFFSET must be {EXPECTED}, got {raw!r}")


def _timestamp_ms(raw: str, arg: str) -> int:
    """Epoch milliseconds of `timestamp:<arg>`."""
    if arg.isdigit():
        return int(arg)
    try:
        when = datetime.fromisoformat(arg)
    except ValueError:
        raise ValueError(f"START_OFFSET must be {EXPECTED}, got {raw!r}: {arg!r} is neither") from None
    if when.tzinfo is None:
        raise ValueError(f"START_OFFSET must be {EXPECTED}, got {raw!r}: the time has no UTC offset "
                         "(add 'Z' or e.g. '+01:00')")
    return (when - _EPOCH) // timedelta(milliseconds=1)
