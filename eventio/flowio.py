"""The one way every flow reads events and writes results.

Input is a JSON-lines file (`INPUT_PATH`, a bounded stream) or Kafka topics
(`INPUT_TOPIC`). Every record is decoded into an `Event` or, if it cannot be,
a `DeadLetter` that keeps the original bytes, where they came from and why:
bad input never stops a flow and is never dropped. Results, late events and
dead letters go where their `Destination` says (`eventio.config`): JSON-lines
files, or Kafka topics through the checked sink (`eventio.kafka_sink`). A
record too large for one Kafka record of `MAX_MESSAGE_BYTES` goes to the
dead-letter output instead, cut to fit.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Iterable, NamedTuple, Optional, TypeVar, Union

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from eventio import metrics, progress, strict_json
from eventio.bytewax_run import stop_run
from eventio.cluster import OutputLayout
from eventio.config import Destination, IOConfig
from eventio.deadletter import DeadLetter
from eventio.decoding import Decoder, SerdeConfig
from eventio.event import Event
from eventio.kafka_config import RECORD_OVERHEAD, KafkaConfigError
from eventio.kafka_health import KafkaUnavailableError
from eventio.kafka_sink import CheckedKafkaSink, KafkaRecord
from eventio.kafka_source import DecodingKafkaSource, adopted_partitions
from eventio.partition_discovery import TopicSelection, topic_of
from eventio.partitioning import PartitionCounts, Partitioner, checked
from eventio.settings import SettingsError
from recovery.directories import stored_states
from recovery.fixed_settings import check_parts, recovery_directory

Decoded = Union[Event, DeadLetter]
T = TypeVar("T")


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


LinesDecoder = Callable[[list[bytes], str, int], list[T]]
"""`decode(lines, path, first_line_number)`: one item per line, such as
`RecordDecoder.lines`."""

CHUNK_BYTES = 1 << 20
"""How much of a file one read takes."""


class _JsonLinesPartition(StatefulSourcePartition[T, tuple[int, int]], Generic[T]):
    """One file, read `CHUNK_BYTES` at a time and emitted `batch_size` lines
    per batch, each line decoded; resumes from `(byte offset, line number)`
    of the first line not yet emitted."""

    def __init__(self, path: str, decode: LinesDecoder[T], batch_size: int, resume: Optional[tuple[int, int]]) -> None:
        self._path = path
        self._decode = decode
        self._batch_size = batch_size
        self._file = open(path, "rb", buffering=0)
        self._offset, self._line = (0, 0) if resume is None else resume
        self._file.seek(self._offset)
        self._lines: list[bytes] = []
        """Whole lines read and not yet emitted, from `_next` on."""
        self._next = 0
        self._rest = b""
        """The start of a line whose end the last read did not reach."""
        self._unterminated = False
        """Whether the file's last line, in `_lines`, has no newline."""

    def _read(self) -> bool:
        """Read on until there are whole lines to emit; False at the end."""
        while True:
            chunk = self._file.read(CHUNK_BYTES)
            if not chunk:
                if not self._rest:
                    return False
                chunk = b"\n"  # a last line without its newline
                self._unterminated = True
            data = self._rest + chunk if self._rest else chunk
            end = data.rfind(b"\n") + 1
            self._rest = data[end:]
            if end:
                self._lines = data[:end].split(b"\n")
                self._lines.pop()
                self._next = 0
                return True

    def next_batch(self) -> list[T]:
        if self._next == len(self._lines) and not self._read():
            raise StopIteration()
        start = self._next
        lines = self._lines[start : start + self._batch_size]
        self._next = start + len(lines)
        self._offset += sum(map(len, lines)) + len(lines)
        if self._unterminated and self._next == len(self._lines):
            self._offset -= 1  # the newline that is not in the file
        first = self._line + 1
        self._line += len(lines)
        return self._decode(lines, self._path, first)

    def snapshot(self) -> tuple[int, int]:
        return (self._offset, self._line)

    def close(self) -> None:
        self._file.close()


class JsonLinesSource(FixedPartitionedSource[T, tuple[int, int]]):
    """One partition per file, its lines through `decode` in batches of
    `batch_size` lines (each line without its newline); bounded. The state is the one the earlier
    line-by-line source kept, so its recovery stores resume."""

    def __init__(self, paths: Iterable[str], decode: LinesDecoder[T], batch_size: int = 1000) -> None:
        self.paths = list(paths)
        for path in self.paths:
            if not Path(path).is_file():
                raise FileNotFoundError(f"input file {path!r} does not exist")
        self._decode = decode
        self._batch_size = batch_size

    def list_parts(self) -> list[str]:
        return self.paths

    def build_part(
        self, step_id: str, for_part: str, resume_state: Optional[tuple[int, int]]
    ) -> _JsonLinesPartition[T]:
        return _JsonLinesPartition(for_part, self._decode, self._batch_size, resume_state)


