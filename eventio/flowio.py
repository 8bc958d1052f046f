"""The one way every flow reads events and writes results.

Input is a JSON-lines file (`INPUT_PATH`, a bounded stream) or Kafka topics
(`INPUT_TOPIC`). Every record is decoded into an `Event` or, if it cannot be,
a `DeadLetter` that keeps the original bytes, where they came from and why:
bad input never stops a flow and is never dropped. Results, late events and
dead letters go to JSON-lines files when their `*_PATH` is set, else to Kafka.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import bytewax.operators as op
from bytewax.connectors.files import FileSink
from bytewax.connectors.kafka import (
    KafkaSinkMessage,
    KafkaSource,
)
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END

from eventio import compact_json, metrics
from eventio.config import IOConfig
from eventio.deadletter import DeadLetter
from eventio.decoding import Decoder, SerdeConfig
from eventio.event import Event
from eventio.kafka_sink import CheckedKafkaSink
from eventio.kafka_source import DecodingKafkaSource

Decoded = Union[Event, DeadLetter]


@dataclass(frozen=True)
class EventsIn:
    """Decoded events and the dead letters of input that could not be.

    `channels()` is the number of source partitions (files or Kafka topic
    partitions), each a watermark channel named by `Event.channel`; it is
    asked at run time, so building a flow never contacts Kafka.
    """

    events: Stream[Event]
    errors: Stream[DeadLetter]
    channels: Callable[[], int]


Line = tuple[str, int, bytes]
"""A raw input line: (file path, 1-based line number, bytes)."""


class _JsonLinesPartition(StatefulSourcePartition[Line, tuple[int, int]]):
    """Lines of one file with their line numbers; resumes by byte offset."""

    def __init__(self, path: str, batch_size: int, resume: Optional[tuple[int, int]]) -> None:
        self._path = path
        self._file = open(path, "rb")
        self._batch_size = batch_size
        self._line = 0
        if resume is not None:
            offset, self._line = resume
            self._file.seek(offset)

    def next_batch(self) -> list[Line]:
        batch = []
        readline = self._file.readline
        path = self._path
        for _ in range(self._batch_size):
            raw = readline()
            if not raw:
                break
            self._line += 1
            batch.append((path, self._line, raw))
        if not batch:
            raise StopIteration()
        return batch

    def snapshot(self) -> tuple[int, int]:
        return (self._file.tell(), self._line)

    def close(self) -> None:
        self._file.close()


class JsonLinesSource(FixedPartitionedSource[Line, tuple[int, int]]):
    """One partition per file: `(path, line_number, raw_line)` items, bounded."""

    def __init__(self, paths: Iterable[str], batch_size: int = 1000) -> None:
        self.paths = list(paths)
        for path in self.paths:
            if not Path(path).is_file():
                raise FileNotFoundError(f"input file {path!r} does not exist")
        self.batch_size = batch_size

    def list_parts(self) -> list[str]:
        return self.paths

    def build_part(
        self, step_id: str, for_part: str, resume_state: Optional[tuple[int, int]]
    ) -> _JsonLinesPartition:
        return _JsonLinesPartition(for_part, self.batch_size, resume_state)


CONSUMER_CONFIG = {"isolation.level": "read_committed", "fetch.wait.max.ms": "50", "queued.min.messages": "1000000"}
"""Consumer settings of every Kafka input: offsets are owned by Bytewax
recovery; only committed transactional output is read. librdkafka keeps
fetching until a partition has a million records queued (default 100,000;
the 64 MB `queued.max.messages.kbytes` cap still holds): with the default,
half the reads of session analytics on one partition found nothing queued
and the flow stood idle a quarter of the time (500k events 5.0 -> 4.1 s)."""


def _starting_offset(cfg: IOConfig) -> int:
    """Where a partition without recovery state starts (`START_OFFSET`)."""
    return OFFSET_BEGINNING if cfg.start_offset == "earliest" else OFFSET_END


def kafka_source(cfg: IOConfig, topics: Optional[list[str]] = None) -> KafkaSource:
    """Bytewax's Kafka source (message objects, for non-event topics) with the
    settings of every Kafka input."""
    return KafkaSource(
        cfg.brokers,
        topics or cfg.input_topics,
        tail=not cfg.stop_at_end,
        starting_offset=_starting_offset(cfg),
        add_config=dict(CONSUMER_CONFIG),
        batch_size=cfg.kafka_batch_size,
        raise_on_errors=False,
    )


def decode_lines(decode: Decoder) -> Callable[[list[Line]], list[Decoded]]:
    """Batch decoder for file lines; events are channelled by file path."""

    def decode_batch(batch: list[Line]) -> list[Decoded]:
        out: list[Decoded] = []
        for path, number, raw in batch:
            item = decode(raw.rstrip(b"\r\n"), None, path, None, number)
            if item.__class__ is Event:
                item.channel = path  # type: ignore[union-attr]
            out.append(item)
        return out

    return decode_batch


def read_events(
    flow: Dataflow,
    step_id: str,
    cfg: IOConfig,
    *,
    path: Optional[str] = None,
    topics: Optional[list[str]] = None,
    serde: Optional[SerdeConfig] = None,
) -> EventsIn:
    """Events from `path` (default `cfg.input_path`) or else Kafka `topics`
    (default `cfg.input_topics`), split from the dead letters. Values are JSON
    (upcast to the current event version) or, with `VALUE_FORMAT=avro`,
    Confluent-framed Avro resolved to the current schema (`eventio/decoding.py`)."""
    path = path if path is not None else (cfg.input_path if topics is None else None)
    decode = (serde or SerdeConfig.from_env()).decoder(max_bytes=cfg.max_message_bytes)
    if path:
        paths = [p.strip() for p in path.split(",") if p.strip()]
        raw = op.input(f"{step_id}_file", flow, JsonLinesSource(paths))
        decoded = op.flat_map_batch(f"{step_id}_decode", raw, decode_lines(decode))
        channels: Callable[[], int] = lambda: len(paths)
    else:
        source = DecodingKafkaSource(cfg.brokers, topics or cfg.input_topics, decode, tail=not cfg.stop_at_end,
                                     starting_offset=_starting_offset(cfg), config=CONSUMER_CONFIG,
                                     batch_size=cfg.kafka_batch_size, commit_group=cfg.consumer_group)
        decoded = op.input(f"{step_id}_kafka", flow, source)
        channels = _cached(lambda: len(source.list_parts()))
    split = op.branch(f"{step_id}_split", decoded, lambda x: x.__class__ is Event)
    return EventsIn(events=split.trues, errors=split.falses, channels=channels)


class MissingFieldError(ValueError):
    """An event lacks a field this flow requires."""


def require(step_id: str, src: EventsIn, *names: str) -> EventsIn:
    """Events that have every field in `names`; the others become dead
    letters (the event's JSON, its channel, and which field is missing)."""

    def check(event: Event) -> Decoded:
        for name in names:
            if getattr(event, name) is None:
                ex = MissingFieldError(f"event {event.event_id!r} has no {name!r}, which this flow requires")
                return DeadLetter.of(ex, source=event.channel or "?", value=event.to_json().encode(),
                                     key=event.user_id.encode())
        return event

    checked = op.branch(f"{step_id}_split", op.map(f"{step_id}_check", src.events, check),
                        lambda x: x.__class__ is Event)
    errors = op.merge(f"{step_id}_errors", src.errors, checked.falses)
    return EventsIn(events=checked.trues, errors=errors, channels=src.channels)


def _cached(compute: Callable[[], int]) -> Callable[[], int]:
    """`compute()` once, on first call."""
    memo: list[int] = []

    def get() -> int:
        if not memo:
            memo.append(compute())
        return memo[0]

    return get


def _as_json(item: Any) -> str:
    if isinstance(item, str):
        return item
    if hasattr(item, "to_json"):
        return item.to_json()
    return compact_json.dumps(item)


def write_json(
    step_id: str,
    up: Stream[Any],
    cfg: IOConfig,
    *,
    path: Optional[str],
    topic: str,
    key_of: Optional[Callable[[Any], Optional[str]]] = None,
) -> None:
    """Write items as JSON lines to `path` if set, else to Kafka `topic`
    keyed by `key_of(item)`."""
    if path:
        lines = op.map(f"{step_id}_encode", up, lambda item: ("", _as_json(item)))
        op.output(step_id, lines, FileSink(Path(path)))
        return

    def to_message(item: Any) -> KafkaSinkMessage[Optional[bytes], bytes]:
        key = key_of(item) if key_of else None
        return KafkaSinkMessage(None if key is None else key.encode(), _as_json(item).encode())

    messages = op.map(f"{step_id}_encode", up, to_message)
    op.output(step_id, messages, CheckedKafkaSink(cfg.brokers, topic))


def write_output(step_id: str, up: Stream[Any], cfg: IOConfig, key_of: Optional[Callable[[Any], Optional[str]]] = None) -> None:
    """Results to `OUTPUT_PATH` or `OUTPUT_TOPIC`."""
    write_json(step_id, up, cfg, path=cfg.output_path, topic=cfg.output_topic, key_of=key_of)


def write_late(step_id: str, late: Stream[Event], cfg: IOConfig) -> None:
    """Late events, as event JSON, to `LATE_OUTPUT_PATH` or `LATE_TOPIC`."""
    write_json(
        step_id, late, cfg, path=cfg.late_output_path, topic=cfg.late_topic,
        key_of=lambda e: e.user_id,
    )


def _count_dead_letter(letter: DeadLetter) -> DeadLetter:
    metrics.DEAD_LETTERS.labels(letter.error_class).inc()
    return letter


def write_dead_letters(step_id: str, errors: Stream[DeadLetter], cfg: IOConfig) -> None:
    """Dead letters to `ERROR_OUTPUT_PATH` (JSON) or `DLQ_TOPIC` (original
    key and value bytes, provenance and reason in headers)."""
    errors = op.map(f"{step_id}_count", errors, _count_dead_letter)
    if cfg.error_output_path:
        write_json(step_id, errors, cfg, path=cfg.error_output_path, topic=cfg.dlq_topic)
        return
    messages = op.map(
        f"{step_id}_encode",
        errors,
        lambda d: KafkaSinkMessage(d.key, d.value, headers=d.headers()),
    )
    op.output(step_id, messages, CheckedKafkaSink(cfg.brokers, cfg.dlq_topic))
