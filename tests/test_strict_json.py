"""`eventio.strict_json`: output text byte for byte as `json.dumps` with the
compact options writes it, never `NaN`/`Infinity`; input parsed strictly."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventio.strict_json import MAX_DEPTH, InvalidJsonError, UnencodableError, encode, loose, parse

finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.none() | st.booleans() | st.integers() | finite | st.text()
records = st.recursive(scalars, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=20)
# Floats where msgspec and Python spell numbers differently (exponents), and strings that look like them.
tricky = st.sampled_from([1e16, 1e22, 1.5e-07, 1e308, 5e-324, -0.0, 123456789.123, 1.2345678901234567e19, 0.0001,
                          1e-05, 9.99e-05, 10.00001, "1e5", "null", "x9e", "nullable", "0.00001"])


def compact(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


@given(records | st.dictionaries(st.text(max_size=3), tricky | scalars, max_size=6))
def test_same_bytes_as_json_dumps_with_compact_separators(record: Any) -> None:
    assert encode(record) == compact(record)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, {"total": [1.0, math.inf]}, {"s": "\ud800"},
                                   {"when": object()}, {"x": [object(), 1e20]}])
def test_what_strict_json_cannot_hold_is_refused(value: Any) -> None:
    with pytest.raises(UnencodableError):
        encode(value)


def test_loose_text_spells_out_what_strict_json_cannot_hold() -> None:
    assert loose({"total": math.inf, "s": "\ud800"}) == '{"total":Infinity,"s":"\\ud800"}'


@given(records)
def test_parse_reads_what_encode_writes(record: Any) -> None:
    assert parse(encode(record)) == record


@pytest.mark.parametrize(
    "text, reason",
    [
        (b'{"a": NaN}', "NaN is not valid JSON"),
        (b"[Infinity]", "Infinity is not valid JSON"),
        (b'{"a": "\\ud800"}', "lone surrogate"),
        (b'["\\udc00x"]', "lone surrogate"),
        (b'{"\\ud800": 1}', "lone surrogate"),
        (b"[1e400]", "beyond the range of a double"),
        (b'{"a": -1e999}', "beyond the range of a double"),
        (b"\xff", "not UTF-8"),
        (b'"\xed\xa0\x80"', "not UTF-8"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), f"deeper than {MAX_DEPTH}"),
        (b"[" * 100_000, f"deeper than {MAX_DEPTH}"),
        (b"1" * 5000, "digits"),
        (b"", "invalid JSON"),
        (b"[1,]", "invalid JSON"),
    ],
)
def test_parse_refuses_what_is_not_strict_json(text: bytes, reason: str) -> None:
    with pytest.raises(InvalidJsonError, match=reason):
        parse(text)


def test_nesting_up_to_the_limit_parses_and_encodes() -> None:
    deep = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    value = parse(deep)
    assert encode(value) == deep


def test_surrogate_pairs_and_duplicate_keys_read_as_python_does() -> None:
    assert parse(b'["\\ud83d\\ude00"]') == ["\U0001F600"]
    assert parse(b'{"a": 1, "a": 2}') == {"a": 2} == json.loads('{"a": 1, "a": 2}')
