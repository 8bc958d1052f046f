"""Avro serde: v1/v2/v3 round trips read as v3, registration with
compatibility checks, subject naming, wire-format errors, registry retries,
and the compatibility checker against fastavro actually reading data."""

from __future__ import annotations

import copy
import io
import itertools
import struct
import uuid
from typing import Any, Callable

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from eventio.event import MAX_TIMESTAMP, MIN_TIMESTAMP
from hypothesis import example, given, settings
from hypothesis import strategies as st

from eventio.avro import (
    AvroDecodeError,
    AvroDeserializer,
    AvroSerializer,
    Compatibility,
    RegistryUnavailableError,
    Retry,
    SchemaIncompatibleError,
    SubjectStrategy,
    UnknownSchemaError,
    UnsupportedSchemaError,
    WireFormatError,
    check_can_read,
    check_compatibility,
    register_schema,
    registry_client,
    user_event_schema,
)

V1, V2, V3 = (user_event_schema(v) for v in (1, 2, 3))
RECORD_NAME = "com.flinkish.events.UserEvent"


@pytest.fixture
def client() -> SchemaRegistryClient:
    return registry_client(f"mock://test-avro-{uuid.uuid4()}")


def float32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def with_field(schema: dict[str, Any], field: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(schema)
    out["fields"].append(field)
    return out


def with_type(schema: dict[str, Any], name: str, type_: Any) -> dict[str, Any]:
    out = copy.deepcopy(schema)
    for f in out["fields"]:
        if f["name"] == name:
            f["type"] = type_
    return out


# --- round trips -------------------------------------------------------------

BASE = {"event_id": "e1", "user_id": "u1", "event_type": "purchase", "timestamp": 1_704_067_200_123}
V3_DEFAULTS = {
    "amount": None, "category": None, "region": None, "device_id": None, "value": None,
    "tenant_id": None, "location": None, "user_type": None, "failed_attempts": None,
}


@pytest.mark.parametrize(
    "schema, written, expected",
    [
        pytest.param(V1, {**BASE, "amount": 7}, {**BASE, **V3_DEFAULTS, "amount": 7.0}, id="v1-int-to-double-defaults"),
        pytest.param(
            V2,
            {**BASE, "amount": 2**40, "category": "books", "device": "ios", "value": 1.5},
            {**BASE, **V3_DEFAULTS, "amount": float(2**40), "category": "books", "device_id": "ios", "value": 1.5},
            id="v2-long-alias-float-branch",
        ),
        pytest.param(
            V3,
            {**BASE, "amount": 12.34, "value": 0.1, "device_id": "web", "failed_attempts": 3},
            {**BASE, **V3_DEFAULTS, "amount": 12.34, "value": 0.1, "device_id": "web", "failed_attempts": 3},
            id="v3-double-branch",
        ),
    ],
)
def test_each_writer_version_reads_as_v3(client, schema, written, expected) -> None:
    data = AvroSerializer(client, schema).serialize(written, "events")
    assert data[0] == 0
    assert AvroDeserializer(client).deserialize(data) == expected


def test_v1_amount_is_promoted_int_to_long_by_a_v2_reader(client) -> None:
    data = AvroSerializer(client, V1).serialize({**BASE, "amount": 7}, "events")
    record = AvroDeserializer(client, V2).deserialize(data)
    assert record["amount"] == 7 and isinstance(record["amount"], int)
    assert record["device"] is None


def test_string_bytes_promotion_and_widened_union(client) -> None:
    writer = {"type": "record", "name": "R", "fields": [
        {"name": "s", "type": "string"}, {"name": "v", "type": ["null", "float"]}]}
    reader = {"type": "record", "name": "R", "fields": [
        {"name": "s", "type": "bytes"}, {"name": "v", "type": ["null", "float", "double", "string"]}]}
    data = AvroSerializer(client, writer).serialize({"s": "héllo", "v": 2.5}, "t")
    assert AvroDeserializer(client, reader).deserialize(data) == {"s": "héllo".encode(), "v": 2.5}


VERSION_RECORDS = {
    1: st.fixed_dictionaries({"amount": st.integers(-(2**31), 2**31 - 1)}),
    2: st.fixed_dictionaries(
        {"amount": st.integers(-(2**53), 2**53)},
        optional={
            "category": st.none() | st.text(max_size=5),
            "region": st.none() | st.text(max_size=5),
            "device": st.none() | st.text(max_size=5),
            "value": st.none() | st.floats(width=32, allow_nan=False, allow_infinity=False),
        },
    ),
    3: st.fixed_dictionaries(
        {},
        optional={
            "amount": st.none() | st.floats(allow_nan=False, allow_infinity=False),
            "device_id": st.none() | st.text(max_size=5),
            "value": st.none() | st.floats(allow_nan=False, allow_infinity=False),
            "tenant_id": st.none() | st.text(max_size=5),
            "failed_attempts": st.none() | st.integers(0, 2**31 - 1),
        },
    ),
}
BASES = st.fixed_dictionaries({
    "event_id": st.text(max_size=8), "user_id": st.text(max_size=8),
    "event_type": st.text(max_size=8), "timestamp": st.integers(MIN_TIMESTAMP, MAX_TIMESTAMP),
})


def expected_v3(version: int, record: dict[str, Any]) -> dict[str, Any]:
    """Reference: what a v3 reader must see, written directly from the
    schema history (not from the resolution code)."""
    out = {**V3_DEFAULTS, **{k: record[k] for k in BASE}}
    for name in ("category", "region", "tenant_id", "failed_attempts"):
        out[name] = record.get(name)
    out["device_id"] = record.get("device" if version == 2 else "device_id")
    amount = record.get("amount")
    out["amount"] = None if amount is None else float(amount)
    value = record.get("value")
    out["value"] = value if value is None else float(value)
    return out


@given(st.sampled_from([1, 2, 3]).flatmap(lambda v: st.tuples(st.just(v), BASES, VERSION_RECORDS[v])))
def test_any_record_of_any_version_reads_as_v3(case) -> None:
    version, base, fields = case
    client = registry_client("mock://test-avro-roundtrip")
    record = {**base, **fields}
    data = AvroSerializer(client, user_event_schema(version)).serialize(record, f"events-v{version}")
    assert AvroDeserializer(client).deserialize(data) == expected_v3(version, record)


# --- registration and compatibility -------------------------------------------


def test_v1_v2_v3_register_in_turn_under_backward(client) -> None:
    ids = [AvroSerializer(client, s).schema_id("events") for s in (V1, V2, V3)]
    assert len(set(ids)) == 3
    assert sorted(client.get_versions("events-value")) == [1, 2, 3]
    assert AvroSerializer(client, V2).schema_id("events") == ids[1]  # already registered: same id
    assert sorted(client.get_versions("events-value")) == [1, 2, 3]


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda s: with_field(s, {"name": "session_id", "type": "string"}), "session_id"),
        (lambda s: with_type(s, "timestamp", "int"), "timestamp"),
        (lambda s: with_type(s, "category", ["null", "int"]), "category"),
    ],
    ids=["required-field-added", "long-narrowed-to-int", "union-branch-changed"],
)
def test_incompatible_change_is_refused_at_registration(client, change, field) -> None:
    AvroSerializer(client, V3).schema_id("events")
    with pytest.raises(SchemaIncompatibleError) as info:
        AvroSerializer(client, change(V3)).serialize({**BASE}, "events")
    assert info.value.field == field
    assert f"field {field!r}" in str(info.value)
    assert "'events-value' is not BACKWARD compatible" in str(info.value)
    assert client.get_versions("events-value") == [1]


