"""The event model's JSON contract."""

from __future__ import annotations

import json
import pickle
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventio.event import Event, EventError, parse_timestamp


def test_round_trip_keeps_known_and_unknown_fields() -> None:
    raw = {
        "event_id": "e1", "user_id": "u1", "event_type": "purchase", "timestamp": 1_700_000_000_123,
        "amount": 12.5, "category": "books", "failed_attempts": 2, "campaign": {"id": 7}, "tags": ["a"],
    }
    event = Event.from_json(json.dumps(raw))
    assert event.amount == 12.5 and event.failed_attempts == 2
    assert event.extra == {"campaign": {"id": 7}, "tags": ["a"]}
    assert json.loads(event.to_json()) == raw
    assert Event.from_json(event.to_json()) == event


@pytest.mark.parametrize(
    "iso, millis",
    [
        ("2024-01-01T00:00:00Z", 1_704_067_200_000),
        ("2024-01-01T01:00:00.250+01:00", 1_704_067_200_250),
        ("2023-12-31T19:00:00-05:00", 1_704_067_200_000),
        ("1969-12-31T23:59:59.999+00:00", -1),
    ],
)
def test_iso_timestamps_are_normalised_to_epoch_millis(iso: str, millis: int) -> None:
    event = Event.from_json(json.dumps({"event_id": "e", "user_id": "u", "event_type": "x", "timestamp": iso}))
    assert event.timestamp == millis
    assert json.loads(event.to_json())["timestamp"] == millis


@pytest.mark.parametrize(
    "doc, reason",
    [
        ("not json", "invalid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"user_id": "u", "event_type": "x", "timestamp": 1}', "event_id"),
        ('{"event_id": "e", "user_id": "u", "event_type": "x"}', "timestamp"),
        ('{"event_id": "e", "user_id": 5, "event_type": "x", "timestamp": 1}', "user_id"),
        ('{"event_id": "e", "user_id": "u", "event_type": "x", "timestamp": "2024-01-01T00:00:00"}', "offset"),
        ('{"event_id": "e", "user_id": "u", "event_type": "x", "timestamp": true}', "timestamp"),
        ('{"event_id": "e", "user_id": "u", "event_type": "x", "timestamp": 1.5}', "whole"),
        ('{"event_id": "e", "user_id": "u", "event_type": "x", "timestamp": 1e300}', "outside years"),
        ('{"event_id": "e", "user_id": "u", "event_type": "x", "timestamp": -62135596800001}', "outside years"),
        ('{"event_id": "e", "user_id": "u", "event_type": "x", "timestamp": 1, "amount": "9"}', "amount"),
        ('{"event_id": "e", "user_id": "u", "event_type": "x", "timestamp": 1, "failed_attempts": 1.0}', "failed_attempts"),
    ],
)
def test_invalid_events_say_why(doc: str, reason: str) -> None:
    with pytest.raises(EventError, match=reason):
        Event.from_json(doc)


def test_pickle_round_trip() -> None:
    event = Event("e", "u", "login", 5, location="paris", extra={"k": 1})
    assert pickle.loads(pickle.dumps(event)) == event


@given(st.datetimes(timezones=st.timezones()))
def test_any_aware_iso_string_parses_to_its_instant(dt: datetime) -> None:
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert parse_timestamp(dt.isoformat()) == (dt - epoch) // timedelta(milliseconds=1)
