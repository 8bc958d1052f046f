"""ML features: per-user activity features over sliding windows, enriched
with purchase history and scored by a pluggable model.

1. **activity** — key `user_id`; sliding event-time windows of `WINDOW_MS`
   (1 h) every `SLIDE_MS` (5 min); watermark bound 2 min; events too late
   for all their windows go to the late output. Features of a window:
   `events` (all events), `page_views`, `clicks`, `add_to_carts`,
   `purchases` (events of those types), `spend` (sum of the purchases'
   `amount`; a purchase without one adds 0), `distinct_categories` (distinct
   `category` values), `sessions` (runs of events with no gap longer than
   `SESSION_GAP_MS`, 30 min).
2. **history** — a keyed co-process (`operators/joins/wiring.py: co_process`) of the
   window results with the user's events keeps each user's lifetime
   purchase count and spend. A window ending at `window_end` is enriched
   with `lifetime_purchases` / `lifetime_spend`: the user's purchases with a
   timestamp before `window_end` (those of the window included). The
   co-process waits for the watermark of both inputs to pass the window's
   end, so every on-time purchase before it is counted and none after it.
   A purchase arriving behind that watermark is counted from the next
   window on.
3. **score** — the model scores the features. The default is a logistic
   regression `1 / (1 + exp(-(intercept + sum(coefficient * feature))))`
   whose `intercept` and `coefficients` (by feature name; a missing one is 0)
   come from the JSON file `MODEL_PATH`; `build(model=...)` takes any object
   with `score(features: Mapping[str, float]) -> float`.

One output per window: `{"user_id", "window_end", "events", "page_views",
"clicks", "add_to_carts", "purchases", "spend", "distinct_categories",
"sessions", "lifetime_purchases", "lifetime_spend", "score"}` (amounts
rounded to cents; the score is computed from the values as written). The
windows have no allowed lateness, so each fires once, on time: no record
replaces another, and the records carry no `supersedes`.

    python -m bytewax.run flows.ml_features:flow
"""

from __future__ import annotations

import json
import math
from operator import attrgetter
from pathlib import Path
from typing import Any, Mapping, Protocol, Union

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from eventio.bytewax_run import exits_on_configuration_error, lazy_flow
from eventio.event import Event
from eventio.flow_setup import IDLE_TIMEOUT_MS, SHARDS, SHARED_SETTINGS, WATERMARK_BOUND_MS, configure
from eventio.flowio import read_events, write_dead_letters, write_late, write_output
from eventio.settings import TEXT, ConfigurationError, FlowSettings, Setting, integer
from flows import Quickstart
from operators import (
    AggregateFunction,
    BoundedOutOfOrderness,
    Collector,
    Context,
    KeyedCoProcessFunction,
    MIN_WATERMARK,
    SlidingEventTimeWindows,
    WindowResult,
    co_process,
    key_by,
    window,
)

MINUTE = 60_000
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "config" / "ml_model.json"
COUNTED_TYPES = {"page_view": "page_views", "click": "clicks", "add_to_cart": "add_to_carts", "purchase": "purchases"}
WINDOW_FEATURES = ("events", "page_views", "clicks", "add_to_carts", "purchases", "spend",
                   "distinct_categories", "sessions")
FEATURES = WINDOW_FEATURES + ("lifetime_purchases", "lifetime_spend")


class Model(Protocol):
    """Anything that scores a feature vector."""

    def score(self, features: Mapping[str, float]) -> float: ...


class ModelError(ConfigurationError):
    """A model configuration that cannot be used; the message says why."""