def test_forward_refuses_v2_after_v1_naming_amount(client) -> None:
    AvroSerializer(client, V1, compatibility=Compatibility.FORWARD).schema_id("events")
    with pytest.raises(SchemaIncompatibleError, match="version 1 cannot read data written with the new schema") as info:
        AvroSerializer(client, V2, compatibility=Compatibility.FORWARD).schema_id("events")
    assert info.value.field == "amount"


def test_full_needs_both_directions(client) -> None:
    AvroSerializer(client, V3, compatibility=Compatibility.FULL).schema_id("events")
    optional = with_field(V3, {"name": "session_id", "type": ["null", "string"], "default": None})
    AvroSerializer(client, optional, compatibility=Compatibility.FULL).schema_id("events")
    required = with_field(optional, {"name": "channel", "type": "string"})
    with pytest.raises(SchemaIncompatibleError) as info:
        AvroSerializer(client, required, compatibility=Compatibility.FULL).schema_id("events")
    assert info.value.field == "channel"


def test_transitive_checks_every_earlier_version() -> None:
    a_int = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}
    no_a = {"type": "record", "name": "R", "fields": []}
    a_str = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "string", "default": ""}]}
    check_compatibility(a_str, [a_int, no_a], Compatibility.BACKWARD)
    with pytest.raises(SchemaIncompatibleError, match="version 1") as info:
        check_compatibility(a_str, [a_int, no_a], Compatibility.BACKWARD_TRANSITIVE)
    assert info.value.field == "a"
    check_compatibility(a_int, [no_a, a_str], Compatibility.NONE)


