"""Fuzzing every deserializer: arbitrary bytes, arbitrary JSON, and corrupted
valid payloads never raise out of the record decoder; each failure is a dead
letter with a documented error class, the original bytes and provenance."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Callable

from hypothesis import given
from hypothesis import strategies as st

from eventio.avro import AvroDeserializer, AvroError, AvroSerializer, registry_client, user_event_schema
from eventio.deadletter import DeadLetter
from eventio.decoding import InvalidJsonError, parse_json, record_decoder
from eventio.event import Event, EventError, MAX_TIMESTAMP, MIN_TIMESTAMP
from eventio.kafka_config import wire_size
from eventio.upcasting import upcast

CLIENT = registry_client("mock://test-decoding-fuzz")
SERIALIZERS = {v: AvroSerializer(CLIENT, user_event_schema(v)) for v in (1, 2, 3)}
SCHEMA_IDS = {v: s.schema_id(f"fuzz-v{v}") for v, s in SERIALIZERS.items()}
DESERIALIZER = AvroDeserializer(CLIENT)

JSON_ERRORS = {"NullValueError", "OversizeMessageError", "InvalidJsonError", "EventError", "UnsupportedSchemaVersionError"}
AVRO_ERRORS = {"NullValueError", "OversizeMessageError", "WireFormatError", "UnknownSchemaError",
               "UnsupportedSchemaError", "AvroDecodeError", "EventError"}
ERRORS = {"json": JSON_ERRORS, "avro": AVRO_ERRORS}


def check_decodes_or_dead_letters(value: bytes, fmt: str, max_bytes: int = 1 << 20) -> Event | DeadLetter:
    """The fuzz oracle: a result, never an exception; a dead letter carries
    the input unchanged (or, when it had to be cut to fit one record of
    `max_bytes`, its first bytes with the original size and SHA-256), its
    provenance and a documented class."""
    result = record_decoder(fmt, DESERIALIZER, max_bytes)(value, b"key", "fuzz", 3, 99)  # type: ignore[arg-type]
    if isinstance(result, DeadLetter):
        assert (result.source, result.partition, result.offset) == ("fuzz", 3, 99)
        if result.cut:
            assert result.value is not None and value.startswith(result.value) and b"key".startswith(result.key or b"")
            assert (result.original_size, result.original_sha256) == (len(value), hashlib.sha256(value).hexdigest())
            assert wire_size(result.key, result.value, result.headers()) <= max_bytes
        else:
            assert (result.key, result.value) == (b"key", value)
        assert result.error_class in ERRORS[fmt], (result.error_class, result.message)
        assert result.message
    else:
        assert isinstance(result, Event)
        assert result.channel == "fuzz:3"
    return result


@given(st.binary(max_size=300), st.sampled_from(["json", "avro"]))
def test_arbitrary_bytes(value, fmt) -> None:
    check_decodes_or_dead_letters(value, fmt)


@given(st.sampled_from(sorted(SCHEMA_IDS)), st.binary(max_size=200))
def test_arbitrary_bodies_behind_a_known_schema_id(version, body) -> None:
    value = b"\x00" + SCHEMA_IDS[version].to_bytes(4, "big") + body
    check_decodes_or_dead_letters(value, "avro")


F32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
TEXT = st.none() | st.text(max_size=8)
RECORDS: dict[int, st.SearchStrategy[dict[str, Any]]] = {
    1: st.fixed_dictionaries({"amount": st.integers(-(2**31), 2**31 - 1)}),
    2: st.fixed_dictionaries({"amount": st.integers(-(2**63), 2**63 - 1)},
                             optional={"category": TEXT, "device": TEXT, "value": st.none() | F32}),
    3: st.fixed_dictionaries({}, optional={"amount": st.none() | st.floats(), "device_id": TEXT,
                                           "value": st.none() | st.floats(), "failed_attempts": st.none() | st.integers(0, 9)}),
}
BASES = st.fixed_dictionaries({
    "event_id": st.text(max_size=8), "user_id": st.text(max_size=8),
    "event_type": st.text(max_size=8), "timestamp": st.integers(MIN_TIMESTAMP, MAX_TIMESTAMP),
})


@st.composite
def valid_avro_records(draw: Callable) -> tuple[dict[str, Any], bytes]:
    version = draw(st.sampled_from([1, 2, 3]))
    record = {**draw(BASES), **draw(RECORDS[version])}
    return record, SERIALIZERS[version].serialize(record, f"fuzz-v{version}")


def valid_avro() -> st.SearchStrategy[bytes]:
    return valid_avro_records().map(lambda case: case[1])


@st.composite
def corrupted(draw: Callable, payloads: st.SearchStrategy[bytes]) -> bytes:
    """A valid payload with a few random flips, truncations, insertions and deletions."""
    data = bytearray(draw(payloads))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        i = draw(st.integers(0, len(data)))
        if op == "flip" and i < len(data):
            data[i] ^= draw(st.integers(1, 255))
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        else:
            del data[i:i + draw(st.integers(1, 4))]
    return bytes(data)


@given(valid_avro_records())
def test_valid_avro_decodes_unless_a_number_is_not_finite(case) -> None:
    record, value = case
    result = check_decodes_or_dead_letters(value, "avro")
    finite = all(record.get(k) is None or math.isfinite(record[k]) for k in ("amount", "value"))
    if finite:
        assert isinstance(result, Event) and result.event_id == record["event_id"]
    else:
        assert isinstance(result, DeadLetter) and result.error_class == "EventError"


@given(corrupted(valid_avro()))
def test_corrupted_avro(value) -> None:
    check_decodes_or_dead_letters(value, "avro")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10,
)
EVENT_KEYS = ["event_id", "user_id", "event_type", "timestamp", "amount", "value", "category", "device",
              "device_id", "failed_attempts", "schema_version", "region"]
EVENTISH = st.dictionaries(st.sampled_from(EVENT_KEYS), JSON_VALUES | st.integers(0, 4), max_size=len(EVENT_KEYS))


def as_json(value: Any) -> bytes:
    return json.dumps(value).encode()


@given(JSON_VALUES | EVENTISH)
def test_arbitrary_json_values(value) -> None:
    check_decodes_or_dead_letters(as_json(value), "json")


@given(corrupted(EVENTISH.map(as_json)))
def test_corrupted_json(value) -> None:
    check_decodes_or_dead_letters(value, "json")


@given(st.binary(max_size=1300) | st.builds(lambda n: b"{" * n, st.integers(900, 1300)), st.integers(1000, 1200))
def test_the_size_limit_applies_before_decoding(value, limit) -> None:
    result = check_decodes_or_dead_letters(value, "json", max_bytes=limit)
    if len(value) > limit:
        assert isinstance(result, DeadLetter) and result.error_class == "OversizeMessageError"


# The deserializers themselves raise only their documented errors.


@given(st.binary(max_size=100) | corrupted(valid_avro()))
def test_avro_deserializer_raises_only_avro_errors(value) -> None:
    try:
        DESERIALIZER.deserialize(value)
    except AvroError:
        pass


@given(st.binary(max_size=100) | corrupted(EVENTISH.map(as_json)))
def test_json_parser_raises_only_invalid_json(value) -> None:
    try:
        parse_json(value)
    except InvalidJsonError:
        pass


@given(JSON_VALUES | EVENTISH)
def test_upcasting_and_event_model_raise_only_event_errors(value) -> None:
    try:
        Event.from_dict(upcast(value))
    except EventError:
        pass
