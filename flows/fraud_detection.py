"""Fraud detection with CEP: a suspicious login strictly followed by a large
transaction within ten minutes.

Key `user_id`; watermark bound 2 min; events are matched per user in
timestamp order once the watermark passes them. A login is suspicious when
its `location` differs from the location of every earlier event of this user
(in timestamp order; an event without a location adds none), or when
`failed_attempts > 0`. Pattern (Flink CEP):

    begin("login").where(suspicious login)
      .next("transaction").where(event_type == "transaction" and amount > 10000)
      .within(10 min)

As in Flink, a partial match expires once an event's timestamp reaches the
login's + 10 min. One alert per match: `{"user_id", "login_event_id",
"transaction_event_id", "amount", "login_timestamp",
"transaction_timestamp"}`. The set of locations seen per user is operator
state, kept across recovery. Late events go to the late output.

    python -m bytewax.run flows.fraud_detection:flow
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from eventio.bytewax_run import exits_on_configuration_error, lazy_flow
from eventio.deadletter import DeadLetter
from eventio.event import Event
from eventio.flow_setup import SHARDS, SHARED_SETTINGS, WATERMARK_BOUND_MS, configure
from eventio.flowio import read_events, write_dead_letters, write_late, write_output
from eventio.settings import FlowSettings, Setting, integer, number
from flows import BROKER, Quickstart
from operators import BoundedOutOfOrderness, Match, Pattern, key_by, match_pattern

MINUTE = 60_000

SETTINGS = FlowSettings(
    "fraud_detection",
    SHARED_SETTINGS,
    (Setting("AMOUNT_THRESHOLD", number(0), 10_000.0, "a transaction above this amount after a suspicious login "
             "is an alert"),
     Setting("WITHIN_MS", integer(1, unit="milliseconds"), 10 * MINUTE,
             "the transaction must come this soon after the login (the pattern's `within`)"),
     WATERMARK_BOUND_MS.with_default(2 * MINUTE), SHARDS),
)
QUICKSTART = Quickstart(
    "fraud --count 20000 --output events.jsonl --truth planted.jsonl", "INPUT_PATH=events.jsonl OUTPUT_PATH=out.jsonl",
    f"fraud --count 20000 --topic events --bootstrap {BROKER}", f"KAFKA_BOOTSTRAP_SERVERS={BROKER} STOP_AT_END=true")
"""How to make input for it and run it."""
EXAMPLE_OUTPUT = {"user_id": "u00228", "login_event_id": "e00000903", "transaction_event_id": "e00000904",
                  "amount": 22097.11, "login_timestamp": 1704068606913, "transaction_timestamp": 1704069071845}
"""A real output record (of the generator's events)."""

Flagged = tuple[Event, bool]
"""An event and whether it is a suspicious login."""


def flag_suspicious(user: str, event: Event, context: dict[str, Any]) -> Flagged:
    """Mark suspicious logins, then remember the event's location; runs in
    timestamp order per user (the CEP operator's enrich hook)."""
    seen: set[str] = context.setdefault("locations", set())
    location = event.location
    suspicious = event.event_type == "login" and (
        (location is not None and location not in seen) or (event.failed_attempts or 0) > 0
    )
    if location is not None:
        seen.add(location)
    return (event, suspicious)


def fraud_pattern(threshold: float, within_ms: int) -> Pattern:
    """Suspicious login, next a transaction above `threshold`, within `within_ms`."""
    return (
        Pattern.begin("login")
        .where(lambda x: x[1])
        .next("transaction")
        .where(lambda x: x[0].event_type == "transaction" and (x[0].amount or 0) > threshold)
        .within(within_ms)
    )


def alert(user: str, match: Match) -> dict[str, Any]:
    """The alert record of one match."""
    login, tx = match["login"][0][0], match["transaction"][0][0]
    return {
        "user_id": user,
        "login_event_id": login.event_id,
        "transaction_event_id": tx.event_id,
        "amount": tx.amount,
        "login_timestamp": login.timestamp,
        "transaction_timestamp": tx.timestamp,
    }


def _failed_condition(item: tuple[str, Any, str]) -> DeadLetter:
    user, element, message = item
    event = element[0] if isinstance(element, tuple) else element
    return DeadLetter(event.channel or "?", None, None, user.encode(), event.to_json_bytes(),
                      "ConditionError", message)


@exits_on_configuration_error
def build(**overrides: Any) -> Dataflow:
    """The flow, configured by `SETTINGS` from the environment and
    `overrides` (their lower-case names)."""
    s, cfg = configure(SETTINGS, overrides)
    bound = s["watermark_bound_ms"]
    pattern = fraud_pattern(s["amount_threshold"], s["within_ms"])

    flow = Dataflow("fraud_detection")
    src = read_events(flow, "read", cfg)
    found = match_pattern(
        "fraud",
        key_by("by_user", src.events, attrgetter("user_id")),
        pattern,
        timestamp_of=attrgetter("timestamp"),
        watermarks=lambda: BoundedOutOfOrderness(bound),
        select=alert,
        enrich=flag_suspicious,
        partition_of=attrgetter("channel"),
        expected_channels=src.channels,
        shards=s["shards"],
    )
    unencodable = [
        write_output("out", op.map("alerts", found.down, lambda kv: kv[1]), cfg, key_of=lambda a: a["user_id"]),
        write_late("late", op.map("late_events", found.late, lambda kv: kv[1]), cfg),
    ]
    write_dead_letters("dlq", src.errors, cfg, op.map("failed", found.errors, _failed_condition), *unencodable)
    return flow


__getattr__ = lazy_flow(build)