def test_registering_an_incompatible_schema_under_none_is_allowed(client) -> None:
    AvroSerializer(client, V3, compatibility=Compatibility.NONE).schema_id("events")
    AvroSerializer(client, with_type(V3, "timestamp", "string"), compatibility=Compatibility.NONE).schema_id("events")
    assert sorted(client.get_versions("events-value")) == [1, 2]


@pytest.mark.parametrize(
    "strategy, subject",
    [
        (SubjectStrategy.TOPIC, "events-value"),
        (SubjectStrategy.RECORD, RECORD_NAME),
        (SubjectStrategy.TOPIC_RECORD, f"events-{RECORD_NAME}"),
    ],
)
def test_subject_naming_strategies(client, strategy, subject) -> None:
    data = AvroSerializer(client, V3, strategy=strategy).serialize({**BASE}, "events")
    assert client.get_subjects() == [subject]
    assert struct.unpack(">I", data[1:5])[0] == client.get_latest_version(subject).schema_id


def test_record_strategies_need_a_named_schema(client) -> None:
    with pytest.raises(ValueError, match="named"):
        AvroSerializer(client, "string", strategy=SubjectStrategy.RECORD)
    assert AvroSerializer(client, "string").serialize("x", "t")[5:] == b"\x02x"


def test_registry_client_is_shared_per_url_and_mock_scopes_are_separate() -> None:
    assert registry_client("mock://scope-a") is registry_client("mock://scope-a")
    assert registry_client("mock://scope-a") is not registry_client("mock://scope-b")


# --- wire-format errors --------------------------------------------------------


def test_wire_format_errors(client) -> None:
    good = AvroSerializer(client, V3).serialize({**BASE}, "events")
    d = AvroDeserializer(client)
    with pytest.raises(WireFormatError, match="shorter"):
        d.deserialize(good[:4])
    with pytest.raises(WireFormatError, match="magic byte 1"):
        d.deserialize(b"\x01" + good[1:])
    with pytest.raises(UnknownSchemaError, match="schema id 99"):
        d.deserialize(b"\x00" + struct.pack(">I", 99) + good[5:])
    with pytest.raises(AvroDecodeError, match="does not decode"):
        d.deserialize(good[:-3])
    with pytest.raises(AvroDecodeError, match="1 trailing bytes"):
        d.deserialize(good + b"\x00")
    json_id = client.register_schema("other", Schema('{"type":"object"}', "JSON"))
    with pytest.raises(UnsupportedSchemaError, match="JSON, not AVRO"):
        d.deserialize(b"\x00" + struct.pack(">I", json_id) + good[5:])


def test_invalid_utf8_string_is_a_decode_error(client) -> None:
    data = AvroSerializer(client, V1).serialize({**BASE, "event_id": "ab", "amount": 1}, "events")
    corrupt = data.replace(b"\x04ab", b"\x04\xff\xfe", 1)
    with pytest.raises(AvroDecodeError):
        AvroDeserializer(client).deserialize(corrupt)


# --- registry retries ------------------------------------------------------------