CONSUMER_CONFIG = {"fetch.wait.max.ms": "50", "queued.min.messages": "1000000"}
"""Tuned consumer defaults of every Kafka input (the user's Kafka properties
win; offsets are owned by Bytewax recovery and only committed transactional
output is read, whatever they say). librdkafka keeps fetching until a
partition has a million records queued (default 100,000; the 64 MB
`queued.max.messages.kbytes` cap still holds): with the default, half the
reads of session analytics on one partition found nothing queued and the
flow stood idle a quarter of the time (500k events 5.0 -> 4.1 s)."""


def kafka_source(cfg: IOConfig, topics: list[str], decode: Decoder, topic_var: str, *,
                 pattern: Optional[str] = None, stored: Optional[dict[str, Any]] = None) -> DecodingKafkaSource:
    """The decoding Kafka source of `topics` (or of the topics matching
    `pattern`) with the flow's settings; `stored` holds its recovery states
    by source partition, if the run resumes."""
    stored = stored or {}
    return DecodingKafkaSource(cfg.kafka, topics, decode, tail=not cfg.stop_at_end,
                               start=cfg.start_position, config=CONSUMER_CONFIG, batch_size=cfg.kafka_batch_size,
                               commit_group=cfg.consumer_group, topic_var=topic_var, record_time=cfg.record_time,
                               pattern=pattern, discovery_interval_ms=cfg.partition_discovery_interval_ms,
                               adopted=adopted_partitions(stored), resumed=bool(stored))


def _stored_states(step_id: str) -> dict[str, Any]:
    """The recovery states of step `step_id` (its full id) by partition, in
    the store of the running `bytewax.run -r DIR` (none without one)."""
    directory = recovery_directory()
    if directory is None:
        return {}
    return {key: pickle.loads(blob) for key, blob in stored_states(directory, step_id).items()}


def read_events(
    flow: Dataflow,
    step_id: str,
    cfg: IOConfig,
    *,
    path: Optional[str] = None,
    topics: Optional[list[str]] = None,
    serde: Optional[SerdeConfig] = None,
    path_var: str = "INPUT_PATH",
    topic_var: str = "INPUT_TOPIC",
) -> EventsIn:
    """Events from `path` (default `cfg.input_path`) or else Kafka `topics`
    (default `cfg.input_topics`; `path_var` and `topic_var` name their
    variables in messages), split from the dead letters. A recovery store
    written with other files or topics is refused (`check_parts`). Values are JSON (upcast to the
    current event version) or, with `VALUE_FORMAT=avro`, Confluent-framed
    Avro resolved to the current schema (`eventio/decoding.py`)."""
    path = path if path is not None else (cfg.input_path if topics is None else None)
    decode = (serde or cfg.serde).decoder(max_bytes=cfg.kafka.max_message_bytes)
    if path:
        if cfg.record_time:
            raise SettingsError([f"TIMESTAMP_SOURCE=kafka takes event time from Kafka records, but this input is "
                                 f"the file {path!r} ({path_var}): set TIMESTAMP_SOURCE=field or read from Kafka"])
        paths = [p.strip() for p in path.split(",") if p.strip()]
        missing = [p for p in paths if not Path(p).is_file()]
        if missing:
            raise SettingsError([f"{path_var}={path!r}: no such file: {', '.join(missing)}"])
        check_parts(f"{flow.flow_id}.{step_id}_file", paths, path_var)
        decoded = op.input(f"{step_id}_file", flow, JsonLinesSource(paths, decode.lines))
        channels: Callable[[], int] = lambda: len(paths)
    else:
        full_id = f"{flow.flow_id}.{step_id}_kafka"
        pattern = cfg.input_topic_pattern if topics is None else None
        topics = topics or cfg.input_topics
        stored = _stored_states(full_id)
        if pattern is None:
            check_parts(full_id, topics, topic_var, part_of=topic_of)
        else:
            selection = TopicSelection(pattern=pattern)
            topic_var = "INPUT_TOPIC_PATTERN"
            check_parts(full_id, [topic_of(key) for key in stored if topic_of(key) in selection], topic_var,
                        part_of=topic_of)
        source = kafka_source(cfg, topics, decode, topic_var, pattern=pattern, stored=stored)
        decoded = op.input(f"{step_id}_kafka", flow, source)
        channels = _cached(source.partition_count)
    events, errors = split_dead_letters(step_id, decoded, counted_as=progress.EVENTS)
    return EventsIn(events=events, errors=errors, channels=channels)


