"""Strict JSON in and out: what every flow reads and writes.

Reading (`parse`): UTF-8 JSON as RFC 8259 defines it, with msgspec's C
parser. Besides the parser's own checks (no `NaN`/`Infinity` literals, no
lone surrogate escapes, which no UTF-8 text can hold), two rules make the
outcome independent of the parser's limits: a number beyond the range of a
double (`1e400`) is rejected, as is nesting deeper than `MAX_DEPTH`.

Writing (`encode`): compact JSON (`,` and `:` without spaces, non-ASCII
written as UTF-8), byte for byte what `json.dumps(obj, ensure_ascii=False,
separators=(",", ":"))` gives, but never `NaN` or `Infinity`: a value JSON
cannot hold raises `UnencodableError`. msgspec encodes several times faster
than the standard library, but spells some numbers differently (`1e16`,
`0.00001` where Python writes `1e+16`, `1e-05`) and writes non-finite floats
as `null`. It encodes the values it spells alike (`plain_float`); the rest
go to the standard library's C encoder, built once.
"""

from __future__ import annotations

import json
from json.encoder import c_make_encoder, encode_basestring
from typing import Any

import msgspec

MAX_DEPTH = 500
"""Deepest nesting of arrays and objects accepted (Jackson, Flink's JSON
parser, defaults to 1000; Python's own recursion limit leaves less)."""


class InvalidJsonError(ValueError):
    """A value that is not strict UTF-8 JSON."""


class UnencodableError(ValueError):
    """A value strict JSON cannot represent (a non-finite float, a lone
    surrogate, a type JSON does not have)."""


_decode = msgspec.json.Decoder().decode


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_STDLIB = json.JSONDecoder(parse_constant=_reject_constant)
_TOO_DEEP = f"invalid JSON: nested deeper than {MAX_DEPTH} levels (recursion limit)"


def parse(value: bytes) -> Any:
    """The JSON value in `value`, or `InvalidJsonError` saying why there is
    none. msgspec parses; what it refuses is parsed again by the standard
    library, whose messages say what is wrong, and which also takes three
    things the rules above refuse: lone surrogates, numbers beyond a double
    and nesting deeper than msgspec follows (reported in that order of
    precedence: nesting, surrogates, numbers)."""
    try:
        obj = _decode(value)
    except (msgspec.DecodeError, RecursionError):
        return _parse_refused(value)
    if len(value) > 2 * MAX_DEPTH and (obj.__class__ is dict or obj.__class__ is list) and _too_deep(obj, MAX_DEPTH):
        raise InvalidJsonError(_TOO_DEEP)  # shorter text cannot nest that deep
    return obj


def _parse_refused(value: bytes) -> Any:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as ex:
        raise InvalidJsonError(f"value is not UTF-8: {ex}") from None
    try:
        obj = _STDLIB.decode(text)
    except RecursionError:
        raise InvalidJsonError(_TOO_DEEP) from None
    except ValueError as ex:
        raise InvalidJsonError(f"invalid JSON: {ex}") from None
    if _too_deep(obj, MAX_DEPTH):
        raise InvalidJsonError(_TOO_DEEP)
    flaws: set[str] = set()
    _find_flaws(obj, flaws)
    if "surrogate" in flaws:
        raise InvalidJsonError("invalid JSON: a string holds a lone surrogate escape")
    if "range" in flaws:
        raise InvalidJsonError("invalid JSON: a number is beyond the range of a double")
    return obj


def _too_deep(obj: Any, room: int) -> bool:
    """Whether `obj` nests arrays and objects deeper than `room` levels
    (without recursion: Python's own limit is what this guards against)."""
    stack = [(obj, room)]
    while stack:
        obj, room = stack.pop()
        if obj.__class__ is dict:
            obj = obj.values()
        elif obj.__class__ is not list:
            continue
        if room == 0:
            return True
        stack.extend((item, room - 1) for item in obj)
    return False