class FlakyClient:
    """A registry whose `get_schema` fails `failures` times with `error`."""

    def __init__(self, inner: SchemaRegistryClient, failures: int, error: Exception) -> None:
        self.inner = inner
        self.failures = failures
        self.error = error
        self.calls = 0

    def get_schema(self, schema_id: int) -> Schema:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.inner.get_schema(schema_id)


def test_retry_delays_are_exponential_and_capped() -> None:
    assert Retry(6, 0.1, 0.5).delays() == [0.1, 0.2, 0.4, 0.5, 0.5]
    with pytest.raises(ValueError):
        Retry(0)


@pytest.mark.parametrize(
    "error", [ConnectionError("refused"), SchemaRegistryError(503, 50301, "unavailable")], ids=["network", "5xx"]
)
def test_transient_registry_failures_are_retried_with_backoff(client, error) -> None:
    data = AvroSerializer(client, V3).serialize({**BASE}, "events")
    slept: list[float] = []
    flaky = FlakyClient(client, failures=3, error=error)
    d = AvroDeserializer(flaky, retry=Retry(5, 0.1, 1.0, sleep=slept.append))  # type: ignore[arg-type]
    assert d.deserialize(data)["event_id"] == "e1"
    assert slept == [0.1, 0.2, 0.4]
    d.deserialize(data)
    assert flaky.calls == 4  # the writer schema is cached after the first success


def test_registry_down_after_all_attempts_raises_unavailable(client) -> None:
    data = AvroSerializer(client, V3).serialize({**BASE}, "events")
    slept: list[float] = []
    flaky = FlakyClient(client, failures=10, error=TimeoutError("timed out"))
    d = AvroDeserializer(flaky, retry=Retry(4, 0.05, sleep=slept.append))  # type: ignore[arg-type]
    with pytest.raises(RegistryUnavailableError, match="after 4 attempts.*TimeoutError"):
        d.deserialize(data)
    assert flaky.calls == 4 and slept == [0.05, 0.1, 0.2]


def test_definitive_answers_are_not_retried(client) -> None:
    slept: list[float] = []
    flaky = FlakyClient(client, failures=10, error=SchemaRegistryError(401, 40101, "unauthorized"))
    d = AvroDeserializer(flaky, retry=Retry(4, 0.05, sleep=slept.append))  # type: ignore[arg-type]
    with pytest.raises(RegistryUnavailableError, match="refused"):
        d.deserialize(b"\x00\x00\x00\x00\x07")
    missing = AvroDeserializer(client, retry=Retry(4, 0.05, sleep=slept.append))
    with pytest.raises(UnknownSchemaError):
        missing.deserialize(b"\x00\x00\x00\x00\x07")
    assert slept == [] and flaky.calls == 1


def test_unknown_ids_are_remembered(client) -> None:
    counting = FlakyClient(client, failures=0, error=Exception())
    d = AvroDeserializer(counting)  # type: ignore[arg-type]
    for _ in range(3):
        with pytest.raises(UnknownSchemaError):
            d.deserialize(b"\x00\x00\x00\x00\x09")
    assert counting.calls == 1


def test_registration_retries_then_gives_up(client) -> None:
    class Down:
        def lookup_schema(self, *args: Any) -> None:
            raise ConnectionError("no route to host")

    slept: list[float] = []
    with pytest.raises(RegistryUnavailableError, match="looking up 'events-value'"):
        register_schema(Down(), "events-value", V3, retry=Retry(3, 0.01, sleep=slept.append))  # type: ignore[arg-type]
    assert slept == [0.01, 0.02]


# --- the compatibility checker against fastavro reading witnesses ----------------

PRIMITIVE_WITNESSES: dict[str, list[Any]] = {
    "int": [1], "long": [2**40], "float": [1.5], "double": [0.1], "string": ["s"],
    "bytes": [b"x"], "null": [None], "boolean": [True],
}
PRIMITIVES = list(PRIMITIVE_WITNESSES)  # hypothesis favours the first: the promotable ones
NEIGHBOURS = {  # promotable either way, so mutations hit the promotion rules
    "int": ["long", "float", "double", "boolean"], "long": ["int", "float", "double"],
    "float": ["int", "long", "double"], "double": ["int", "long", "float"],
    "string": ["bytes", "null"], "bytes": ["string", "null"], "null": ["string"], "boolean": ["int"],
}
SYMBOLS = ["A", "B", "C"]
FIELD_NAMES = ["a", "b", "c", "d", "e", "f"]


