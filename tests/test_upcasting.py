"""JSON upcasters: v1 -> v2 -> v3 by explicit version or by shape, against a
reference written from the field history table."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventio.event import Event, EventError, MAX_TIMESTAMP, MIN_TIMESTAMP
from eventio.upcasting import (
    CURRENT_VERSION,
    VERSION_FIELD,
    UnsupportedSchemaVersionError,
    detect_version,
    upcast,
)

BASE = {"event_id": "e1", "user_id": "u1", "event_type": "click", "timestamp": 1_704_067_200_000}

# v3 field -> (version it appeared in, its name before v3)
FIELD_HISTORY: dict[str, tuple[int, str]] = {
    "event_id": (1, "event_id"), "user_id": (1, "user_id"), "event_type": (1, "event_type"),
    "timestamp": (1, "timestamp"), "amount": (1, "amount"),
    "category": (2, "category"), "region": (2, "region"), "device_id": (2, "device"), "value": (2, "value"),
    "tenant_id": (3, "tenant_id"), "location": (3, "location"), "user_type": (3, "user_type"),
    "failed_attempts": (3, "failed_attempts"),
}


def reference_v3(version: int, record: dict[str, Any]) -> dict[str, Any]:
    """What a v`version` record means in v3, read off the history table."""
    out: dict[str, Any] = {}
    for field, (since, old_name) in FIELD_HISTORY.items():
        name = field if version == 3 else old_name
        out[field] = record.get(name) if version >= since else None
    known = {old for _, old in FIELD_HISTORY.values()} if version < 3 else set(FIELD_HISTORY)
    out.update({k: v for k, v in record.items() if k not in known and k != VERSION_FIELD})
    return out


def test_v1_gets_the_later_fields_as_nulls() -> None:
    assert upcast({VERSION_FIELD: 1, **BASE, "amount": 7}) == {
        **BASE, "amount": 7, "category": None, "region": None, "device_id": None, "value": None,
        "tenant_id": None, "location": None, "user_type": None, "failed_attempts": None,
    }


def test_v2_device_is_renamed_device_id() -> None:
    out = upcast({VERSION_FIELD: 2, **BASE, "amount": 3, "device": "ios", "region": "emea"})
    assert out["device_id"] == "ios" and "device" not in out and out["region"] == "emea"
    assert VERSION_FIELD not in out


def test_v3_passes_through_without_its_version_field() -> None:
    record = {**BASE, "device_id": "web", "location": "lima", "session": "s9"}
    assert upcast({VERSION_FIELD: 3, **record}) == record


@pytest.mark.parametrize(
    "record, version",
    [
        ({**BASE}, 1),
        ({**BASE, "amount": 1}, 1),
        ({**BASE, "device": "ios"}, 2),
        ({**BASE, "device": "ios", "category": "books"}, 2),
        ({**BASE, "device_id": "ios"}, 3),
        ({**BASE, "category": "books"}, 3),
        ({**BASE, "location": "lima", "failed_attempts": 2}, 3),
        ({**BASE, "device": "legacy", "device_id": "ios"}, 3),
    ],
)
def test_shape_detection(record, version) -> None:
    assert detect_version(record) == version


@pytest.mark.parametrize("version", [0, 4, 99, -1, "2", 2.0, True, [3]])
def test_unknown_versions_are_refused_clearly(version) -> None:
    with pytest.raises(UnsupportedSchemaVersionError, match=f"schema_version .* is not supported \\(known: 1..{CURRENT_VERSION}\\)"):
        upcast({VERSION_FIELD: version, **BASE})


def test_a_v2_event_with_both_device_names_is_refused() -> None:
    with pytest.raises(EventError, match="both"):
        upcast({VERSION_FIELD: 2, **BASE, "device": "a", "device_id": "b"})


def test_non_objects_pass_through_for_the_event_model_to_reject() -> None:
    assert upcast([1, 2]) == [1, 2]
    with pytest.raises(EventError, match="JSON object"):
        Event.from_dict(upcast("text"))


TEXT = st.none() | st.text(max_size=6)
NUMBER = st.none() | st.integers(-(10**9), 10**9) | st.floats(allow_nan=False, allow_infinity=False)
EXTRA = st.dictionaries(st.sampled_from(["session", "ip", "ua"]), st.text(max_size=4), max_size=2)
BASES = st.fixed_dictionaries({
    "event_id": st.text(max_size=6), "user_id": st.text(max_size=6),
    "event_type": st.text(max_size=6), "timestamp": st.integers(MIN_TIMESTAMP, MAX_TIMESTAMP),
})
OPTIONAL = {
    1: {"amount": st.integers(-(2**31), 2**31 - 1)},
    2: {"amount": st.integers(-(2**53), 2**53), "category": TEXT, "region": TEXT, "device": TEXT, "value": NUMBER},
    3: {"amount": NUMBER, "category": TEXT, "region": TEXT, "device_id": TEXT, "value": NUMBER,
        "tenant_id": TEXT, "location": TEXT, "user_type": TEXT, "failed_attempts": st.none() | st.integers(0, 99)},
}


def versioned_records(version: int) -> st.SearchStrategy[tuple[int, dict[str, Any]]]:
    extra = EXTRA if version == 3 else st.just({})
    return st.tuples(
        st.just(version),
        st.builds(lambda b, o, e: {**b, **o, **e}, BASES, st.fixed_dictionaries({}, optional=OPTIONAL[version]), extra),
    )


ANY_VERSION = st.sampled_from([1, 2, 3]).flatmap(versioned_records)


@given(ANY_VERSION)
def test_explicit_version_upcasts_to_the_reference(case) -> None:
    version, record = case
    out = upcast({VERSION_FIELD: version, **record})
    assert Event.from_dict(out) == Event.from_dict(reference_v3(version, record))
    assert VERSION_FIELD not in out and "device" not in out


@given(ANY_VERSION)
def test_shape_detection_reads_like_the_explicit_version(case) -> None:
    version, record = case
    by_shape = Event.from_dict(upcast(dict(record)))
    assert by_shape == Event.from_dict(upcast({VERSION_FIELD: version, **record}))
