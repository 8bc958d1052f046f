"""One decode entry point for flows: record bytes to an `Event` or a `DeadLetter`.

A decoder (`record_decoder`) never raises on bad input: null or oversize values, invalid
UTF-8 or JSON, unknown JSON schema versions, wrong magic bytes, unknown
schema ids, truncated or corrupt Avro, type errors and missing required
fields all become a dead letter keeping the original key and value bytes,
their provenance, the error class and the reason; a value too large for one
Kafka record of `max_bytes` is cut, with its size and SHA-256
(`DeadLetter.fit`).

The one exception is `RegistryUnavailableError` (backpressure policy): a
registry that stays unreachable after the bounded retries is not bad input,
so the worker crashes and recovery replays the records once it is back,
instead of dead-lettering every valid record during the outage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Optional, Union

import msgspec

from eventio import strict_json
from eventio.deadletter import DeadLetter
from eventio.event import Event, EventError
from eventio.kafka_config import DEFAULT_MAX_MESSAGE_BYTES
from eventio.settings import TEXT, FlowSettings, Setting, SettingsError, choice, integer
from eventio.strict_json import InvalidJsonError
from eventio.upcasting import upcast

if TYPE_CHECKING:  # the registry client and Avro code load only for Avro formats
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from eventio.avro import AvroDeserializer, AvroSchema, AvroSerializer, Retry

MAX_MESSAGE_BYTES = DEFAULT_MAX_MESSAGE_BYTES
ValueFormat = Literal["json", "avro", "auto"]
Decoded = Union[Event, DeadLetter]
Decoder = Callable[..., Decoded]
"""`decode(value, key, source, partition, offset, channel=None)`, such as a `RecordDecoder`."""

__all__ = ["InvalidJsonError", "MAX_MESSAGE_BYTES", "SerdeConfig", "parse_json", "read_json",
           "record_decoder"]


class NullValueError(EventError):
    """A record without a value (a tombstone)."""


class OversizeMessageError(EventError):
    """A value larger than the configured limit."""


parse_json = strict_json.parse
_typed = msgspec.json.Decoder(Event).decode
_TypedRefusal = msgspec.DecodeError


def read_json(value: bytes) -> Event:
    """The event in a JSON value, upcast to the current version. The typed
    decoder builds it in C when the record holds only current fields of the
    right types; anything else (unknown fields, ISO timestamps, an older
    version, bad input) takes the general path, which gives the same event
    or says why there is none."""
    try:
        return _typed(value)
    except _TypedRefusal:
        return Event.from_dict(upcast(parse_json(value)))


class RecordDecoder:
    """Record bytes to an `Event` or a `DeadLetter`; see `record_decoder`."""

    def __init__(self, read: Callable[[bytes], Event], unavailable: Any, max_bytes: int, typed_first: bool) -> None:
        self._read = read
        self._unavailable = unavailable
        self._max_bytes = max_bytes
        self._typed_first = typed_first

    def __call__(self, value: Optional[bytes], key: Optional[bytes], source: str, partition: Optional[int],
                 offset: Optional[int], channel: Optional[str] = None) -> Decoded:
        """The event in `value`, its `channel` set (by default
        `"{source}:{partition}"` for a partitioned source), or a dead letter
        saying why there is none, with the record's provenance."""
        try:
            if value is None:
                raise NullValueError("record has no value (tombstone)")
            if len(value) > self._max_bytes:
                raise OversizeMessageError(f"value of {len(value)} bytes exceeds the {self._max_bytes}-byte limit")
            event = self._read(value)
        except self._unavailable:
            raise
        except Exception as ex:  # noqa: BLE001 - bad input of any kind becomes a dead letter
            return DeadLetter.of(ex, source=source, value=value, key=key, partition=partition,
                                 offset=offset).fit(self._max_bytes)
        if channel is not None:
            event.channel = channel
        elif partition is not None:
            event.channel = f"{source}:{partition}"
        return event

    def lines(self, lines: list[bytes], path: str, first: int) -> list[Decoded]:
        """The lines of file `path`, the first one number `first`, each
        decoded as by `decode(line, None, path, None, number, path)`. JSON
        lines are tried with the typed decoder here, without a call per line
        (a trailing `\\r` is JSON whitespace to it); the rest, and any line
        it refuses, take the general path with the `\\r` cut off."""
        out: list[Decoded] = []
        append = out.append
        typed = _typed if self._typed_first else None
        limit = self._max_bytes
        for number, line in enumerate(lines, first):
            if typed is not None and len(line) <= limit:
                try:
                    event = typed(line)
                except _TypedRefusal:
                    pass
                else:
                    event.channel = path
                    append(event)
                    continue
            append(self(line[:-1] if line[-1:] == b"\r" else line, None, path, None, number, path))
        return out