def split_dead_letters(step_id: str, up: Stream[Union[T, DeadLetter]], *,
                       counted_as: Optional[str] = None) -> tuple[Stream[T], Stream[DeadLetter]]:
    """`up` split into its other items and its dead letters, each item
    counted in the run's progress as `counted_as` if given. Two batch
    filters cost Bytewax one call per batch each, where `op.branch` calls
    its predicate per item."""
    items = _not_dead_letters if counted_as is None else progress.counted(counted_as, _not_dead_letters)
    return (op.flat_map_batch(f"{step_id}_items", up, items),
            op.flat_map_batch(f"{step_id}_dead_letters", up, _dead_letters))


def _not_dead_letters(batch: list[Any]) -> list[Any]:
    return [item for item in batch if item.__class__ is not DeadLetter]


def _dead_letters(batch: list[Any]) -> list[DeadLetter]:
    return [item for item in batch if item.__class__ is DeadLetter]


class MissingFieldError(ValueError):
    """An event lacks a field this flow requires."""


def require(step_id: str, src: EventsIn, *names: str) -> EventsIn:
    """Events that have every field in `names`; the others become dead
    letters (the event's JSON, its channel, and which field is missing)."""

    def check(event: Event) -> Decoded:
        for name in names:
            if getattr(event, name) is None:
                ex = MissingFieldError(f"event {event.event_id!r} has no {name!r}, which this flow requires")
                return DeadLetter.of(ex, source=event.channel or "?", value=event.to_json_bytes(),
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


KeyOf = Callable[[Any], Optional[str]]


class Encoded(NamedTuple, Generic[T]):
    """One batch of a writer's items, encoded: what its sink writes (a blob
    of JSON lines, or Kafka records) and the dead letters of items that
    strict JSON cannot hold. A batch travels as one item, so Bytewax charges
    one hop per batch rather than one per record."""

    records: T
    failed: list[DeadLetter]


def encode_item(item: Any) -> bytes:
    """An output item as strict JSON (`UnencodableError` if it cannot be):
    events and dead letters by their own JSON form, anything else as is."""
    cls = item.__class__
    if cls is dict:
        return strict_json.encode(item)
    if cls is Event or cls is DeadLetter:
        return item.to_json_bytes()
    if cls is str:
        return item.encode("utf-8")
    return strict_json.encode(item)


class UnencodableResultError(ValueError):
    """A result strict JSON cannot hold (e.g. a sum that overflowed to infinity)."""


def _unencodable(step_id: str, item: Any, ex: Exception, key_of: Optional[KeyOf]) -> DeadLetter:
    """The dead letter of an output item that could not be encoded: the item
    as readable text (non-finite numbers spelled out), its key, the reason."""
    key = None
    if key_of is not None:
        try:
            key = key_of(item)
        except Exception:  # noqa: BLE001 - the key is a courtesy; the reason matters
            key = None
    text = strict_json.loose(item.to_dict() if hasattr(item, "to_dict") else item)
    return DeadLetter.of(UnencodableResultError(f"output {step_id!r}: {ex}"), source=f"output:{step_id}",
                         value=text.encode("utf-8", "backslashreplace"),
                         key=None if key is None else key.encode("utf-8", "backslashreplace"))


def _file_encoder(step_id: str, key_of: Optional[KeyOf], counted_as: str,
                  route: str) -> Callable[[list[Any]], list[tuple[str, Encoded[bytes]]]]:
    add = progress.TALLY.add

    def encode_batch(items: list[Any]) -> list[tuple[str, Encoded[bytes]]]:
        lines: list[bytes] = []
        failed: list[DeadLetter] = []
        for item in items:
            try:
                lines.append(encode_item(item))
            except strict_json.UnencodableError as ex:
                failed.append(_unencodable(step_id, item, ex, key_of))
        add(counted_as, len(lines))
        lines.append(b"")
        return [(route, Encoded(b"\n".join(lines) if len(lines) > 1 else b"", failed))]

    return encode_batch


class OversizeRecordError(ValueError):
    """An output record larger than one Kafka record of `MAX_MESSAGE_BYTES`."""


def oversize_dead_letter(step_id: str, key: Optional[bytes], value: bytes, limit: int) -> DeadLetter:
    """The dead letter of an output record too large for Kafka, cut to fit."""
    ex = OversizeRecordError(f"output {step_id!r}: a record of {len(value) + len(key or b'')} bytes does not fit "
                             f"in one Kafka record of {limit} bytes (MAX_MESSAGE_BYTES)")
    return DeadLetter.of(ex, source=f"output:{step_id}", value=value, key=key).fit(limit)


Placement = Callable[[Any, Optional[bytes], bytes], Optional[int]]
"""`place(item, key, value)`: the partition of an output record, or None (by key)."""


def placement(partitioner: Partitioner, counts: PartitionCounts, topic: str) -> Placement:
    """`partitioner` for `topic`, whose partition count is asked of the
    cluster on first use (a run without an answer stops); a partition the
    topic does not have is a `PartitionerError`."""

    def place(item: Any, key: Optional[bytes], value: bytes) -> Optional[int]:
        try:
            count = counts(topic)
        except (KafkaUnavailableError, KafkaConfigError) as ex:
            stop_run(ex)
        return checked(partitioner(item, key, value, count), count, topic)

    return place


def _kafka_encoder(step_id: str, key_of: Optional[KeyOf], limit: int, counted_as: str,
                   place: Optional[Placement] = None) -> Callable[[list[Any]], list[Encoded[list[KafkaRecord]]]]:
    room = limit - RECORD_OVERHEAD
    add = progress.TALLY.add

    def encode_batch(items: list[Any]) -> list[Encoded[list[KafkaRecord]]]:
        records: list[KafkaRecord] = []
        failed: list[DeadLetter] = []
        for item in items:
            try:
                value = encode_item(item)
            except strict_json.UnencodableError as ex:
                failed.append(_unencodable(step_id, item, ex, key_of))
                continue
            key = key_of(item) if key_of is not None else None
            raw = None if key is None else key.encode()
            if len(value) > room - (len(raw) if raw else 0):
                failed.append(oversize_dead_letter(step_id, raw, value, limit))
                continue
            records.append((raw, value, None, None if place is None else place(item, raw, value)))
        add(counted_as, len(records))
        return [Encoded(records, failed)]

    return encode_batch


def _failed_of(batch: list[Any]) -> list[DeadLetter]:
    """The dead letters of encoded batches, keyed (file) or not (Kafka)."""
    return [d for item in batch for d in (item[1] if item.__class__ is tuple else item).failed]


def write_json(
    step_id: str,
    up: Stream[Any],
    cfg: IOConfig,
    to: Destination,
    *,
    key_of: Optional[KeyOf] = None,
    partitioner: Optional[Partitioner] = None,
    counted_as: Optional[str] = None,
) -> Stream[DeadLetter]:
    """Write items as JSON lines to the file of `to`, or to its Kafka topic
    keyed by `key_of(item)`, on the partition `partitioner` chooses (default:
    by key; see `eventio.partitioning`), counted in the run's progress as
    `counted_as` (default `step_id`). Returns the dead letters of items that strict
    JSON cannot hold or that are too large for Kafka, for the flow's error
    output; records the broker refuses go to the dead-letter topic
    (`CheckedKafkaSink`)."""
    if to.path:
        route, sink = _file_sink(up, step_id, to)
        encoded: Stream[Any] = op.flat_map_batch(f"{step_id}_encode", up,
                                                 _file_encoder(step_id, key_of, counted_as or step_id, route))
        op.output(step_id, encoded, sink)
    else:
        assert to.topic is not None
        place = None if partitioner is None else placement(partitioner, PartitionCounts(cfg.kafka), to.topic)
        encoded = op.flat_map_batch(f"{step_id}_encode", up,
                                    _kafka_encoder(step_id, key_of, cfg.kafka.max_message_bytes, counted_as or step_id,
                                                   place))
        op.output(step_id, encoded, _kafka_sink(cfg, to))
    return op.flat_map_batch(f"{step_id}_unencodable", encoded, _failed_of)


def _file_sink(up: Stream[Any], step_id: str, to: Destination) -> tuple[str, "JsonLinesSink"]:
    """The key that routes this process's batches to its own file, and the
    sink of the file of `to`: one file, or under `python -m flows run
    --processes` one per part (`OutputLayout`); refused if the recovery
    store was written to others."""
    assert to.path is not None
    layout = OutputLayout.from_env(os.environ)
    paths = [to.path] if layout is None else layout.paths(to.path)
    check_parts(f"{up.flow().flow_id}.{step_id}", paths, to.setting.split(",")[0])
    if layout is None:
        return "0", JsonLinesSink(paths, [0])
    return str(layout.written_to()), JsonLinesSink(paths, layout.local())


def _kafka_sink(cfg: IOConfig, to: Destination) -> CheckedKafkaSink:
    assert to.topic is not None
    return CheckedKafkaSink(cfg.kafka, to.topic, endpoint=to.describe, dead_letter_topic=cfg.dead_letter_topic)


def write_output(step_id: str, up: Stream[Any], cfg: IOConfig, key_of: Optional[KeyOf] = None,
                 partitioner: Optional[Partitioner] = None) -> Stream[DeadLetter]:
    """Results to `OUTPUT_PATH` or `OUTPUT_TOPIC`, placed by `partitioner`
    (default: `OUTPUT_PARTITION_BY`'s, else by key); see `write_json`."""
    return write_json(step_id, up, cfg, cfg.results, key_of=key_of,
                      partitioner=partitioner or cfg.output_partitioner, counted_as=progress.RESULTS)


def write_late(step_id: str, late: Stream[Event], cfg: IOConfig) -> Stream[DeadLetter]:
    """Late events, as event JSON, where `IOConfig.late_output` says."""
    return write_json(step_id, late, cfg, cfg.late_output, key_of=lambda e: e.user_id, counted_as=progress.LATE)


def _dead_letter_encoder(route: Optional[str], limit: int) -> Callable[[list[DeadLetter]], list[Any]]:
    """Count dead letters by class and encode them, each cut to fit one Kafka
    record of `limit` bytes: one JSON line each for a file (which never
    fails, keyed `route`), original key and value bytes with provenance
    headers for Kafka (`route` None)."""
    counters: dict[str, Any] = {}
    add = progress.TALLY.add

    def encode_batch(letters: list[DeadLetter]) -> list[Any]:
        if not letters:
            return []
        add(progress.DEAD_LETTERS, len(letters))
        for letter in letters:
            counter = counters.get(letter.error_class)
            if counter is None:
                counter = counters[letter.error_class] = metrics.DEAD_LETTERS.labels(letter.error_class)
            counter.inc()
        letters = [letter.fit(limit) for letter in letters]
        if route is not None:
            return [(route, Encoded(b"".join(d.to_json_bytes() + b"\n" for d in letters), []))]
        return [Encoded([(d.key, d.value, d.headers(), None) for d in letters], [])]

    return encode_batch


def write_dead_letters(step_id: str, errors: Stream[DeadLetter], cfg: IOConfig, *more: Stream[DeadLetter]) -> None:
    """Dead letters of `errors` and of every stream in `more` (such as what
    the writers could not encode) where `IOConfig.dead_letter_output` says:
    a file (JSON) or a topic (original key and value bytes, provenance and
    reason in headers)."""
    to = cfg.dead_letter_output
    merged = op.merge(f"{step_id}_merge", errors, *more) if more else errors
    route, sink = _file_sink(errors, step_id, to) if to.path else (None, _kafka_sink(cfg, to))
    encoded = op.flat_map_batch(f"{step_id}_encode", merged, _dead_letter_encoder(route, cfg.kafka.max_message_bytes))
    op.output(step_id, encoded, sink)


class _JsonLinesSinkPartition(StatefulSinkPartition[Encoded[bytes], int]):
    """One file of JSON lines, written through a buffer and made durable
    (flushed and fsynced) when a snapshot records its length and at close,
    not per batch. On resume it is cut back to the snapshotted length, so
    whatever the crashed execution wrote after that snapshot is written
    once more, not twice."""

    def __init__(self, path: str, resume: Optional[int]) -> None:
        self._file = open(path, "ab")
        self._file.truncate(0 if resume is None else resume)
        self._file.seek(0 if resume is None else resume)

    def write_batch(self, values: list[Encoded[bytes]]) -> None:
        write = self._file.write
        for value in values:
            if value.records:
                write(value.records)

    def snapshot(self) -> int:
        self._durable()
        return self._file.tell()

    def _durable(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._durable()
        self._file.close()


class JsonLinesSink(FixedPartitionedSink[Encoded[bytes], int]):
    """Encoded batches (`(part, Encoded)` items) appended to the file
    `paths[part]`; a fresh run starts it empty. This process lists the
    files of its `local` parts, so a batch keyed with one of them is written
    here. A file's state is its length, as Bytewax's `FileSink` keeps it, so
    stores written with that sink resume."""

    def __init__(self, paths: list[str], local: list[int]) -> None:
        self._local = [paths[p] for p in local]
        ordered = sorted(paths)
        self._position = [ordered.index(path) for path in paths]
        """Bytewax indexes `part_fn` into the cluster's sorted partitions."""

    def list_parts(self) -> list[str]:
        return self._local

    def part_fn(self, item_key: str) -> int:
        return self._position[int(item_key)]

    def build_part(self, step_id: str, for_part: str, resume_state: Optional[int]) -> _JsonLinesSinkPartition:
        return _JsonLinesSinkPartition(for_part, resume_state)