def _find_flaws(obj: Any, flaws: set[str]) -> None:
    """Add "surrogate" for a lone surrogate in a key or string, "range" for
    a non-finite number, anywhere in `obj` (nested at most `MAX_DEPTH`)."""
    if obj.__class__ is dict:
        for key, item in obj.items():
            _find_flaws(key, flaws)
            _find_flaws(item, flaws)
    elif obj.__class__ is list:
        for item in obj:
            _find_flaws(item, flaws)
    elif obj.__class__ is str:
        if not obj.isascii():
            try:
                obj.encode("utf-8")
            except UnicodeEncodeError:
                flaws.add("surrogate")
    elif obj.__class__ is float and obj - obj != 0.0:
        flaws.add("range")


_fast = msgspec.json.Encoder().encode
PLAIN_LOW, PLAIN_HIGH = 1e-4, 1e16
"""msgspec and Python spell a float alike when it is 0 or its magnitude is
in `[PLAIN_LOW, PLAIN_HIGH)`: the same shortest round-trip digits, no
exponent (checked on 1.5M doubles in that range); outside it Python writes
`1e+16` and `1e-05` where msgspec writes `1e16` and `0.00001`."""


def plain_float(v: float) -> bool:
    """Whether msgspec spells `v` as the standard library does (and it is finite)."""
    return PLAIN_LOW <= v < PLAIN_HIGH or -PLAIN_HIGH < v <= -PLAIN_LOW or v == 0.0


def _plain(obj: Any) -> bool:
    """Whether msgspec writes `obj` byte for byte as the standard library
    does: string keys, JSON scalars, and only floats `plain_float` accepts
    (a scan of the values is 10x cheaper than scanning msgspec's output)."""
    cls = obj.__class__
    if cls is dict:
        for key, v in obj.items():
            if key.__class__ is not str:
                return False
            c = v.__class__
            if c is str or c is int or c is bool or v is None:
                continue
            if c is float:
                if not plain_float(v):
                    return False
            elif c is dict or c is list or isinstance(v, tuple):  # named tuples are arrays to both
                if not _plain(v):
                    return False
            else:
                return False
        return True
    if cls is list or isinstance(obj, tuple):
        for v in obj:
            if not _plain(v):
                return False
        return True
    if cls is float:
        return plain_float(obj)
    return cls is str or cls is int or cls is bool or obj is None


def _builtins(obj: Any) -> Any:
    """What the standard library's encoder cannot take, as msgspec writes it
    (a set as an array, a datetime as ISO-8601 text, ...), so both encoders
    agree; `UnencodableError` for what neither takes."""
    try:
        return msgspec.to_builtins(obj)
    except TypeError:
        raise UnencodableError(f"{type(obj).__name__} is not a JSON type") from None


_exact = c_make_encoder(
    None,  # no circularity markers: records are trees (a cycle is a RecursionError)
    _builtins,
    encode_basestring,  # ensure_ascii=False
    None,  # no indent
    ":",
    ",",
    False,  # sort_keys
    False,  # skipkeys
    False,  # allow_nan: NaN and Infinity are not JSON
)


def encode(obj: Any) -> bytes:
    """`obj` (dicts, lists, tuples, strings, numbers, booleans, None) as
    compact UTF-8 JSON; `UnencodableError` if strict JSON cannot hold it."""
    if _plain(obj):
        try:
            return _fast(obj)
        except UnicodeEncodeError:  # a lone surrogate: the exact encoder says so
            pass
    return encode_exact(obj)


def encode_exact(obj: Any) -> bytes:
    """`encode` with the standard library's encoder only."""
    try:
        return "".join(_exact(obj, 0)).encode("utf-8")
    except ValueError as ex:  # NaN or Infinity
        raise UnencodableError(str(ex)) from None
    except UnicodeEncodeError as ex:
        raise UnencodableError(f"text holds a lone surrogate ({ex.object[ex.start:ex.end]!r})") from None
    except RecursionError:
        raise UnencodableError("value nests too deeply (or refers to itself)") from None


def loose(obj: Any) -> str:
    """`obj` as JSON-like text that also spells out what strict JSON cannot
    hold (`Infinity`, `NaN`, lone surrogates escaped), for error reports."""
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=True, default=repr)
