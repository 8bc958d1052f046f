"""Multi-output processing: one validated main stream and three side outputs
(the seed's MultiOutputProcessor).

Every decoded event is validated. Business rules, checked in this order, the
first failure naming the reason:
- `unknown_event_type`: `event_type` not in `KNOWN_EVENT_TYPES`;
- `negative_amount`: an `amount` below zero;
- `missing_amount`: a `purchase` without `amount`.

Outputs:
- **main** (`OUTPUT_PATH` / `OUTPUT_TOPIC`, keyed by `user_id`): every valid
  event as event JSON enriched with `"is_high_value"` (a purchase of at least
  `HIGH_VALUE_THRESHOLD`) and `"event_date"` (UTC date of its timestamp,
  `YYYY-MM-DD`).
- **errors** (`ERRORS_PATH` / `ERRORS_TOPIC`, keyed by `user_id`): every
  invalid event as `{"error": <reason>, "detail": <message>, "event": <event
  JSON>}`, plus a summary of every dead letter (input that could not be
  decoded) as `{"error": "undecodable", "detail": <reason>, "source",
  "partition", "offset"}`; the dead letter itself, with its original bytes,
  also goes to the dead-letter output as in every flow.
- **audit** (`AUDIT_PATH` / `AUDIT_TOPIC`, keyed by `user_id`): valid events
  that need an audit trail, as event JSON plus `"audit_reasons"`: any of
  `high_value_purchase` and `admin_action` (an event whose `user_type` is
  `admin`). Audited events are in the main output too.
- **metrics** (`METRICS_OUTPUT_PATH` / `METRICS_TOPIC`, keyed by
  `event_type`): valid events counted per `event_type` in tumbling
  `METRICS_WINDOW_MS` (1 min) event-time windows, `{"event_type",
  "window_start", "window_end", "count", "is_late_update", "supersedes"}`;
  watermark bound 2 min; with `ALLOWED_LATENESS_MS`, a late event re-fires
  its minute with `supersedes: [[window_start, window_end]]` (the record it
  replaces; `[]` for a first record). Events too late for their minute go to the late output (they are
  still in the main, audit and error outputs, which do not depend on time).

A side output whose path is unset goes next to `OUTPUT_PATH` when that is
set (`out.jsonl` -> `out.errors.jsonl`, `out.audit.jsonl`,
`out.metrics.jsonl`), else to its topic.
    python -m bytewax.run flows.multi_output:flow
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any, Optional, Union

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from eventio.bytewax_run import exits_on_configuration_error, lazy_flow
from eventio.config import side_output_settings
from eventio.deadletter import DeadLetter
from eventio.event import Event
from eventio.flow_setup import ALLOWED_LATENESS_MS, SHARDS, SHARED_SETTINGS, WATERMARK_BOUND_MS, configure
from eventio.flowio import read_events, write_dead_letters, write_json, write_late, write_output
from eventio.settings import TEXT, FlowSettings, Setting, integer, number
from flows import Quickstart
from operators import Aggregate, BoundedOutOfOrderness, TumblingEventTimeWindows, WindowResult, key_by, window

MINUTE = 60_000
KNOWN_EVENT_TYPES = "page_view,click,add_to_cart,purchase,login,logout,idle,transaction,role_change"

SETTINGS = FlowSettings(
    "multi_output",
    SHARED_SETTINGS,
    (Setting("KNOWN_EVENT_TYPES", TEXT, KNOWN_EVENT_TYPES, "valid event types, comma-separated"),
     Setting("HIGH_VALUE_THRESHOLD", number(0), 1000.0, "purchases of at least this amount are high-value"),
     *side_output_settings("errors", "errors", "events that broke a rule, and undecodable records,"),
     *side_output_settings("audit", "audit", "audited events"),
     *side_output_settings("metrics", "metrics", "per-minute counts", path_var="METRICS_OUTPUT_PATH"),
     Setting("METRICS_WINDOW_MS", integer(1, unit="milliseconds"), MINUTE, "metrics window size"),
     WATERMARK_BOUND_MS.with_default(2 * MINUTE).with_doc("out-of-orderness bound of the metrics watermark"),
     ALLOWED_LATENESS_MS.with_doc("allowed lateness of the metrics windows"), SHARDS),
)
QUICKSTART = Quickstart.of("mixed")
"""How to make input for it and run it."""
EXAMPLE_OUTPUT = {"event_id": "e00001502", "user_id": "u00095", "event_type": "purchase",
                  "timestamp": 1704067500885, "category": "books", "amount": 28.39, "is_high_value": False,
                  "event_date": "2024-01-01"}
"""A real output record (of the generator's events)."""


@dataclass(frozen=True)
class Invalid:
    """An event that broke a business rule."""

    reason: str
    detail: str
    event: Event


class Validator:
    """The business rules and the enrichment of valid events."""

    def __init__(self, known_types: frozenset[str], high_value: float) -> None:
        if not known_types:
            raise ValueError("KNOWN_EVENT_TYPES must name at least one event type")
        self.known_types = known_types
        self.high_value = high_value

    def check(self, event: Event) -> Union[Event, Invalid]:
        if event.event_type not in self.known_types:
            return Invalid("unknown_event_type", f"event type {event.event_type!r} is not known", event)
        amount = event.amount
        if amount is not None and amount < 0:
            return Invalid("negative_amount", f"amount {amount!r} is negative", event)
        if amount is None and event.event_type == "purchase":
            return Invalid("missing_amount", "a purchase must have an amount", event)
        return event

    def is_high_value(self, event: Event) -> bool:
        return event.event_type == "purchase" and event.amount is not None and event.amount >= self.high_value

    def enriched(self, event: Event) -> dict[str, Any]:
        day = datetime.fromtimestamp(event.timestamp // 1000, timezone.utc).date().isoformat()
        return {**event.to_dict(), "is_high_value": self.is_high_value(event), "event_date": day}

    def audit(self, event: Event) -> Optional[dict[str, Any]]:
        reasons = []
        if self.is_high_value(event):
            reasons.append("high_value_purchase")
        if event.user_type == "admin":
            reasons.append("admin_action")
        if not reasons:
            return None
        return {**event.to_dict(), "audit_reasons": reasons}


def invalid_record(invalid: Invalid) -> dict[str, Any]:
    return {"error": invalid.reason, "detail": invalid.detail, "event": invalid.event.to_dict()}


def dead_letter_record(letter: DeadLetter) -> dict[str, Any]:
    return {"error": "undecodable", "detail": letter.message, "source": letter.source,
            "partition": letter.partition, "offset": letter.offset}


def metrics_record(item: tuple[str, WindowResult]) -> dict[str, Any]:
    event_type, r = item
    return {"event_type": event_type, "window_start": r.window_start, "window_end": r.window_end,
            "count": r.value, "is_late_update": r.is_late_update, "supersedes": r.supersedes}


@exits_on_configuration_error
def build(**overrides: Any) -> Dataflow:
    """The flow, configured by `SETTINGS` from the environment and
    `overrides` (their lower-case names)."""
    s, cfg = configure(SETTINGS, overrides)
    known = frozenset(t.strip() for t in s["known_event_types"].split(",") if t.strip())
    validator = Validator(known, s["high_value_threshold"])
    bound = s["watermark_bound_ms"]

    flow = Dataflow("multi_output")
    src = read_events(flow, "read", cfg)
    checked = op.branch("valid", op.map("validate", src.events, validator.check), lambda x: x.__class__ is Event)
    valid = checked.trues

    unencodable = [write_output("out", op.map("enrich", valid, validator.enriched), cfg, key_of=lambda r: r["user_id"])]
    unencodable += [write_json("audit", op.filter_map("audited", valid, validator.audit), cfg,
                               cfg.side_output("audit", s, "audit"), key_of=lambda r: r["user_id"])]
    errors = op.merge("errors", op.map("invalid", checked.falses, invalid_record),
                      op.map("undecodable", src.errors, dead_letter_record))
    unencodable += [write_json("errors_out", errors, cfg, cfg.side_output("errors", s, "errors"),
                               key_of=lambda r: r["event"]["user_id"] if "event" in r else None)]

    counts = window(
        "per_minute",
        key_by("by_type", valid, attrgetter("event_type")),
        assigner=TumblingEventTimeWindows(s["metrics_window_ms"]),
        allowed_lateness_ms=s["allowed_lateness_ms"],
        aggregate=Aggregate.count(),
        timestamp_of=attrgetter("timestamp"),
        watermarks=lambda: BoundedOutOfOrderness(bound),
        partition_of=attrgetter("channel"),
        expected_channels=src.channels,
        shards=s["shards"],
    )
    unencodable += [
        write_json("metrics_out", op.map("metrics", counts.down, metrics_record), cfg,
                   cfg.side_output("metrics", s, "metrics", path_var="METRICS_OUTPUT_PATH"),
                   key_of=lambda r: r["event_type"]),
        write_late("late", op.map("late_events", counts.late, lambda kv: kv[1]), cfg),
    ]
    write_dead_letters("dlq", src.errors, cfg, *unencodable)
    return flow


__getattr__ = lazy_flow(build)
