"""The JSON decoder (msgspec's typed decoder, then the general path) against
the standard-library reference in `tests/decoding_reference.py`: for any
value, hostile ones included, the same event or the same dead-letter reason."""

from __future__ import annotations

import json
from typing import Any, Callable

from hypothesis import example, given
from hypothesis import strategies as st

from eventio.deadletter import DeadLetter
from eventio.decoding import record_decoder
from eventio.event import Event
from tests.decoding_reference import MAX_DEPTH, reference_decode


def decoded(value: bytes) -> tuple[Any, ...]:
    result = record_decoder()(value, None, "ref", 0, 1)
    if isinstance(result, DeadLetter):
        assert result.value == value
        return ("dead", result.error_class, result.message)
    assert isinstance(result, Event) and result.channel == "ref:0"
    fields = {k: v for k, v in result.to_dict().items() if result.extra is None or k not in result.extra}
    return ("event", fields, result.extra)


def same_as_reference(value: bytes) -> None:
    got, want = decoded(value), reference_decode(value)
    assert got == want
    if got[0] == "event":  # the same types too: 5 stays an int, 5.0 a float
        assert {k: type(v) for k, v in got[1].items()} == {k: type(v) for k, v in want[1].items()}


class Raw(str):
    """Text written into the JSON as it is (a number literal, NaN, ...)."""


def write(value: Any, dup: bool) -> str:
    """JSON text of `value`: `Raw` verbatim, lone surrogates escaped, dict
    keys repeated with an earlier value first when `dup`."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            key = json.dumps(k)
            if dup:
                parts.append(f"{key}:null")
            parts.append(f"{key}:{write(v, dup)}")
        return "{" + ",".join(parts) + "}"
    if isinstance(value, list):
        return "[" + ",".join(write(v, dup) for v in value) + "]"
    return json.dumps(value)  # ensure_ascii: a lone surrogate becomes a \\udXXX escape


hostile_numbers = st.sampled_from(["1e400", "-1e999", "NaN", "Infinity", "-Infinity", "1" * 400, "-0", "1E2",
                                   "9223372036854775808", "1.0", "5e-324", "1e-400", "0.1"]).map(Raw)
texts = st.text(max_size=6) | st.sampled_from(["\ud800", "a\udfff", "\U0001F600", "2024-01-01T00:00:00Z",
                                               "2024-01-01T01:00:00.250+01:00", "2024-01-01T00:00:00", "soon"])
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | texts
json_values = st.recursive(scalars | hostile_numbers,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                           max_leaves=12)
KEYS = ["event_id", "user_id", "event_type", "timestamp", "amount", "value", "category", "region", "tenant_id",
        "location", "device", "device_id", "user_type", "failed_attempts", "schema_version", "__extra__",
        "__channel__", "extra", "channel", "other"]
field_values = (st.text(max_size=4) | st.integers(-3, 4) | st.integers(-(2**70), 2**70)
                | st.integers(-62_135_596_800_001, 253_402_300_800_000) | json_values)
eventish = st.dictionaries(st.sampled_from(KEYS), field_values, max_size=len(KEYS))
valid = st.fixed_dictionaries(
    {"event_id": st.text(max_size=5), "user_id": st.text(max_size=5), "event_type": st.text(max_size=5),
     "timestamp": st.integers(-62_135_596_800_000, 253_402_300_799_999)},
    optional={"amount": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**64), 2**64),
              "value": st.floats(allow_nan=False, allow_infinity=False), "category": st.text(max_size=3),
              "failed_attempts": st.integers(0, 9), "device_id": st.none() | st.text(max_size=3)},
)


@st.composite
def documents(draw: Callable) -> bytes:
    value = draw(valid | eventish | json_values)
    text = write(value, draw(st.booleans()))
    if draw(st.booleans()):
        text = draw(st.sampled_from([" ", "\t", "\r", ""])) + text + draw(st.sampled_from([" ", "\r\n", "", "x"]))
    return text.encode("utf-8", "surrogatepass")


@given(documents())
@example(b'{"event_id":"e","user_id":"u","event_type":"t","timestamp":1,"__channel__":null}')
@example(b'{"event_id":"e","user_id":"u","event_type":"t","timestamp":1,"amount":1' + b"0" * 400 + b"}")
@example(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
@example(b"[" * MAX_DEPTH + b'"\\ud800"' + b"]" * MAX_DEPTH)
@example(b'{"event_id":"\xed\xa0\x80","user_id":"u","event_type":"t","timestamp":1}')
def test_same_event_or_reason_as_the_reference(value: bytes) -> None:
    same_as_reference(value)


@given(st.binary(max_size=80))
def test_arbitrary_bytes_as_the_reference(value: bytes) -> None:
    same_as_reference(value)


@given(valid)
def test_valid_events_take_the_typed_path_and_match(record: dict[str, Any]) -> None:
    same_as_reference(json.dumps(record).encode())