def python_kind(t: Any) -> str:
    """The Python type fastavro picks a union branch by; one per union."""
    if isinstance(t, str):
        return {"null": "none", "boolean": "bool", "bytes": "bytes", "string": "str"}.get(t, "number")
    return {"enum": "str", "fixed": "bytes", "record": "dict", "map": "dict", "array": "list"}[t["type"]]


@st.composite
def avro_types(draw: Callable, names: Any, depth: int = 0, in_union: bool = False) -> Any:
    choices = ["primitive"] * 4 + ["enum", "enum", "fixed"]
    if depth < 2:
        choices += ["array", "map", "record"] + ([] if in_union else ["union", "union"])
    kind = draw(st.sampled_from(choices))
    if kind == "primitive":
        return draw(st.sampled_from(PRIMITIVES))
    if kind == "enum":
        t = {"type": "enum", "name": f"E{next(names)}", "symbols": draw(st.lists(st.sampled_from(SYMBOLS), min_size=1, unique=True))}
        if draw(st.booleans()):
            t["default"] = t["symbols"][0]
        return t
    if kind == "fixed":
        return {"type": "fixed", "name": f"F{next(names)}", "size": draw(st.integers(1, 2))}
    if kind == "array":
        return {"type": "array", "items": draw(avro_types(names, depth + 1))}
    if kind == "map":
        return {"type": "map", "values": draw(avro_types(names, depth + 1))}
    if kind == "record":
        return draw(records(names, depth + 1))
    branches = draw(st.lists(avro_types(names, depth + 1, in_union=True), min_size=1, max_size=4))
    union, kinds = [], set()
    for b in branches:
        if python_kind(b) not in kinds:
            kinds.add(python_kind(b))
            union.append(b)
    return union


@st.composite
def records(draw: Callable, names: Any, depth: int = 0) -> dict[str, Any]:
    fields = []
    for name in draw(st.lists(st.sampled_from(FIELD_NAMES[:4]), min_size=1, max_size=4, unique=True)):
        f = {"name": name, "type": draw(avro_types(names, depth))}
        if draw(st.booleans()):
            f["default"] = default_for(f["type"])
        fields.append(f)
    return {"type": "record", "name": f"R{next(names)}", "fields": fields}


def default_for(t: Any) -> Any:
    if isinstance(t, list):
        return default_for(t[0])
    if isinstance(t, str):
        return {"null": None, "boolean": False, "int": 0, "long": 0, "float": 0.5,
                "double": 0.5, "bytes": "d", "string": "d"}[t]
    return {
        "enum": lambda: t["symbols"][0], "fixed": lambda: "\u0000" * t["size"],
        "array": lambda: [], "map": lambda: {},
        "record": lambda: {f["name"]: default_for(f["type"]) for f in t["fields"]},
    }[t["type"]]()


