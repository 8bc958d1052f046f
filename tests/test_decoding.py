"""The decode entry point: events or dead letters with provenance, the dead
letter hook, configuration, the backpressure policy, and JSON and Avro
agreeing on what every schema version means."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import uuid
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventio.avro import (
    AvroDeserializer,
    AvroSerializer,
    Compatibility,
    RegistryUnavailableError,
    Retry,
    SubjectStrategy,
    registry_client,
    user_event_schema,
)
from eventio.deadletter import DeadLetter
from eventio.decoding import MAX_MESSAGE_BYTES, SerdeConfig, record_decoder
from eventio.event import Event
from eventio.kafka_config import wire_size

BASE = {"event_id": "e1", "user_id": "u1", "event_type": "purchase", "timestamp": 1_704_067_200_000}


def json_bytes(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode()


@pytest.fixture
def client() -> Any:
    return registry_client(f"mock://test-decoding-{uuid.uuid4()}")


def decode_json(value: bytes | None, **kw: Any) -> Event | DeadLetter:
    return record_decoder("json", **kw)(value, b"k", "events", 2, 41)


def test_json_event_decodes_with_its_partition_channel() -> None:
    event = decode_json(json_bytes({**BASE, "amount": 9.5}))
    assert isinstance(event, Event) and event.amount == 9.5
    assert event.channel == "events:2"
    file_event = record_decoder()(json_bytes(BASE), None, "in.jsonl", None, 3)
    assert isinstance(file_event, Event) and file_event.channel is None


@pytest.mark.parametrize(
    "value, error_class, reason",
    [
        (None, "NullValueError", "no value"),
        (b'{"a": "\xff\xfe"}', "InvalidJsonError", "not UTF-8"),
        (b'{"event_id": ', "InvalidJsonError", "invalid JSON"),
        (b'{"amount": NaN}', "InvalidJsonError", "NaN is not valid JSON"),
        (b"[1, 2]", "EventError", "JSON object"),
        (json_bytes({k: v for k, v in BASE.items() if k != "user_id"}), "EventError", "'user_id'"),
        (json_bytes({**BASE, "user_id": 7}), "EventError", "must be a string"),
        (json_bytes({**BASE, "amount": "ten"}), "EventError", "finite number"),
        (json_bytes({**BASE, "schema_version": 9}), "UnsupportedSchemaVersionError", "not supported"),
        (b"[" * 100_000, "InvalidJsonError", "recursion"),
        (b"9" * 5000, "InvalidJsonError", "digits"),
    ],
    ids=["null", "utf8", "truncated-json", "nan", "array", "missing-field", "type", "amount",
         "future-version", "deep-nesting", "huge-int"],
)
def test_bad_json_becomes_a_dead_letter(value, error_class, reason) -> None:
    dead = decode_json(value, max_bytes=MAX_MESSAGE_BYTES)
    assert isinstance(dead, DeadLetter)
    assert (dead.error_class, dead.source, dead.partition, dead.offset, dead.key, dead.value) == (
        error_class, "events", 2, 41, b"k", value)
    assert reason in dead.message


@pytest.mark.parametrize("size", [2001, 1_040_000, 10_000_000])
def test_an_oversize_value_becomes_a_dead_letter_cut_to_fit_with_its_size_and_hash(size: int) -> None:
    """A dead letter must fit one Kafka record of the same limit: the value
    keeps its first bytes and says how large it was and what its SHA-256 is."""
    limit = 2000 if size == 2001 else MAX_MESSAGE_BYTES
    value = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    dead = decode_json(value, max_bytes=limit)
    assert isinstance(dead, DeadLetter) and dead.error_class == "OversizeMessageError"
    assert f"{size} bytes exceeds the {limit}-byte limit" in dead.message
    assert (dead.source, dead.partition, dead.offset, dead.key) == ("events", 2, 41, b"k")
    assert dead.value is not None and value.startswith(dead.value) and 0 < len(dead.value) < limit
    assert dead.original_size == size and dead.original_sha256 == hashlib.sha256(value).hexdigest()
    assert wire_size(dead.key, dead.value, dead.headers()) <= limit
    headers = dict(dead.headers())
    assert headers["dlq.original.size"] == str(size).encode()
    assert headers["dlq.original.sha256"] == hashlib.sha256(value).hexdigest().encode()
    as_json = dead.to_dict()
    assert (as_json["original_size"], as_json["original_sha256"]) == (size, hashlib.sha256(value).hexdigest())
    assert base64.b64decode(as_json["payload_b64"]) == dead.value


def test_bad_avro_becomes_a_dead_letter(client) -> None:
    good = AvroSerializer(client).serialize({**BASE}, "events")
    nan = AvroSerializer(client).serialize({**BASE, "amount": float("nan")}, "events")
    d = AvroDeserializer(client)
    cases = {
        b"\x01" + good[1:]: "WireFormatError",
        good[:3]: "WireFormatError",
        json_bytes(BASE): "WireFormatError",
        b"\x00" + struct.pack(">I", 4242) + good[5:]: "UnknownSchemaError",
        good[:-2]: "AvroDecodeError",
        nan: "EventError",
    }
    for value, error_class in cases.items():
        dead = record_decoder("avro", d)(value, None, "events", 0, 1)
        assert isinstance(dead, DeadLetter) and dead.error_class == error_class and dead.value == value


def test_mixed_batch_decodes_every_valid_record_and_dead_letters_the_rest(client) -> None:
    v1, v3 = (AvroSerializer(client, user_event_schema(v)) for v in (1, 3))
    avro_ok = [
        (v1.serialize({**BASE, "event_id": "a1", "amount": 5}, "avro-in"), "a1"),
        (v3.serialize({**BASE, "event_id": "a3", "value": 0.25}, "avro-in"), "a3"),
    ]
    json_ok = [
        (json_bytes({"schema_version": 2, **BASE, "event_id": "j2", "amount": 1, "device": "tv"}), "j2"),
        (json_bytes({**BASE, "event_id": "j3", "region": "emea"}), "j3"),
    ]
    garbage = [b"\x00", b"\xde\xad\xbe\xef" * 4, b"", b"{{{"]
    unknown_ids = [b"\x00\x00\x00\x10\x00" + avro_ok[0][0][5:], b"\x00\xff\xff\xff\xff\x02"]
    truncated = [avro_ok[0][0][:-1], avro_ok[1][0][:7]]
    batch: list[tuple[str, bytes, str | None]] = (
        [("avro-in", v, eid) for v, eid in avro_ok]
        + [("json-in", v, eid) for v, eid in json_ok]
        + [("avro-in", v, None) for v in garbage[:2] + unknown_ids + truncated]
        + [("json-in", v, None) for v in garbage[2:]]
    )
    d = AvroDeserializer(client)
    decoders = {"avro-in": record_decoder("avro", d), "json-in": record_decoder("json")}
    results = [
        decoders[src](value, f"key{i}".encode(), src, i % 3, 100 + i) for i, (src, value, _) in enumerate(batch)
    ]
    for i, ((src, value, event_id), result) in enumerate(zip(batch, results)):
        if event_id is not None:
            assert isinstance(result, Event) and result.event_id == event_id
            assert result.channel == f"{src}:{i % 3}"
        else:
            assert isinstance(result, DeadLetter)
            assert (result.source, result.partition, result.offset) == (src, i % 3, 100 + i)
            assert (result.key, result.value) == (f"key{i}".encode(), value)
    invalid = sum(1 for _, _, eid in batch if eid is None)
    reasons = Counter(r.error_class for r in results if isinstance(r, DeadLetter))
    assert sum(reasons.values()) == invalid
    assert reasons == Counter(
        {"WireFormatError": 2, "UnknownSchemaError": 2, "AvroDecodeError": 2, "InvalidJsonError": 2})


def test_misuse_is_a_programming_error_not_a_dead_letter() -> None:
    with pytest.raises(ValueError, match="fmt must be"):
        record_decoder("xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a deserializer"):
        record_decoder("avro")


def test_unreachable_registry_applies_backpressure_not_dead_letters() -> None:
    class Down:
        calls = 0

        def get_schema(self, schema_id: int) -> None:
            Down.calls += 1
            raise ConnectionError("connection refused")

    slept: list[float] = []
    decode = SerdeConfig("avro", "mock://unused", registry_retry_attempts=3, registry_retry_base_ms=50).decoder(
        client=Down(), sleep=slept.append)  # type: ignore[arg-type]
    with pytest.raises(RegistryUnavailableError, match="after 3 attempts"):
        decode(b"\x00\x00\x00\x00\x01\x02", None, source="events", partition=0, offset=5)
    assert Down.calls == 3 and slept == [0.05, 0.1]


# --- configuration -----------------------------------------------------------


def test_config_defaults_and_environment() -> None:
    assert SerdeConfig.from_env({}) == SerdeConfig()
    cfg = SerdeConfig.from_env({
        "VALUE_FORMAT": "AVRO", "SCHEMA_REGISTRY_URL": "http://registry:8081",
        "SCHEMA_SUBJECT_STRATEGY": "topic-record", "SCHEMA_COMPATIBILITY": "full_transitive",
        "SCHEMA_REGISTRY_RETRY_ATTEMPTS": "7", "SCHEMA_REGISTRY_RETRY_BASE_MS": "20", "UNRELATED": "x",
    })
    assert cfg == SerdeConfig("avro", "http://registry:8081", SubjectStrategy.TOPIC_RECORD,
                              Compatibility.FULL_TRANSITIVE, 7, 20)
    assert cfg.retry() == Retry(7, 0.02)
    assert SerdeConfig.from_env({"VALUE_FORMAT": " ", "SCHEMA_COMPATIBILITY": ""}) == SerdeConfig()


@pytest.mark.parametrize(
    "env, message",
    [
        ({"VALUE_FORMAT": "protobuf"}, "VALUE_FORMAT='protobuf': expected one of json, avro, auto"),
        ({"VALUE_FORMAT": "avro"}, "VALUE_FORMAT=avro needs SCHEMA_REGISTRY_URL"),
        ({"SCHEMA_SUBJECT_STRATEGY": "by-magic"},
         "SCHEMA_SUBJECT_STRATEGY='by-magic': expected one of topic, record, topic_record"),
        ({"SCHEMA_COMPATIBILITY": "SIDEWAYS"}, "SCHEMA_COMPATIBILITY='SIDEWAYS': expected one of NONE, BACKWARD"),
        ({"SCHEMA_REGISTRY_RETRY_ATTEMPTS": "many"}, "SCHEMA_REGISTRY_RETRY_ATTEMPTS='many': expected a positive"),
        ({"SCHEMA_REGISTRY_RETRY_ATTEMPTS": "0"}, "SCHEMA_REGISTRY_RETRY_ATTEMPTS='0': expected a positive integer"),
    ],
)
def test_bad_configuration_fails_at_build_time(env, message) -> None:
    with pytest.raises(ValueError, match=message):
        SerdeConfig.from_env(env)


def test_configured_producer_and_decoder_share_a_mock_registry_scope() -> None:
    cfg = SerdeConfig.from_env({"VALUE_FORMAT": "avro", "SCHEMA_REGISTRY_URL": f"mock://cfg-{uuid.uuid4()}",
                                "SCHEMA_SUBJECT_STRATEGY": "record"})
    data = cfg.serializer().serialize(Event.from_dict({**BASE, "amount": 4.5, "device_id": "tv"}), "events")
    event = cfg.decoder()(data, b"u1", source="events", partition=1, offset=7)
    assert event == Event.from_dict({**BASE, "amount": 4.5, "device_id": "tv"})
    assert cfg.client().get_subjects() == ["com.flinkish.events.UserEvent"]
    json_decode = SerdeConfig().decoder(max_bytes=10)
    assert isinstance(json_decode(json_bytes(BASE), None, source="s", partition=0, offset=0), DeadLetter)


# --- JSON and Avro mean the same thing -----------------------------------------

F32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
TEXT = st.none() | st.text(max_size=5)
VERSION_FIELDS = {
    1: st.fixed_dictionaries({"amount": st.integers(-(2**31), 2**31 - 1)}),
    2: st.fixed_dictionaries({"amount": st.integers(-(2**53), 2**53)},
                             optional={"category": TEXT, "region": TEXT, "device": TEXT, "value": st.none() | F32}),
    3: st.fixed_dictionaries({}, optional={
        "amount": st.none() | st.floats(allow_nan=False, allow_infinity=False), "device_id": TEXT,
        "value": st.none() | st.floats(allow_nan=False, allow_infinity=False), "tenant_id": TEXT,
        "failed_attempts": st.none() | st.integers(0, 2**31 - 1)}),
}


@given(st.sampled_from([1, 2, 3]).flatmap(lambda v: st.tuples(st.just(v), VERSION_FIELDS[v])))
def test_json_upcasting_and_avro_resolution_agree(case) -> None:
    version, fields = case
    record = {**BASE, **fields}
    client = registry_client("mock://test-decoding-agree")
    avro = AvroSerializer(client, user_event_schema(version)).serialize(record, f"events-v{version}")
    from_avro = record_decoder("avro", AvroDeserializer(client))(avro, None, "a", 0, 0)
    from_json = decode_json(json_bytes({"schema_version": version, **record}))
    assert isinstance(from_avro, Event) and from_avro == from_json
