"""One decode entry point for flows: record bytes to an `Event` or a `DeadLetter`.

A decoder (`record_decoder`) never raises on bad input: null or oversize values, invalid
UTF-8 or JSON, unknown JSON schema versions, wrong magic bytes, unknown
schema ids, truncated or corrupt Avro, type errors and missing required
fields all become a dead letter keeping the original key and value bytes,
their provenance, the error class and the reason.

The one exception is `RegistryUnavailableError` (backpressure policy): a
registry that stays unreachable after the bounded retries is not bad input,
so the worker crashes and recovery replays the records once it is back,
instead of dead-lettering every valid record during the outage.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Optional, Union

from confluent_kafka.schema_registry import SchemaRegistryClient

from eventio.avro import (
    AvroDeserializer,
    AvroSchema,
    AvroSerializer,
    Compatibility,
    RegistryUnavailableError,
    Retry,
    SubjectStrategy,
    registry_client,
)
from eventio.deadletter import DeadLetter
from eventio.event import Event, EventError
from eventio.upcasting import upcast

MAX_MESSAGE_BYTES = 1_048_576
ValueFormat = Literal["json", "avro", "auto"]
Decoded = Union[Event, DeadLetter]
DeadLetterHook = Callable[[str], None]
Decoder = Callable[[Optional[bytes], Optional[bytes], str, Optional[int], Optional[int]], Decoded]
"""`decode(value, key, source, partition, offset)`, see `record_decoder`."""


class NullValueError(EventError):
    """A record without a value (a tombstone)."""


class OversizeMessageError(EventError):
    """A value larger than the configured limit."""


class InvalidJsonError(EventError):
    """A value that is not UTF-8 JSON."""


def no_dead_letter_hook(reason: str) -> None:
    """The default `on_dead_letter`: count nothing."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_STRICT_JSON = json.JSONDecoder(parse_constant=_reject_constant)
"""One decoder for every value: `json.loads` with options builds a new one per call."""
_raw_decode = _STRICT_JSON.raw_decode


def parse_json(value: bytes) -> Any:
    """Strict UTF-8 JSON (no NaN or Infinity); `InvalidJsonError` if not.
    A document without surrounding whitespace, the usual record, skips
    `JSONDecoder.decode`'s two whitespace scans."""
    try:
        text = (value if value.__class__ is bytes else bytes(value)).decode("utf-8")
    except UnicodeDecodeError as ex:
        raise InvalidJsonError(f"value is not UTF-8: {ex}") from ex
    try:
        try:
            obj, end = _raw_decode(text)
        except ValueError:
            return _STRICT_JSON.decode(text)  # leading whitespace, or the error message
        if end != len(text):
            return _STRICT_JSON.decode(text)  # trailing whitespace, or extra data
        return obj
    except (ValueError, RecursionError) as ex:
        raise InvalidJsonError(f"invalid JSON: {ex}") from ex


def read_json(value: bytes) -> Any:
    """A JSON value upcast to the current event version."""
    return upcast(parse_json(value))


def record_decoder(
    fmt: ValueFormat = "json",
    deserializer: Optional[AvroDeserializer] = None,
    max_bytes: int = MAX_MESSAGE_BYTES,
    on_dead_letter: DeadLetterHook = no_dead_letter_hook,
) -> Decoder:
    """`decode(value, key, source, partition, offset)`: the event in `value`,
    or a dead letter saying why there is none; `on_dead_letter(error_class)`
    is called once per dead letter. It raises only `RegistryUnavailableError`.
    The format is checked and the reader chosen here, once, rather than per
    record: this runs for every input event. `ValueError` for a bad `fmt` or
    an Avro format without a deserializer."""
    read: Callable[[bytes], Any]
    if fmt == "json":
        read = read_json
    elif fmt not in ("avro", "auto"):
        raise ValueError(f"fmt must be 'json', 'avro' or 'auto', got {fmt!r}")
    elif deserializer is None:
        raise ValueError(f"fmt={fmt!r} needs a deserializer")
    elif fmt == "avro":
        read = deserializer.deserialize
    else:
        deserialize = deserializer.deserialize

        def read(value: bytes) -> Any:
            # A topic migrating between formats: Confluent framing starts
            # with magic byte 0, which no JSON document does.
            return deserialize(value) if value and value[0] == 0 else read_json(value)

    def decode(value: Optional[bytes], key: Optional[bytes], source: str, partition: Optional[int],
               offset: Optional[int]) -> Decoded:
        try:
            if value is None:
                raise NullValueError("record has no value (tombstone)")
            if len(value) > max_bytes:
                raise OversizeMessageError(f"value of {len(value)} bytes exceeds the {max_bytes}-byte limit")
            event = Event.from_dict(read(value))
        except RegistryUnavailableError:
            raise
        except Exception as ex:  # noqa: BLE001 - bad input of any kind becomes a dead letter
            dead = DeadLetter.of(ex, source=source, value=value, key=key, partition=partition, offset=offset)
            on_dead_letter(dead.error_class)
            return dead
        if partition is not None:
            event.channel = f"{source}:{partition}"
        return event

    return decode


