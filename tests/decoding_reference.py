"""A small reference decoder for JSON events, written from the rules in the
README and `eventio/strict_json.py` with the standard library only: the
property tests hold the project's decoder (msgspec's typed decoder first,
then the general path) to it.

`reference_decode(value)` gives `("event", fields, extra)` or
`("dead", error_class, message)`.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, Optional

MAX_DEPTH = 500
MAX_BYTES = 1_000_000
MIN_TS, MAX_TS = -62_135_596_800_000, 253_402_300_799_999
STRINGS = ("event_id", "user_id", "event_type", "category", "region", "tenant_id", "location", "device_id", "user_type")
NUMBERS = ("amount", "value")
REQUIRED = ("event_id", "user_id", "event_type", "timestamp")
KNOWN = set(STRINGS) | set(NUMBERS) | {"failed_attempts", "timestamp"}
V1 = {"event_id", "user_id", "event_type", "timestamp", "amount"}
TOO_DEEP = f"invalid JSON: nested deeper than {MAX_DEPTH} levels (recursion limit)"


class Dead(Exception):
    def __init__(self, error_class: str, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message


def _reject(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _walk(obj: Any, depth: int, flags: set[str]) -> None:
    if isinstance(obj, (dict, list)):
        if depth > MAX_DEPTH:
            flags.add("deep")
            return
        children = list(obj.keys()) + list(obj.values()) if isinstance(obj, dict) else obj
        for child in children:
            _walk(child, depth + 1, flags)
    elif isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            flags.add("surrogate")
    elif isinstance(obj, float) and not math.isfinite(obj):
        flags.add("range")


def parse(value: bytes) -> Any:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as ex:
        raise Dead("InvalidJsonError", f"value is not UTF-8: {ex}")
    try:
        obj = json.loads(text, parse_constant=_reject)
    except RecursionError:
        raise Dead("InvalidJsonError", TOO_DEEP)
    except ValueError as ex:
        raise Dead("InvalidJsonError", f"invalid JSON: {ex}")
    flags: set[str] = set()
    _walk(obj, 1, flags)
    if "deep" in flags:
        raise Dead("InvalidJsonError", TOO_DEEP)
    if "surrogate" in flags:
        raise Dead("InvalidJsonError", "invalid JSON: a string holds a lone surrogate escape")
    if "range" in flags:
        raise Dead("InvalidJsonError", "invalid JSON: a number is beyond the range of a double")
    return obj


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def upcast(data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    version = data.pop("schema_version", None)
    if version is None:
        version = 2 if "device" in data and "device_id" not in data else 1 if set(data) <= V1 else 3
    elif isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= 3:
        raise Dead("UnsupportedSchemaVersionError", f"schema_version {version!r} is not supported (known: 1..3)")
    if version == 1:
        for name in ("category", "region", "device", "value"):
            data.setdefault(name, None)
    if version <= 2:
        if "device" in data:
            if data.get("device_id") is not None:
                raise Dead("EventError", "event has both the v2 field 'device' and the v3 field 'device_id'")
            data["device_id"] = data.pop("device")
        for name in ("tenant_id", "location", "user_type", "failed_attempts"):
            data.setdefault(name, None)
    return data


def timestamp(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        kind = repr(raw) if isinstance(raw, bool) else type(raw).__name__
        raise Dead("EventError", f"timestamp must be epoch milliseconds or ISO-8601, got {kind}")
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise Dead("EventError", f"timestamp {_short(raw)} is not ISO-8601")
        if parsed.tzinfo is None:
            raise Dead("EventError", f"timestamp {_short(raw)} has no UTC offset")
        delta = parsed - datetime.fromtimestamp(0, parsed.tzinfo)
        return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000
    if isinstance(raw, float) and not raw.is_integer():
        raise Dead("EventError", f"timestamp must be whole epoch milliseconds, got {_short(raw)}")
    if not MIN_TS <= raw <= MAX_TS:
        raise Dead("EventError", f"timestamp {_short(raw)} is outside years 1 to 9999")
    return int(raw)


def _fits_double(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def event(data: Any) -> tuple[dict[str, Any], Optional[dict[str, Any]]]:
    if not isinstance(data, dict):
        raise Dead("EventError", f"event must be a JSON object, got {type(data).__name__}")
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, v in data.items():
        if name not in KNOWN:
            extra[name] = v
        elif v is None:
            continue
        elif name in STRINGS:
            if not isinstance(v, str):
                raise Dead("EventError", f"field {name!r} must be a string, got {type(v).__name__}")
            fields[name] = v
        elif name in NUMBERS:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not _fits_double(v):
                raise Dead("EventError", f"field {name!r} must be a finite number, got {_short(v)}")
            fields[name] = v
        elif name == "failed_attempts":
            if isinstance(v, bool) or not isinstance(v, int):
                raise Dead("EventError", f"field {name!r} must be an integer, got {_short(v)}")
            fields[name] = v
        else:
            fields[name] = timestamp(v)
    for name in REQUIRED:
        if name not in fields:
            raise Dead("EventError", f"missing required field {name!r}")
    return fields, extra or None


def reference_decode(value: Optional[bytes], max_bytes: int = MAX_BYTES) -> tuple[Any, ...]:
    try:
        if value is None:
            raise Dead("NullValueError", "record has no value (tombstone)")
        if len(value) > max_bytes:
            raise Dead("OversizeMessageError", f"value of {len(value)} bytes exceeds the {max_bytes}-byte limit")
        fields, extra = event(upcast(parse(value)))
    except Dead as dead:
        return ("dead", dead.error_class, dead.message)
    return ("event", fields, extra)