@st.composite
def mutated(draw: Callable, t: Any, names: Any, depth: int = 0) -> Any:
    """A plausible next version of `t`: some changes are compatible, some not."""
    t = copy.deepcopy(t)
    if isinstance(t, str):
        move = draw(st.sampled_from(["neighbour", "keep", "neighbour", "wrap", "neighbour", "new"]))
    else:
        move = draw(st.sampled_from(["inner", "keep", "inner", "primitive", "inner", "wrap", "new"]))
    if move == "keep":
        return t
    if move == "neighbour":
        return draw(st.sampled_from(NEIGHBOURS[t]))
    if move == "primitive":
        return draw(st.sampled_from(PRIMITIVES))
    if move == "new":
        return draw(avro_types(names, depth))
    if move == "wrap" and not isinstance(t, list):
        other = draw(avro_types(names, 2, in_union=True))
        return [t] if python_kind(other) == python_kind(t) else draw(st.permutations([t, other]))
    if isinstance(t, list):
        action = draw(st.sampled_from(["drop", "add", "mutate"]))
        if action == "drop" and len(t) > 1:
            del t[draw(st.integers(0, len(t) - 1))]
        elif action == "add":
            other = draw(avro_types(names, 2, in_union=True))
            if python_kind(other) not in {python_kind(b) for b in t}:
                t.append(other)
        else:
            i = draw(st.integers(0, len(t) - 1))
            new = draw(mutated(t[i], names, depth + 1))
            if not isinstance(new, list) and python_kind(new) not in {python_kind(b) for j, b in enumerate(t) if j != i}:
                t[i] = new
        return t
    if t["type"] == "enum":
        symbol = draw(st.sampled_from(SYMBOLS))
        if symbol not in t["symbols"]:
            t["symbols"].append(symbol)
        elif len(t["symbols"]) > 1:
            t["symbols"].remove(symbol)
        t.pop("default", None)
        if draw(st.booleans()):
            t["default"] = t["symbols"][0]
    elif t["type"] == "fixed":
        t["size"] = draw(st.integers(1, 2))
    elif t["type"] in ("array", "map"):
        key = "items" if t["type"] == "array" else "values"
        t[key] = draw(mutated(t[key], names, depth + 1))
    elif t["type"] == "record":
        mutate_record(draw, t, names, depth)
    return t


def mutate_record(draw: Callable, record: dict[str, Any], names: Any, depth: int) -> None:
    if draw(st.integers(0, 3)) == 3:
        old = record["name"]
        record["name"] = f"R{next(names)}"
        if draw(st.booleans()):
            record["aliases"] = [old]
    mutate_fields(draw, record, names, depth)


def mutate_fields(draw: Callable, record: dict[str, Any], names: Any, depth: int) -> None:
    writer_names = {f["name"] for f in record["fields"]}
    free = [n for n in FIELD_NAMES if n not in writer_names]
    fields = []
    for f in record["fields"]:
        action = draw(st.sampled_from(["mutate", "keep", "drop", "mutate", "rename"]))
        if action == "drop":
            continue
        if action == "mutate":
            f["type"] = draw(mutated(f["type"], names, depth + 1))
            f.pop("default", None)
        elif action == "rename" and free:
            old = f["name"]
            f = {**f, "name": free.pop()}
            if draw(st.booleans()):
                f["aliases"] = [old]
        if "default" not in f and draw(st.booleans()):
            f["default"] = default_for(f["type"])
        fields.append(f)
    if free and draw(st.booleans()):
        f = {"name": free.pop(), "type": draw(avro_types(names, depth + 1))}
        if draw(st.booleans()):
            f["default"] = default_for(f["type"])
        fields.append(f)
    record["fields"] = fields


def branch_name(t: Any) -> str:
    """How fastavro's tuple notation names union branch `t`."""
    if isinstance(t, str):
        return t
    return t["name"] if t["type"] in ("record", "enum", "fixed") else t["type"]


def witnesses(t: Any) -> list[Any]:
    """Values of type `t` covering every union branch and enum symbol. Union
    values name their branch: fastavro otherwise writes the first branch a
    value fits, so bytes in `[array<int>, bytes]` would go out as an array."""
    if isinstance(t, list):
        return [(branch_name(b), w) for b in t for w in witnesses(b)]
    if isinstance(t, str):
        return PRIMITIVE_WITNESSES[t]
    kind = t["type"]
    if kind == "enum":
        return list(t["symbols"])
    if kind == "fixed":
        return [b"\x00" * t["size"]]
    if kind == "array":
        return [[]] + [[w] for w in witnesses(t["items"])]
    if kind == "map":
        return [{}] + [{"k": w} for w in witnesses(t["values"])]
    per_field = {f["name"]: witnesses(f["type"]) for f in t["fields"]}
    base = {name: ws[0] for name, ws in per_field.items()}
    return [base] + [{**base, name: w} for name, ws in per_field.items() for w in ws[1:]]


def fastavro_reads_all(reader: Any, writer: Any) -> bool:
    """Reference: fastavro reads every witness written with `writer`."""
    w, r = parse_schema(writer), parse_schema(reader)
    for value in witnesses(writer):
        buf = io.BytesIO()
        schemaless_writer(buf, w, value)
        try:
            schemaless_reader(io.BytesIO(buf.getvalue()), w, r)
        except Exception:
            return False
    return True