class LogisticModel:
    """Logistic regression over named features."""

    def __init__(self, intercept: float, coefficients: Mapping[str, float]) -> None:
        unknown = sorted(set(coefficients) - set(FEATURES))
        if unknown:
            raise ModelError(f"coefficients for unknown features {unknown}; features are {list(FEATURES)}")
        for name, value in [("intercept", intercept), *coefficients.items()]:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ModelError(f"{name} must be a finite number, got {value!r}")
        self.intercept = float(intercept)
        self.weights = [(name, float(w)) for name, w in coefficients.items() if w]

    @classmethod
    def from_file(cls, path: Union[str, Path]) -> "LogisticModel":
        """Read `{"intercept": b, "coefficients": {feature: w, ...}}`."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as ex:
            raise ModelError(f"cannot read the model {path}: {ex}") from ex
        if not isinstance(data, dict) or not isinstance(data.get("coefficients"), dict):
            raise ModelError(f"{path}: expected an object with \"intercept\" and \"coefficients\"")
        try:
            return cls(data.get("intercept", 0.0), data["coefficients"])
        except ModelError as ex:
            raise ModelError(f"{path}: {ex}") from ex

    def score(self, features: Mapping[str, float]) -> float:
        x = self.intercept + sum(w * features[name] for name, w in self.weights)
        if x >= 0:
            return 1.0 / (1.0 + math.exp(-x))
        e = math.exp(x)
        return e / (1.0 + e)


class ActivityFeatures(AggregateFunction[Event, list, dict[str, float]]):
    """[counts by feature, spend, categories, timestamps] -> window features."""

    def __init__(self, session_gap_ms: int) -> None:
        if session_gap_ms <= 0:
            raise ValueError(f"SESSION_GAP_MS must be > 0, got {session_gap_ms}")
        self.session_gap_ms = session_gap_ms

    def create(self) -> list:
        return [dict.fromkeys(COUNTED_TYPES.values(), 0), 0.0, set(), []]

    def add(self, acc: list, event: Event) -> list:
        feature = COUNTED_TYPES.get(event.event_type)
        if feature is not None:
            acc[0][feature] += 1
            if feature == "purchases" and event.amount is not None:
                acc[1] += event.amount
        if event.category is not None:
            acc[2].add(event.category)
        acc[3].append(event.timestamp)
        return acc

    def result(self, acc: list) -> dict[str, float]:
        stamps = sorted(acc[3])
        gap = self.session_gap_ms
        sessions = 1 + sum(1 for a, b in zip(stamps, stamps[1:]) if b - a > gap)
        return {"events": len(stamps), **acc[0], "spend": acc[1], "distinct_categories": len(acc[2]),
                "sessions": sessions}


class PurchaseHistory(KeyedCoProcessFunction[WindowResult, Event]):
    """Enriches window results (left) with the user's lifetime purchases
    (from the events, right) before each window's end; see the module
    docstring. State per user: `count`/`spend` folded up to `upto`,
    `pending` purchases after it, `rows` waiting for the watermark."""

    def process_element1(self, value: WindowResult, ctx: Context, out: Collector) -> None:
        if ctx.timestamp <= ctx.timer_service.current_watermark():
            self._emit(value, ctx, out)
            return
        ctx.state.setdefault("rows", []).append(value)
        ctx.timer_service.register_event_time_timer(ctx.timestamp)

    def process_element2(self, value: Event, ctx: Context, out: Collector) -> None:
        if value.event_type != "purchase":
            return
        state = ctx.state
        amount = value.amount or 0.0
        if value.timestamp <= state.get("upto", MIN_WATERMARK):
            state["count"] = state.get("count", 0) + 1
            state["spend"] = state.get("spend", 0.0) + amount
        else:
            state.setdefault("pending", []).append((value.timestamp, amount))

    def on_timer(self, timestamp: int, ctx: Context, out: Collector) -> None:
        state = ctx.state
        rows = state.pop("rows", [])
        waiting = []
        for row in rows:
            if row.window_end - 1 <= timestamp:
                self._emit(row, ctx, out)
            else:
                waiting.append(row)
        if waiting:
            state["rows"] = waiting

    def _emit(self, row: WindowResult, ctx: Context, out: Collector) -> None:
        state = ctx.state
        until = row.window_end - 1
        count, spend = state.get("count", 0), state.get("spend", 0.0)
        pending = state.pop("pending", None)
        if pending:
            later = []
            for ts, amount in pending:
                if ts <= until:
                    count += 1
                    spend += amount
                else:
                    later.append((ts, amount))
            if later:
                state["pending"] = later
        state["count"], state["spend"] = count, spend
        state["upto"] = max(state.get("upto", MIN_WATERMARK), until)
        out.collect((row, count, spend))


def scored_record(model: Model) -> Any:
    """The output record of one enriched window."""

    def record(item: tuple[str, tuple[WindowResult, int, float]]) -> dict[str, Any]:
        user, (row, count, spend) = item
        features = dict(row.value)
        features["spend"] = round(features["spend"], 2)
        features["lifetime_purchases"] = count
        features["lifetime_spend"] = round(spend, 2)
        return {"user_id": user, "window_end": row.window_end, **features, "score": model.score(features)}

    return record


_MS = integer(1, unit="milliseconds")
SETTINGS = FlowSettings(
    "ml_features",
    SHARED_SETTINGS,
    (Setting("MODEL_PATH", TEXT, "flows/config/ml_model.json",
             "logistic-regression coefficients (JSON); the default is the one shipped with the flow"),
     Setting("WINDOW_MS", _MS, 60 * MINUTE, "feature window size"),
     Setting("SLIDE_MS", _MS, 5 * MINUTE, "feature window slide"),
     Setting("SESSION_GAP_MS", _MS, 30 * MINUTE, "inactivity that separates sessions within a window"),
     WATERMARK_BOUND_MS.with_default(2 * MINUTE),
     IDLE_TIMEOUT_MS.with_doc("input partitions (and the window results, an input of the co-process) silent this "
                              "long stop holding the watermark of the activity windows and of the history "
                              "co-process; a purchase then arriving behind it is counted from the next window on; "
                              "0: never"),
     SHARDS),
)
QUICKSTART = Quickstart.of("shoppers")
"""How to make input for it and run it."""
EXAMPLE_OUTPUT = {"user_id": "u00169", "window_end": 1704075600000, "events": 3, "page_views": 0, "clicks": 2,
                  "add_to_carts": 0, "purchases": 0, "spend": 0.0, "distinct_categories": 3, "sessions": 1,
                  "lifetime_purchases": 0, "lifetime_spend": 0.0, "score": 0.02253263945644731}
"""A real output record (of the generator's events)."""


@exits_on_configuration_error
def build(**overrides: Any) -> Dataflow:
    """The flow, configured by `SETTINGS` from the environment and
    `overrides` (their lower-case names, and `model`: any object with
    `score(features)`, instead of `MODEL_PATH`)."""
    s, cfg = configure(SETTINGS, overrides, extra=("model",))
    path = DEFAULT_MODEL_PATH if s["model_path"] == SETTINGS["model_path"].default else s["model_path"]
    model: Model = overrides.get("model") or LogisticModel.from_file(path)
    if not callable(getattr(model, "score", None)):
        raise ModelError(f"model must have a score(features) method, got {model!r}")
    bound, idle, shards = s["watermark_bound_ms"], s["idle_timeout_ms"] or None, s["shards"]

    flow = Dataflow("ml_features")
    src = read_events(flow, "read", cfg)
    by_user = key_by("by_user", src.events, attrgetter("user_id"))
    activity = window(
        "activity",
        by_user,
        assigner=SlidingEventTimeWindows(s["window_ms"], s["slide_ms"]),
        aggregate=ActivityFeatures(s["session_gap_ms"]),
        timestamp_of=attrgetter("timestamp"),
        watermarks=lambda: BoundedOutOfOrderness(bound),
        partition_of=attrgetter("channel"),
        expected_channels=src.channels,
        idle_timeout_ms=idle,
        shards=shards,
    )
    enriched = co_process(
        "history",
        activity.down,
        by_user,
        function=PurchaseHistory(),
        timestamp_of=(lambda r: r.window_end - 1, attrgetter("timestamp")),
        watermarks=(lambda: BoundedOutOfOrderness(0), lambda: BoundedOutOfOrderness(bound)),
        partition_of=lambda v: v.channel if v.__class__ is Event else "windows",
        expected_channels=(1, src.channels),
        idle_timeout_ms=idle,
        shards=shards,
    )
    unencodable = [
        write_output("out", op.map("score", enriched.down, scored_record(model)), cfg, key_of=lambda r: r["user_id"]),
        write_late("late", op.map("late_events", activity.late, lambda kv: kv[1]), cfg),
    ]
    write_dead_letters("dlq", src.errors, cfg, *unencodable)
    return flow


__getattr__ = lazy_flow(build)
