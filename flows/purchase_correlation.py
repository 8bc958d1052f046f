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

from eventio import metrics
from eventio.config import IOConfig, setting, split_overrides
from eventio.event import Event
from eventio.flowio import read_events, require, write_dead_letters, write_late, write_output
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


def build(**overrides: Any) -> Dataflow:
    """The flow, configured by the environment and `overrides`
    (`actions_path`, `actions_topic`, `purchases_path`, `purchases_topic`,
    `lower_ms`, `upper_ms`, `watermark_bound_ms`, `idle_timeout_ms`,
    `shards`, IO settings)."""
    io, rest = split_overrides(overrides)
    cfg = IOConfig.from_env(io)
    bound = setting("watermark_bound_ms", 2 * MINUTE, rest)
    idle = setting("idle_timeout_ms", 0, rest)
    metrics.serve_from_env()

    flow = Dataflow("purchase_correlation")
    actions = read_events(flow, "actions", cfg, path=setting("actions_path", "", rest),
                          topics=[setting("actions_topic", "actions", rest)], path_var="ACTIONS_PATH",
                          topic_var="ACTIONS_TOPIC")
    purchases = require("priced", read_events(flow, "purchases", cfg, path=setting("purchases_path", "", rest),
                                              topics=[setting("purchases_topic", "purchases", rest)],
                                              path_var="PURCHASES_PATH", topic_var="PURCHASES_TOPIC"), "amount")
    joined = interval_join(
        "correlate",
        key_by("actions_by_user", actions.events, attrgetter("user_id")),
        key_by("purchases_by_user", purchases.events, attrgetter("user_id")),
        lower_ms=setting("lower_ms", -5 * MINUTE, rest),
        upper_ms=setting("upper_ms", 5 * MINUTE, rest),
        upper_inclusive=False,
        select=correlation,
        timestamp_of=attrgetter("timestamp"),
        watermarks=lambda: BoundedOutOfOrderness(bound),
        partition_of=attrgetter("channel"),
        expected_channels=(actions.channels, purchases.channels),
        idle_timeout_ms=idle or None,
        shards=setting("shards", 32, rest),
    )
    unencodable = [
        write_output("out", op.map("pairs", joined.down, lambda kv: kv[1]), cfg, key_of=lambda r: r["user_id"]),
        write_late("late", op.map("late_events", joined.late, lambda kv: kv[1][1]), cfg),
    ]
    write_dead_letters("dlq", actions.errors, cfg, purchases.errors, *unencodable)
    return flow


flow = build()
