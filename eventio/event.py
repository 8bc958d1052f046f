"""The event model shared by every flow, with its JSON (de)serialization.

Canonical JSON fields: `event_id`, `user_id`, `event_type` (str, required),
`timestamp` (int epoch milliseconds, required; ISO-8601 strings with a UTC
offset are accepted on input and normalised), and the optional `category`,
`amount`, `value`, `region`, `tenant_id`, `location`, `failed_attempts`,
`device_id`, `user_type`. Unknown fields are carried in `extra` and written
back unchanged.

`Event` is a msgspec `Struct`, so a JSON record decodes straight into it in C
(`eventio/decoding.py`); `from_dict` is the general path, in Python, for
records the typed decoder refuses (unknown fields, ISO timestamps, older
versions, bad input, which it explains).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Optional, Union

import msgspec
from msgspec import Meta
from msgspec.structs import replace

from eventio import strict_json
from eventio.strict_json import plain_float

REQUIRED_FIELDS = ("event_id", "user_id", "event_type", "timestamp")
MIN_TIMESTAMP = -62_135_596_800_000  # 0001-01-01T00:00:00Z
MAX_TIMESTAMP = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_STR_FIELDS = ("category", "region", "tenant_id", "location", "device_id", "user_type")
_NUMBER_FIELDS = ("amount", "value")
_OPTIONAL_FIELDS = _STR_FIELDS + _NUMBER_FIELDS + ("failed_attempts",)
_KIND: dict[str, Any] = {
    **{name: str for name in ("event_id", "user_id", "event_type") + _STR_FIELDS},
    **{name: float for name in _NUMBER_FIELDS},
    "failed_attempts": int,
    "timestamp": datetime,
}
"""How `Event.from_dict` checks each known field: a string, a finite number
(int or float, not bool, within a double's range), an integer, or a timestamp
to normalise."""

Int64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
Number = Union[Int64, float]
"""What the typed decoder takes for a number field; larger integers take the
general path, which checks that they fit a double."""
Timestamp = Annotated[int, Meta(ge=MIN_TIMESTAMP, le=MAX_TIMESTAMP)]


class EventError(ValueError):
    """Input that is not a valid event; the message says why."""


class NotFromJson:
    """The declared type of `Event.extra` and `Event.channel`, which hold a
    dict (or None) and a string (or None) but never come from the JSON text:
    msgspec cannot decode this type, so a record with a key spelled like
    their JSON names (`__extra__`, `__channel__`) fails typed decoding and
    `from_dict` keeps that key as an unknown field, as it keeps any other."""


class Event(
    msgspec.Struct,
    omit_defaults=True,
    forbid_unknown_fields=True,
    gc=False,
    eq=False,
    repr_omit_defaults=True,
    rename={"extra": "__extra__", "channel": "__channel__"},
):
    """One user event. `extra` holds the unknown fields; `channel` names the
    source partition it was read from (for per-partition watermarks) and is
    never written out. The fields are in the order records are written.

    `gc=False`: events hold only strings, numbers and JSON data, never a
    reference cycle, so the cyclic garbage collector need not track the
    millions buffered in windows, joins and CEP.
    """

    event_id: str
    user_id: str
    event_type: str
    timestamp: Timestamp
    category: Optional[str] = None
    region: Optional[str] = None
    tenant_id: Optional[str] = None
    location: Optional[str] = None
    device_id: Optional[str] = None
    user_type: Optional[str] = None
    amount: Optional[Number] = None
    value: Optional[Number] = None
    failed_attempts: Optional[Int64] = None
    extra: NotFromJson = None  # type: ignore[assignment]
    channel: NotFromJson = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        """Equal JSON content; the channel does not count."""
        return isinstance(other, Event) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Load an event pickled before `Event` was a Struct (a dict of its
        JSON fields), through `eventio.snapshots.loads`."""
        for name, v in _split_known(state).items():
            setattr(self, name, v)

    @classmethod
    def from_dict(cls, data: Any) -> "Event":
        """Validate a decoded JSON object; raise `EventError` on bad input."""
        if not isinstance(data, dict):
            raise EventError(f"event must be a JSON object, got {type(data).__name__}")
        fields: dict[str, Any] = {}
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
                    if not isinstance(v, str):
                        raise EventError(f"field {name!r} must be a string, got {type(v).__name__}")
                elif kind is float:
                    if isinstance(v, bool) or not isinstance(v, (int, float)) or not _fits_double(v):
                        raise EventError(f"field {name!r} must be a finite number, got {_short(v)}")
                elif kind is int:
                    if isinstance(v, bool) or not isinstance(v, int):
                        raise EventError(f"field {name!r} must be an integer, got {_short(v)}")
                else:
                    v = parse_timestamp(v)
                fields[name] = v
        for name in REQUIRED_FIELDS:
            if name not in fields:
                raise EventError(f"missing required field {name!r}")
        return cls(**fields, extra=extra)

    @classmethod
    def from_json(cls, text: Union[str, bytes]) -> "Event":
        """Parse one JSON document; raise `EventError` with the reason."""
        try:
            data = strict_json.parse(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
        except strict_json.InvalidJsonError as ex:
            raise EventError(str(ex)) from ex
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON object: required fields, present optional ones, extras."""
        out: dict[str, Any] = {
            "event_id": self.event_id,
            "user_id": self.user_id,
            "event_type": self.event_type,
            "timestamp": self.timestamp,
        }
        for name in _OPTIONAL_FIELDS:
            v = getattr(self, name)
            if v is not None:
                out[name] = v
        if self.extra:
            out.update(self.extra)
        return out

    def to_json_bytes(self) -> bytes:
        """The canonical JSON object as UTF-8 bytes (`strict_json.encode`)."""
        amount, value = self.amount, self.value
        if (self.extra is not None or (amount.__class__ is float and not plain_float(amount))
                or (value.__class__ is float and not plain_float(value))):
            return strict_json.encode(self.to_dict())
        try:
            return _encode_struct(self if self.channel is None else replace(self, channel=None))
        except UnicodeEncodeError:  # a lone surrogate, in an event built by code
            return strict_json.encode(self.to_dict())

    def to_json(self) -> str:
        return self.to_json_bytes().decode("utf-8")


_encode_struct = msgspec.json.Encoder().encode
"""Events without extras straight from their fields, in their JSON order;
None fields are left out (`omit_defaults`)."""


def _fits_double(v: Union[int, float]) -> bool:
    """A finite float, or an int that converts to one."""
    if v.__class__ is float or isinstance(v, float):
        return v - v == 0.0
    try:
        float(v)
    except OverflowError:
        return False
    return True


def _short(v: Any) -> str:
    """`repr(v)`, cut to a readable length for a dead-letter reason."""
    text = repr(v)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def _split_known(data: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in data.items() if k in _KIND}
    extra = {k: v for k, v in data.items() if k not in _KIND}
    fields["extra"] = extra or None
    fields.setdefault("channel", None)
    return fields


def parse_timestamp(raw: Any) -> int:
    """Epoch milliseconds from an int (or integral float) or an ISO-8601
    string with a UTC offset."""
    if isinstance(raw, bool):
        raise EventError(f"timestamp must be epoch milliseconds or ISO-8601, got {raw!r}")
    if isinstance(raw, (int, float)):
        if isinstance(raw, float) and not raw.is_integer():
            raise EventError(f"timestamp must be whole epoch milliseconds, got {_short(raw)}")
        if not MIN_TIMESTAMP <= raw <= MAX_TIMESTAMP:
            raise EventError(f"timestamp {_short(raw)} is outside years 1 to 9999")
        return int(raw)
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError as ex:
            raise EventError(f"timestamp {_short(raw)} is not ISO-8601") from ex
        if parsed.tzinfo is None:
            raise EventError(f"timestamp {_short(raw)} has no UTC offset")
        delta = parsed - datetime.fromtimestamp(0, parsed.tzinfo)
        return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000
    raise EventError(f"timestamp must be epoch milliseconds or ISO-8601, got {type(raw).__name__}")