def schema_pairs() -> st.SearchStrategy[tuple[Any, Any]]:
    @st.composite
    def pair(draw: Callable) -> tuple[Any, Any]:
        names = itertools.count()
        writer = draw(records(names))
        reader = copy.deepcopy(writer)
        mutate_record(draw, reader, names, 0)
        return (reader, writer) if draw(st.booleans()) else (writer, reader)

    return pair()


_BYTES_OR_ARRAY = {"type": "record", "name": "R0", "fields": [
    {"name": "b", "type": [{"type": "array", "items": "int"}, "bytes"]}]}
_ARRAY = {"type": "record", "name": "R0", "fields": [{"name": "b", "type": {"type": "array", "items": "int"}}]}


@settings(max_examples=400)
@given(schema_pairs())
@example((_ARRAY, _BYTES_OR_ARRAY))  # bytes in the writer's union are not an array to the reader
def test_compatibility_check_agrees_with_fastavro_reading_witnesses(pair) -> None:
    reader, writer = pair
    assert verdict(reader, writer) == fastavro_reads_all(reader, writer)


def verdict(reader: Any, writer: Any) -> bool:
    try:
        check_can_read(reader, writer)
        return True
    except SchemaIncompatibleError:
        return False


def unions(options: list[str]) -> list[Any]:
    return [list(c) for n in range(1, len(options) + 1) for c in itertools.combinations(options, n)]


def test_every_primitive_and_union_pair_agrees_with_fastavro() -> None:
    writers = PRIMITIVES + unions(["null", "int", "string", "boolean"])
    readers = PRIMITIVES + unions(["null", "long", "double", "bytes", "boolean"])
    for w in writers:
        for r in readers:
            record_w = {"type": "record", "name": "R", "fields": [{"name": "a", "type": w}]}
            record_r = {"type": "record", "name": "R", "fields": [{"name": "a", "type": r}]}
            assert verdict(record_r, record_w) == fastavro_reads_all(record_r, record_w), (r, w)


def test_every_enum_pair_agrees_with_fastavro() -> None:
    for ws, rs in itertools.product(unions(SYMBOLS), repeat=2):
        w = {"type": "enum", "name": "E", "symbols": ws}
        for r in ({"type": "enum", "name": "E", "symbols": rs}, {"type": "enum", "name": "E", "symbols": rs, "default": rs[0]}):
            assert verdict(r, w) == fastavro_reads_all(r, w), (r, w)


@given(schema_pairs())
def test_every_schema_reads_its_own_data(pair) -> None:
    for schema in pair:
        check_can_read(schema, schema)


def test_checker_names_nested_fields() -> None:
    inner = {"type": "record", "name": "Addr", "fields": [{"name": "zip", "type": "string"}]}
    writer = {"type": "record", "name": "R", "fields": [{"name": "addrs", "type": {"type": "array", "items": inner}}]}
    reader = copy.deepcopy(writer)
    reader["fields"][0]["type"]["items"]["fields"][0]["type"] = "int"
    with pytest.raises(SchemaIncompatibleError, match=r"field 'addrs\[\]\.zip': writer type string cannot be read as int"):
        check_can_read(reader, writer)
    enum_w = {"type": "enum", "name": "E", "symbols": ["A", "B"]}
    with pytest.raises(SchemaIncompatibleError, match=r"symbols \['B'\]"):
        check_can_read({"type": "enum", "name": "E", "symbols": ["A"]}, enum_w)
    check_can_read({"type": "enum", "name": "E", "symbols": ["A"], "default": "A"}, enum_w)


def test_checker_handles_recursive_types() -> None:
    node = {"type": "record", "name": "Node", "fields": [
        {"name": "v", "type": "int"}, {"name": "next", "type": ["null", "Node"]}]}
    wider = copy.deepcopy(node)
    wider["fields"][0]["type"] = "long"
    check_can_read(wider, node)
    with pytest.raises(SchemaIncompatibleError, match="'v'"):
        check_can_read(node, wider)
