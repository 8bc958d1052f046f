"""The event model shared by every flow, with its JSON (de)serialization.

Canonical JSON fields: `event_id`, `user_id`, `event_type` (str, required),
`timestamp` (int epoch milliseconds, required; ISO-8601 strings with a UTC
offset are accepted on input and normalised), and the optional `category`,
`amount`, `value`, `region`, `tenant_id`, `location`, `failed_attempts`,
`device_id`, `user_type`. Unknown fields are carried in `extra` and written
back unchanged.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, Optional

from eventio import compact_json

REQUIRED_FIELDS = ("event_id", "user_id", "event_type", "timestamp")
MIN_TIMESTAMP = -62_135_596_800_000  # 0001-01-01T00:00:00Z
MAX_TIMESTAMP = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_STR_FIELDS = ("category", "region", "tenant_id", "location", "device_id", "user_type")
_NUMBER_FIELDS = ("amount", "value")
_KIND: dict[str, Any] = {
    **{name: str for name in ("event_id", "user_id", "event_type") + _STR_FIELDS},
    **{name: float for name in _NUMBER_FIELDS},
    "failed_attempts": int,
    "timestamp": datetime,
}
"""How `Event.from_dict` checks each known field: a string, a finite number
(int or float, not bool), an integer, or a timestamp to normalise."""


_new_object = object.__new__


class EventError(ValueError):
    """Input that is not a valid event; the message says why."""


class Event:
    """One user event. `channel` names the source partition it was read from
    (for per-partition watermarks) and is not serialized."""

    __slots__ = (
        "event_id",
        "user_id",
        "event_type",
        "timestamp",
        "category",
        "amount",
        "value",
        "region",
        "tenant_id",
        "location",
        "failed_attempts",
        "device_id",
        "user_type",
        "extra",
        "channel",
    )

    def __init__(
        self,
        event_id: str,
        user_id: str,
        event_type: str,
        timestamp: int,
        category: Optional[str] = None,
        amount: Optional[float] = None,
        value: Optional[float] = None,
        region: Optional[str] = None,
        tenant_id: Optional[str] = None,
        location: Optional[str] = None,
        failed_attempts: Optional[int] = None,
        device_id: Optional[str] = None,
        user_type: Optional[str] = None,
        extra: Optional[dict[str, Any]] = None,
        channel: Optional[str] = None,
    ) -> None:
        self.event_id = event_id
        self.user_id = user_id
        self.event_type = event_type
        self.timestamp = timestamp
        self.category = category
        self.amount = amount
        self.value = value
        self.region = region
        self.tenant_id = tenant_id
        self.location = location
        self.failed_attempts = failed_attempts
        self.device_id = device_id
        self.user_type = user_type
        self.extra = extra
        self.channel = channel

    def __repr__(self) -> str:
        return f"Event({self.to_dict()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and self.to_dict() == other.to_dict()

    def __getstate__(self) -> dict[str, Any]:
        return self.to_dict()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**_split_known(state))  # type: ignore[misc]

    @classmethod
    def from_dict(cls, data: Any) -> "Event":
        """Validate a decoded JSON object; raise `EventError` on bad input.
        This runs once per input event, so it makes one pass over the
        object's items and sets the fields directly rather than through
        keyword arguments (half the cost)."""
        if not isinstance(data, dict):
            raise EventError(f"event must be a JSON object, got {type(data).__name__}")
        event = _new_object(cls)
        event.event_id = event.user_id = event.event_type = event.timestamp = None  # type: ignore[assignment]
        event.category = event.amount = event.value = event.region = event.tenant_id = None
        event.location = event.failed_attempts = event.device_id = event.user_type = event.channel = None
        extra: Optional[dict[str, Any]] = None
        kind_of = _KIND.get
        for name, v in data.items():
            kind = kind_of(name)
            if kind is None:
                if extra is None:
                    extra = {}
                extra[name] = v
            elif v is not None:
                if kind is str:
                    if v.__class__ is not str and not isinstance(v, str):
                        raise EventError(f"field {name!r} must be a string, got {type(v).__name__}")
                elif kind is float:
                    if v.__class__ is not int and (
                        isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                    ):
                        raise EventError(f"field {name!r} must be a finite number, got {v!r}")
                elif kind is int:
                    if isinstance(v, bool) or not isinstance(v, int):
                        raise EventError(f"field {name!r} must be an integer, got {v!r}")
                elif v.__class__ is not int or not MIN_TIMESTAMP <= v <= MAX_TIMESTAMP:
                    v = parse_timestamp(v)
                setattr(event, name, v)
        event.extra = extra
        if event.event_id is None or event.user_id is None or event.event_type is None or event.timestamp is None:
            missing = next(name for name in REQUIRED_FIELDS if getattr(event, name) is None)
            raise EventError(f"missing required field {missing!r}")
        return event

    @classmethod
    def from_json(cls, text: str | bytes) -> "Event":
        """Parse one JSON document; raise `EventError` with the reason."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as ex:
            raise EventError(f"invalid JSON: {ex}") from ex
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON object: required fields, present optional ones, extras."""
        out: dict[str, Any] = {
            "event_id": self.event_id,
            "user_id": self.user_id,
            "event_type": self.event_type,
            "timestamp": self.timestamp,
        }
        for name in _STR_FIELDS + _NUMBER_FIELDS + ("failed_attempts",):
            v = getattr(self, name)
            if v is not None:
                out[name] = v
        if self.extra:
            out.update(self.extra)
        return out

    def to_json(self) -> str:
        return compact_json.dumps(self.to_dict())


def _split_known(data: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in data.items() if k in _KIND}
    extra = {k: v for k, v in data.items() if k not in _KIND}
    if extra:
        fields["extra"] = extra
    return fields


def parse_timestamp(raw: Any) -> int:
    """Epoch milliseconds from an int (or integral float) or an ISO-8601
    string with a UTC offset."""
    if isinstance(raw, bool):
        raise EventError(f"timestamp must be epoch milliseconds or ISO-8601, got {raw!r}")
    if isinstance(raw, (int, float)):
        if isinstance(raw, float) and not raw.is_integer():
            raise EventError(f"timestamp must be whole epoch milliseconds, got {raw!r}")
        if not MIN_TIMESTAMP <= raw <= MAX_TIMESTAMP:
            raise EventError(f"timestamp {raw!r} is outside years 1 to 9999")
        return int(raw)
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError as ex:
            raise EventError(f"timestamp {raw!r} is not ISO-8601") from ex
        if parsed.tzinfo is None:
            raise EventError(f"timestamp {raw!r} has no UTC offset")
        delta = parsed - datetime.fromtimestamp(0, parsed.tzinfo)
        return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000
    raise EventError(f"timestamp must be epoch milliseconds or ISO-8601, got {type(raw).__name__}")
