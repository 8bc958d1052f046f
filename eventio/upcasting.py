"""Evolvable JSON events: versioned upcasters, v1 -> v2 -> v3, no registry.

The JSON versions follow the Avro user event schemas in `eventio/schemas`:
v2 added the optional `category`, `region`, `device` and `value`; v3 renamed
`device` to `device_id` and added the optional `tenant_id`, `location`,
`user_type` and `failed_attempts`. Each upcaster applies one version's change
and is written once; `upcast` composes them from the event's version to the
current one, so the result is a v3 dict that `Event.from_dict` accepts.

The version is the `schema_version` field when present (and is removed).
Without it the shape decides: the v2 name `device` (without `device_id`)
means v2, only v1 fields means v1, anything else is read as v3 -- earlier
versions differ from v3 only in those ways, so every other shape reads the
same either way.
"""

from __future__ import annotations

from typing import Any, Callable

from eventio.event import EventError

VERSION_FIELD = "schema_version"
CURRENT_VERSION = 3
V1_FIELDS = frozenset({"event_id", "user_id", "event_type", "timestamp", "amount"})

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UnsupportedSchemaVersionError(EventError):
    """A `schema_version` this code does not know (e.g. from a newer producer)."""


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v2 added optional fields, defaulting to null."""
    for name in ("category", "region", "device", "value"):
        data.setdefault(name, None)
    return data


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    """v3 renamed `device` to `device_id` and added optional fields."""
    if "device" in data:
        if data.get("device_id") is not None:
            raise EventError("event has both the v2 field 'device' and the v3 field 'device_id'")
        data["device_id"] = data.pop("device")
    for name in ("tenant_id", "location", "user_type", "failed_attempts"):
        data.setdefault(name, None)
    return data


UPCASTERS: dict[int, Upcaster] = {1: _v1_to_v2, 2: _v2_to_v3}


def detect_version(data: dict[str, Any]) -> int:
    """The version an event without `schema_version` was written in, by shape."""
    if "device" in data and "device_id" not in data:
        return 2
    if data.keys() <= V1_FIELDS:
        return 1
    return CURRENT_VERSION


def upcast(data: Any) -> Any:
    """`data` as a current-version event dict (mutated in place). Non-dicts
    pass through for `Event.from_dict` to reject; unknown versions raise
    `UnsupportedSchemaVersionError`."""
    if not isinstance(data, dict):
        return data
    version = data.pop(VERSION_FIELD, None)
    if version is None:
        version = detect_version(data)
    elif isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= CURRENT_VERSION:
        raise UnsupportedSchemaVersionError(
            f"{VERSION_FIELD} {version!r} is not supported (known: 1..{CURRENT_VERSION})"
        )
    while version < CURRENT_VERSION:
        data = UPCASTERS[version](data)
        version += 1
    return data