def decode_record(
    value: Optional[bytes],
    key: Optional[bytes],
    *,
    source: str,
    partition: Optional[int],
    offset: Optional[int],
    fmt: ValueFormat = "json",
    deserializer: Optional[AvroDeserializer] = None,
    max_bytes: int = MAX_MESSAGE_BYTES,
    on_dead_letter: DeadLetterHook = no_dead_letter_hook,
) -> Decoded:
    """One record through `record_decoder(fmt, deserializer, max_bytes,
    on_dead_letter)`; flows build the decoder once instead."""
    return record_decoder(fmt, deserializer, max_bytes, on_dead_letter)(value, key, source, partition, offset)


@dataclass(frozen=True)
class SerdeConfig:
    """Value format and schema registry settings, from the environment:
    `VALUE_FORMAT` (json|avro), `SCHEMA_REGISTRY_URL` (needed for avro;
    `mock://<scope>` for the in-memory registry), `SCHEMA_SUBJECT_STRATEGY`
    (topic|record|topic_record), `SCHEMA_COMPATIBILITY` (BACKWARD, FORWARD,
    FULL, NONE and the `_TRANSITIVE` variants), `SCHEMA_REGISTRY_RETRY_ATTEMPTS`
    and `SCHEMA_REGISTRY_RETRY_BASE_MS` (first backoff delay)."""

    value_format: ValueFormat = "json"
    schema_registry_url: Optional[str] = None
    subject_strategy: SubjectStrategy = SubjectStrategy.TOPIC
    compatibility: Compatibility = Compatibility.BACKWARD
    registry_retry_attempts: int = 5
    registry_retry_base_ms: int = 100

    def __post_init__(self) -> None:
        if self.value_format not in ("json", "avro", "auto"):
            raise ValueError(f"VALUE_FORMAT must be 'json', 'avro' or 'auto', got {self.value_format!r}")
        if self.value_format in ("avro", "auto") and not self.schema_registry_url:
            raise ValueError("VALUE_FORMAT=avro needs SCHEMA_REGISTRY_URL")
        self.retry()  # validates the retry settings

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "SerdeConfig":
        """Settings from `env` (default `os.environ`); unset or empty means default."""
        env = os.environ if env is None else env

        def get(name: str) -> Optional[str]:
            raw = env.get(name)
            return raw.strip() if raw and raw.strip() else None

        values: dict[str, Any] = {}
        if (raw := get("VALUE_FORMAT")) is not None:
            values["value_format"] = raw.lower()
        if (raw := get("SCHEMA_REGISTRY_URL")) is not None:
            values["schema_registry_url"] = raw
        if (raw := get("SCHEMA_SUBJECT_STRATEGY")) is not None:
            values["subject_strategy"] = _choice(SubjectStrategy, raw.lower().replace("-", "_"), "SCHEMA_SUBJECT_STRATEGY")
        if (raw := get("SCHEMA_COMPATIBILITY")) is not None:
            values["compatibility"] = _choice(Compatibility, raw.upper(), "SCHEMA_COMPATIBILITY")
        for name in ("registry_retry_attempts", "registry_retry_base_ms"):
            var = ("SCHEMA_" + name).upper()
            if (raw := get(var)) is not None:
                try:
                    values[name] = int(raw)
                except ValueError:
                    raise ValueError(f"{var} must be an integer, got {raw!r}") from None
        return cls(**values)

    def retry(self, sleep: Callable[[float], None] = time.sleep) -> Retry:
        return Retry(self.registry_retry_attempts, self.registry_retry_base_ms / 1000, sleep=sleep)

    def client(self) -> SchemaRegistryClient:
        if not self.schema_registry_url:
            raise ValueError("no SCHEMA_REGISTRY_URL configured")
        return registry_client(self.schema_registry_url)

    def decoder(
        self,
        *,
        max_bytes: int = MAX_MESSAGE_BYTES,
        on_dead_letter: DeadLetterHook = no_dead_letter_hook,
        client: Optional[SchemaRegistryClient] = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Decoder:
        """`record_decoder` for these settings: call it as
        `decode(value, key, source, partition, offset)`."""
        deserializer = None
        if self.value_format in ("avro", "auto"):
            deserializer = AvroDeserializer(client or self.client(), retry=self.retry(sleep))
        return record_decoder(self.value_format, deserializer, max_bytes, on_dead_letter)

    def serializer(
        self, schema: Optional[AvroSchema] = None, *, client: Optional[SchemaRegistryClient] = None
    ) -> AvroSerializer:
        """A producer-side serializer registering `schema` (default: the current
        user event schema) with this strategy and compatibility level."""
        return AvroSerializer(
            client or self.client(),
            schema,
            strategy=self.subject_strategy,
            compatibility=self.compatibility,
            retry=self.retry(),
        )


def _choice(enum: Any, raw: str, var: str) -> Any:
    try:
        return enum(raw)
    except ValueError:
        options = ", ".join(m.value for m in enum)
        raise ValueError(f"{var} must be one of {options}, got {raw!r}") from None