def record_decoder(
    fmt: ValueFormat = "json",
    deserializer: Optional[AvroDeserializer] = None,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> RecordDecoder:
    """`decode(value, key, source, partition, offset, channel=None)`: the
    event in `value` or a dead letter saying why there is none (see
    `RecordDecoder`). It raises only `RegistryUnavailableError`. The format is checked
    and the reader chosen here, once, rather than per record: this runs for
    every input event. `ValueError` for a bad `fmt` or an Avro format
    without a deserializer."""
    read: Callable[[bytes], Event]
    unavailable: Any = ()  # the exception that is not bad input: none for JSON
    if fmt == "json":
        read = read_json
    elif fmt not in ("avro", "auto"):
        raise ValueError(f"fmt must be 'json', 'avro' or 'auto', got {fmt!r}")
    elif deserializer is None:
        raise ValueError(f"fmt={fmt!r} needs a deserializer")
    else:
        from eventio.avro import RegistryUnavailableError

        unavailable = RegistryUnavailableError
        deserialize = deserializer.deserialize
        if fmt == "avro":

            def read(value: bytes) -> Event:
                return Event.from_dict(deserialize(value))

        else:

            def read(value: bytes) -> Event:
                # A topic migrating between formats: Confluent framing starts
                # with magic byte 0, which no JSON document does.
                return Event.from_dict(deserialize(value)) if value and value[0] == 0 else read_json(value)

    return RecordDecoder(read, unavailable, max_bytes, typed_first=fmt == "json")


SUBJECT_STRATEGIES = ("topic", "record", "topic_record")
"""`eventio.avro.SubjectStrategy` values, named here so JSON flows need not load Avro."""
COMPATIBILITY_LEVELS = ("NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL",
                        "FULL_TRANSITIVE")
"""`eventio.avro.Compatibility` values."""

SERDE_SETTINGS: tuple[Setting, ...] = (
    Setting("VALUE_FORMAT", choice("json", "avro", "auto"), "json",
            "`json` (upcast from any event version), `avro` (Confluent wire format) or `auto` (per record: Avro "
            "if it starts with magic byte 0, else JSON; for topics migrating between formats)"),
    Setting("SCHEMA_REGISTRY_URL", TEXT, None, "the Schema Registry for `avro` and `auto` (`mock://<scope>`: in memory, for tests)",
            optional=True),
    Setting("SCHEMA_SUBJECT_STRATEGY", choice(*SUBJECT_STRATEGIES), "topic", "`topic`, `record` or `topic_record`: the subject name strategy"),
    Setting("SCHEMA_COMPATIBILITY", choice(*COMPATIBILITY_LEVELS), "BACKWARD",
            "checked before a producer registers a new schema"),
    Setting("SCHEMA_REGISTRY_RETRY_ATTEMPTS", integer(1), 5, "attempts of a registry call while it is unreachable (bounded exponential backoff)"),
    Setting("SCHEMA_REGISTRY_RETRY_BASE_MS", integer(0, unit="milliseconds"), 100,
            "the first backoff between those attempts (it doubles each time)"),
)
"""The variables of `SerdeConfig`."""


@dataclass(frozen=True)
class SerdeConfig:
    """Value format and schema registry settings (`SERDE_SETTINGS`)."""

    value_format: ValueFormat = "json"
    schema_registry_url: Optional[str] = None
    subject_strategy: str = "topic"
    compatibility: str = "BACKWARD"
    registry_retry_attempts: int = 5
    registry_retry_base_ms: int = 100

    def __post_init__(self) -> None:
        if self.value_format in ("avro", "auto") and not self.schema_registry_url:
            raise SettingsError([f"VALUE_FORMAT={self.value_format} needs SCHEMA_REGISTRY_URL"])

    @classmethod
    def from_settings(cls, values: Mapping[str, Any]) -> "SerdeConfig":
        """The configuration of resolved `SERDE_SETTINGS`."""
        return cls(values["value_format"], values["schema_registry_url"], values["schema_subject_strategy"],
                   values["schema_compatibility"], values["schema_registry_retry_attempts"],
                   values["schema_registry_retry_base_ms"])

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "SerdeConfig":
        """The settings from `env` (default `os.environ`) alone."""
        return cls.from_settings(FlowSettings("serde", SERDE_SETTINGS).resolve(env=env))

    def retry(self, sleep: Callable[[float], None] = time.sleep) -> Retry:
        from eventio.avro import Retry

        return Retry(self.registry_retry_attempts, self.registry_retry_base_ms / 1000, sleep=sleep)

    def client(self) -> SchemaRegistryClient:
        if not self.schema_registry_url:
            raise ValueError("no SCHEMA_REGISTRY_URL configured")
        from eventio.avro import registry_client

        return registry_client(self.schema_registry_url)

    def decoder(
        self,
        *,
        max_bytes: int = MAX_MESSAGE_BYTES,
        client: Optional[SchemaRegistryClient] = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> RecordDecoder:
        """`record_decoder` for these settings: call it as
        `decode(value, key, source, partition, offset, channel=None)`."""
        deserializer = None
        if self.value_format in ("avro", "auto"):
            from eventio.avro import AvroDeserializer

            deserializer = AvroDeserializer(client or self.client(), retry=self.retry(sleep))
        return record_decoder(self.value_format, deserializer, max_bytes)

    def serializer(
        self, schema: Optional[AvroSchema] = None, *, client: Optional[SchemaRegistryClient] = None
    ) -> AvroSerializer:
        """A producer-side serializer registering `schema` (default: the current
        user event schema) with this strategy and compatibility level."""
        from eventio.avro import AvroSerializer, Compatibility, SubjectStrategy

        return AvroSerializer(
            client or self.client(),
            schema,
            strategy=SubjectStrategy(self.subject_strategy),
            compatibility=Compatibility(self.compatibility),
            retry=self.retry(),
        )
