"""flows.multi_output: every output against the documented rules applied to
the input in plain Python (metrics through the brute-force window reference)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bytewax.testing import run_main

from eventio import generators
from eventio.broker import EmbeddedBroker
from eventio.demo import read_topic
from flows.multi_output import build
from tests.windowing_reference import Reference, Spec
from tests.flow_files import read_jsonl

MINUTE = 60_000
KNOWN = {"page_view", "click", "add_to_cart", "purchase", "login", "logout", "idle", "transaction", "role_change"}
GARBAGE = ["{oops", '{"event_id": "x"}']


def error_of(e: dict[str, Any]) -> str | None:
    if e["event_type"] not in KNOWN:
        return "unknown_event_type"
    if e.get("amount") is not None and e["amount"] < 0:
        return "negative_amount"
    if e["event_type"] == "purchase" and e.get("amount") is None:
        return "missing_amount"
    return None


def expected(events: list[dict[str, Any]], threshold: float = 1000.0) -> dict[str, Any]:
    valid = [e for e in events if error_of(e) is None]
    main = []
    audit = []
    for e in valid:
        high = e["event_type"] == "purchase" and e["amount"] >= threshold
        day = datetime.fromtimestamp(e["timestamp"] / 1000, timezone.utc).strftime("%Y-%m-%d")
        main.append({**e, "is_high_value": high, "event_date": day})
        reasons = (["high_value_purchase"] if high else []) + (["admin_action"] if e.get("user_type") == "admin" else [])
        if reasons:
            audit.append({**e, "audit_reasons": reasons})
    errors = [(error_of(e), e["event_id"]) for e in events if error_of(e) is not None]
    spec = Spec(kind="tumbling", size=MINUTE, bound=2 * MINUTE, evaluate=len)
    firings, late = Reference(spec).run([(e["event_type"], e["timestamp"], e["event_id"], 0) for e in valid])
    per_minute = sorted((k, s, e, n, bool(sup), [list(w) for w in sup]) for k, s, e, n, sup, _ in firings)
    return {"main": main, "audit": audit, "errors": sorted(errors), "metrics": per_minute,
            "late": sorted(v for _, v in late)}


def _metrics(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((r["event_type"], r["window_start"], r["window_end"], r["count"], r["is_late_update"], r["supersedes"])
                  for r in records)


def _errors(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((r["error"], r["event"]["event_id"]) for r in records if "event" in r)


def test_files_every_output(tmp_path: Path) -> None:
    events = list(generators.disorder(generators.mixed(5000, seed=3), seed=3, bound_ms=MINUTE,
                                      late_fraction=0.02, late_by_ms=10 * MINUTE))
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events) + "\n".join(GARBAGE) + "\n")
    names = ("output", "errors", "audit", "metrics_output", "late_output", "error_output")
    paths = {n: tmp_path / f"{n}.jsonl" for n in names}
    run_main(build(input_path=str(tmp_path / "in.jsonl"), **{f"{n}_path": str(p) for n, p in paths.items()}))
    got = {n: read_jsonl(p) for n, p in paths.items()}
    want = expected(events)
    assert got["output"] == want["main"]  # one file, one worker: input order
    assert got["audit"] == want["audit"]
    assert _errors(got["errors"]) == want["errors"]
    undecodable = [r for r in got["errors"] if "event" not in r]
    assert [(r["error"], r["offset"]) for r in undecodable] == [("undecodable", len(events) + 1),
                                                              ("undecodable", len(events) + 2)]
    assert [d["payload"] for d in got["error_output"]] == GARBAGE
    assert _metrics(got["metrics_output"]) == want["metrics"]
    assert sorted(e["event_id"] for e in got["late_output"]) == want["late"]
    reasons = Counter(r for r, _ in want["errors"])
    assert set(reasons) == {"unknown_event_type", "negative_amount"} and want["late"]
    assert {tuple(a["audit_reasons"]) for a in want["audit"]} >= {("high_value_purchase",), ("admin_action",)}


def test_rules_are_configurable(tmp_path: Path) -> None:
    events = [
        {"event_id": "a", "user_id": "u", "event_type": "purchase", "timestamp": 0, "amount": 50.0},
        {"event_id": "b", "user_id": "u", "event_type": "teleport", "timestamp": 1},
        {"event_id": "c", "user_id": "u", "event_type": "purchase", "timestamp": 2},
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    paths = {n: tmp_path / f"{n}.jsonl" for n in ("output", "errors", "audit", "metrics_output", "error_output")}
    run_main(build(input_path=str(tmp_path / "in.jsonl"), known_event_types="purchase,teleport",
                   high_value_threshold=40.0, **{f"{n}_path": str(p) for n, p in paths.items()}))
    assert [r["event_id"] for r in read_jsonl(paths["output"])] == ["a", "b"]
    assert [r["audit_reasons"] for r in read_jsonl(paths["audit"])] == [["high_value_purchase"]]
    assert _errors(read_jsonl(paths["errors"])) == [("missing_amount", "c")]


def test_kafka_to_kafka_topics(broker: EmbeddedBroker, topic_name: str) -> None:
    events = list(generators.mixed(3000, seed=8))
    t = {k: f"{topic_name}-{k}" for k in ("in", "out", "errors", "audit", "metrics", "late", "dlq")}
    broker.create_topics({t["in"]: 2, **{t[k]: 1 for k in t if k != "in"}})
    generators.write_records(events, None, t["in"], broker.bootstrap_servers)
    run_main(build(kafka_bootstrap_servers=broker.bootstrap_servers, input_topic=t["in"], output_topic=t["out"],
                   errors_topic=t["errors"], audit_topic=t["audit"], metrics_topic=t["metrics"],
                   late_topic=t["late"], dlq_topic=t["dlq"], stop_at_end=True))
    got = {k: [(key, json.loads(v)) for key, v in read_topic(broker.bootstrap_servers, t[k])]
           for k in ("out", "errors", "audit", "metrics")}
    want = expected(events)
    by_id = lambda rs: sorted(rs, key=lambda r: r["event_id"])  # noqa: E731
    assert by_id([r for _, r in got["out"]]) == by_id(want["main"])
    assert by_id([r for _, r in got["audit"]]) == by_id(want["audit"])
    assert _errors([r for _, r in got["errors"]]) == want["errors"]
    assert _metrics([r for _, r in got["metrics"]]) == want["metrics"]
    assert all(k == r["user_id"].encode() for k, r in got["out"] + got["audit"])
    assert all(k == r["event_type"].encode() for k, r in got["metrics"])
    assert read_topic(broker.bootstrap_servers, t["late"]) == []


def test_with_only_the_io_variables_side_outputs_go_next_to_the_results(tmp_path: Path) -> None:
    events = list(generators.mixed(1500, seed=6))
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    run_main(build(input_path=str(tmp_path / "in.jsonl"), output_path=str(tmp_path / "out.jsonl"),
                   late_output_path=str(tmp_path / "late.jsonl"), error_output_path=str(tmp_path / "dlq.jsonl")))
    want = expected(events)
    assert read_jsonl(tmp_path / "out.jsonl") == want["main"]
    assert read_jsonl(tmp_path / "out.audit.jsonl") == want["audit"]
    assert _errors(read_jsonl(tmp_path / "out.errors.jsonl")) == want["errors"]
    assert _metrics(read_jsonl(tmp_path / "out.metrics.jsonl")) == want["metrics"]
