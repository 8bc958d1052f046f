"""flows.ml_features: features, purchase history and scores against plain
Python over the input (windows from the brute-force window reference)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from bytewax.testing import run_main

from eventio import generators
from eventio.broker import EmbeddedBroker
from eventio.demo import read_topic
from flows.ml_features import DEFAULT_MODEL_PATH, ModelError, build
from tests.windowing_reference import Reference, Spec
from tests.flow_files import run_on_files

MINUTE = 60_000
HOUR = 60 * MINUTE
TYPES = {"page_view": "page_views", "click": "clicks", "add_to_cart": "add_to_carts", "purchase": "purchases"}


def window_features(events: list[dict[str, Any]]) -> dict[str, Any]:
    stamps = sorted(e["timestamp"] for e in events)
    sessions = 1 + sum(1 for i in range(1, len(stamps)) if stamps[i] - stamps[i - 1] > 30 * MINUTE)
    out: dict[str, Any] = {"events": len(events)}
    for kind, name in TYPES.items():
        out[name] = sum(1 for e in events if e["event_type"] == kind)
    out["spend"] = round(sum(e.get("amount", 0.0) for e in events if e["event_type"] == "purchase"), 2)
    out["distinct_categories"] = len({e["category"] for e in events if "category" in e})
    out["sessions"] = sessions
    return out


def logistic(model: dict[str, Any], features: dict[str, Any]) -> float:
    x = model["intercept"] + sum(w * features[name] for name, w in model["coefficients"].items())
    return 1 / (1 + math.exp(-x))


def expected(events: list[dict[str, Any]], model_path: Path = DEFAULT_MODEL_PATH) -> tuple[list[dict[str, Any]], list[str]]:
    """One record per firing of every (user, sliding window), its lifetime
    purchases being all the user's purchases before the window's end."""
    model = json.loads(model_path.read_text())
    spec = Spec(kind="sliding", size=HOUR, slide=5 * MINUTE, bound=2 * MINUTE, evaluate=window_features)
    firings, late = Reference(spec).run([(e["user_id"], e["timestamp"], e, 0) for e in events])
    late_ids = {v["event_id"] for _, v in late}
    purchases = [e for e in events if e["event_type"] == "purchase" and e["event_id"] not in late_ids]
    records = []
    for user, _, end, features, _, _ in firings:
        mine = [p for p in purchases if p["user_id"] == user and p["timestamp"] < end]
        f = {**features, "lifetime_purchases": len(mine),
             "lifetime_spend": round(sum(p.get("amount", 0.0) for p in mine), 2)}
        records.append({"user_id": user, "window_end": end, **f, "score": logistic(model, f)})
    return records, sorted(late_ids)


def same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    key = lambda r: (r["user_id"], r["window_end"])  # noqa: E731
    got, want = sorted(got, key=key), sorted(want, key=key)
    assert [{k: v for k, v in r.items() if k not in ("score", "spend", "lifetime_spend")} for r in got] == [
        {k: v for k, v in r.items() if k not in ("score", "spend", "lifetime_spend")} for r in want]
    for g, w in zip(got, want):
        assert g["spend"] == pytest.approx(w["spend"], abs=0.011)
        assert g["lifetime_spend"] == pytest.approx(w["lifetime_spend"], abs=0.011)
        assert g["score"] == pytest.approx(logistic(json.loads(DEFAULT_MODEL_PATH.read_text()), g), rel=1e-12)
        assert g["score"] == pytest.approx(w["score"], rel=1e-4)


def _run(tmp_path: Path, events: list[dict[str, Any]], **extra: Any) -> dict[str, list[dict[str, Any]]]:
    return run_on_files(build, tmp_path, map(json.dumps, events), **extra)


def test_features_history_and_scores_from_out_of_order_input(tmp_path: Path) -> None:
    events = list(generators.disorder(generators.shoppers(2500, seed=3, users=30), seed=3,
                                      bound_ms=MINUTE, late_fraction=0.0))
    out = _run(tmp_path, events)
    want, late = expected(events)
    same(out["output"], want)
    assert late == [] and out["late_output"] == [] and out["error_output"] == []
    assert max(r["lifetime_purchases"] for r in want) > max(r["purchases"] for r in want)
    assert max(r["sessions"] for r in want) > 1


def test_late_events_are_routed_and_leave_the_windows(tmp_path: Path) -> None:
    """Events late for every window they belong to are not in any window's
    features; the lifetime history is not checked here (a late purchase
    counts from whichever window is enriched after it arrives)."""
    events = list(generators.disorder(generators.shoppers(2000, seed=5, users=25), seed=5,
                                      bound_ms=MINUTE, late_fraction=0.03, late_by_ms=2 * HOUR))
    out = _run(tmp_path, events)
    want, late = expected(events)
    strip = lambda rs: sorted(({k: r[k] for k in ("user_id", "window_end", "events", "page_views", "clicks",  # noqa: E731
                                                  "add_to_carts", "purchases", "distinct_categories", "sessions")}
                               for r in rs), key=lambda r: (r["user_id"], r["window_end"]))
    assert strip(out["output"]) == strip(want)
    assert sorted(e["event_id"] for e in out["late_output"]) == late and late


def test_a_model_from_model_path_and_a_pluggable_model(tmp_path: Path) -> None:
    events = list(generators.shoppers(600, seed=2, users=10))
    custom = tmp_path / "model.json"
    custom.write_text(json.dumps({"intercept": 0.5, "coefficients": {"purchases": 1.0, "lifetime_spend": -0.01}}))
    (tmp_path / "a").mkdir()
    out = _run(tmp_path / "a", events, model_path=str(custom))["output"]
    assert out and all(r["score"] == pytest.approx(logistic(json.loads(custom.read_text()), r)) for r in out)

    class Purchases:
        def score(self, features: Any) -> float:
            return float(features["purchases"])

    (tmp_path / "b").mkdir()
    out = _run(tmp_path / "b", events, model=Purchases())["output"]
    assert out and all(r["score"] == r["purchases"] for r in out)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read the model"),
        (json.dumps({"intercept": 1}), "coefficients"),
        (json.dumps({"intercept": 1, "coefficients": {"height": 2}}), "unknown features"),
        (json.dumps({"intercept": "high", "coefficients": {}}), "intercept must be a finite number"),
    ],
)
def test_a_bad_model_file_is_refused_at_build_time(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "model.json"
    path.write_text(content)
    with pytest.raises(ModelError, match=message):
        build(input_path=__file__, model_path=str(path))


def test_kafka_to_kafka(broker: EmbeddedBroker, topic_name: str) -> None:
    events = list(generators.shoppers(2000, seed=8, users=25))
    t = {k: f"{topic_name}-{k}" for k in ("in", "out", "late", "dlq")}
    broker.create_topics({t["in"]: 2, t["out"]: 1, t["late"]: 1, t["dlq"]: 1})
    generators.write_records(events, None, t["in"], broker.bootstrap_servers)
    run_main(build(kafka_bootstrap_servers=broker.bootstrap_servers, input_topic=t["in"], output_topic=t["out"],
                   late_topic=t["late"], dlq_topic=t["dlq"], stop_at_end=True))
    records = read_topic(broker.bootstrap_servers, t["out"])
    same([json.loads(v) for _, v in records], expected(events)[0])
    assert all(k == json.loads(v)["user_id"].encode() for k, v in records)
