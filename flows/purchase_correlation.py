"""Purchase correlation: user actions interval-joined with purchases.

Actions come from `ACTIONS_PATH` or `ACTIONS_TOPIC`, purchases from
`PURCHASES_PATH` or `PURCHASES_TOPIC` (event JSON; a purchase's `event_id` is
its purchase id and it must have an `amount`). Key `user_id`; watermark bound
2 min on each input; the operator watermark is the minimum of the two, so one
input read faster than the other makes nothing late. Every pair with
`purchase.timestamp` in `[action.timestamp - 5 min, action.timestamp + 5 min)`
(Flink's `intervalJoin(...).between(-5 min, +5 min).upperBoundExclusive()`)
gives one output `{"purchase_id", "user_id", "amount", "action_event_id",
"action_type", "action_timestamp", "purchase_timestamp"}`. Late actions and
purchases go to the late output as event JSON.

When one input stops (purchases stop arriving, say), its watermark stops
and holds the operator's back, so the other input's elements are never
freed. `IDLE_TIMEOUT_MS` (0 = off) leaves an input partition silent for
that long out of the watermark (Flink's `withIdleness`), so the join's state
stays bounded by the interval; an element the quiet input sends later, behind
the watermark the other input moved on, goes to the late output.

    python -m bytewax.run flows.purchase_correlation:flow
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from eventio.bytewax_run import exits_on_configuration_error, lazy_flow
from eventio.event import Event
from eventio.flow_setup import IDLE_TIMEOUT_MS, SHARDS, SHARED_SETTINGS, WATERMARK_BOUND_MS, configure
from eventio.flowio import read_events, require, write_dead_letters, write_late, write_output
from eventio.settings import TEXT, FlowSettings, Setting, SettingsError, integer
from flows import BROKER, Quickstart
from operators import BoundedOutOfOrderness, interval_join, key_by

MINUTE = 60_000


def correlation(action: Event, purchase: Event) -> dict[str, Any]:
    """The output record of one (action, purchase) pair."""
    return {
        "purchase_id": purchase.event_id,
        "user_id": purchase.user_id,
        "amount": purchase.amount,
        "action_event_id": action.event_id,
        "action_type": action.event_type,
        "action_timestamp": action.timestamp,
        "purchase_timestamp": purchase.timestamp,
    }


_OFFSET = integer(unit="milliseconds")
SETTINGS = FlowSettings(
    "purchase_correlation",
    SHARED_SETTINGS,
    (Setting("ACTIONS_PATH", TEXT, None, "actions from this JSON-lines file instead of Kafka", optional=True),
     Setting("ACTIONS_TOPIC", TEXT, "actions", "actions topic"),
     Setting("PURCHASES_PATH", TEXT, None, "purchases from this JSON-lines file instead of Kafka", optional=True),
     Setting("PURCHASES_TOPIC", TEXT, "purchases", "purchases topic"),
     Setting("LOWER_MS", _OFFSET, -5 * MINUTE, "a purchase joins an action from this far before it ..."),
     Setting("UPPER_MS", _OFFSET, 5 * MINUTE, "... to (exclusive) this far after it"),
     WATERMARK_BOUND_MS.with_default(2 * MINUTE), IDLE_TIMEOUT_MS, SHARDS),
)
QUICKSTART = Quickstart(
    "correlated --count 20000 --output actions.jsonl --purchases-output purchases.jsonl",
    "ACTIONS_PATH=actions.jsonl PURCHASES_PATH=purchases.jsonl OUTPUT_PATH=out.jsonl",
    f"correlated --count 20000 --topic actions --purchases-topic purchases --bootstrap {BROKER}",
    f"KAFKA_BOOTSTRAP_SERVERS={BROKER} STOP_AT_END=true")
"""How to make input for it and run it."""
EXAMPLE_OUTPUT = {"purchase_id": "p00000275", "user_id": "u00098", "amount": 103.9,
                  "action_event_id": "e00001308", "action_type": "add_to_cart", "action_timestamp": 1704068477471,
                  "purchase_timestamp": 1704068622546}
"""A real output record (of the generator's events)."""


@exits_on_configuration_error
def build(**overrides: Any) -> Dataflow:
    """The flow, configured by `SETTINGS` from the environment and
    `overrides` (their lower-case names). `INPUT_PATH` and `INPUT_TOPIC`
    play no part: the two inputs have their own."""
    s, cfg = configure(SETTINGS, overrides)
    bound, idle = s["watermark_bound_ms"], s["idle_timeout_ms"]
    if s["lower_ms"] > s["upper_ms"]:
        raise SettingsError([f"LOWER_MS={s['lower_ms']} is above UPPER_MS={s['upper_ms']}: the interval is empty"])

    flow = Dataflow("purchase_correlation")
    actions = read_events(flow, "actions", cfg, path=s["actions_path"], topics=[s["actions_topic"]],
                          path_var="ACTIONS_PATH", topic_var="ACTIONS_TOPIC")
    purchases = require("priced", read_events(flow, "purchases", cfg, path=s["purchases_path"],
                                              topics=[s["purchases_topic"]],
                                              path_var="PURCHASES_PATH", topic_var="PURCHASES_TOPIC"), "amount")
    joined = interval_join(
        "correlate",
        key_by("actions_by_user", actions.events, attrgetter("user_id")),
        key_by("purchases_by_user", purchases.events, attrgetter("user_id")),
        lower_ms=s["lower_ms"],
        upper_ms=s["upper_ms"],
        upper_inclusive=False,
        select=correlation,
        timestamp_of=attrgetter("timestamp"),
        watermarks=lambda: BoundedOutOfOrderness(bound),
        partition_of=attrgetter("channel"),
        expected_channels=(actions.channels, purchases.channels),
        idle_timeout_ms=idle or None,
        shards=s["shards"],
    )
    unencodable = [
        write_output("out", op.map("pairs", joined.down, lambda kv: kv[1]), cfg, key_of=lambda r: r["user_id"]),
        write_late("late", op.map("late_events", joined.late, lambda kv: kv[1][1]), cfg),
    ]
    write_dead_letters("dlq", actions.errors, cfg, purchases.errors, *unencodable)
    return flow


__getattr__ = lazy_flow(build)
