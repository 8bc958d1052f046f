"""flows.fraud_detection against an independent brute-force detector."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from bytewax.testing import run_main

from eventio import generators
from eventio.broker import EmbeddedBroker
from eventio.demo import read_topic
from flows.fraud_detection import build
from tests.killed_runs import run_killed_and_resumed
from tests.flow_files import read_jsonl, run_on_files

MINUTE = 60_000
T0 = generators.BASE_TS


def brute_force(events: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(user, login id, transaction id) for each suspicious login whose very
    next event of the user (timestamp order, ties by arrival) is a transaction
    over 10,000 less than 10 minutes later."""
    by_user: dict[str, list[tuple[int, int, dict[str, Any]]]] = defaultdict(list)
    for i, e in enumerate(events):
        by_user[e["user_id"]].append((e["timestamp"], i, e))
    found = set()
    for user, evs in by_user.items():
        evs.sort(key=lambda t: (t[0], t[1]))
        seen: set[str] = set()
        for k, (_, _, e) in enumerate(evs):
            loc = e.get("location")
            suspicious = e["event_type"] == "login" and (
                (loc is not None and loc not in seen) or (e.get("failed_attempts") or 0) > 0)
            if loc is not None:
                seen.add(loc)
            if suspicious and k + 1 < len(evs):
                nxt = evs[k + 1][2]
                if (nxt["event_type"] == "transaction" and (nxt.get("amount") or 0) > 10_000
                        and nxt["timestamp"] < e["timestamp"] + 10 * MINUTE):
                    found.add((user, e["event_id"], nxt["event_id"]))
    return found


def _run(tmp_path: Path, events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return run_on_files(build, tmp_path, map(json.dumps, events))


def _alerts(records: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(a["user_id"], a["login_event_id"], a["transaction_event_id"]) for a in records}


def test_the_generators_planted_frauds_raise_exactly_their_alerts(tmp_path: Path) -> None:
    events, planted = generators.fraud(8000, seed=17)
    out = _run(tmp_path, events)
    want = {(p["user_id"], p["login_event_id"], p["transaction_event_id"]) for p in planted}
    assert _alerts(out["output"]) == want == brute_force(events)
    assert len(out["output"]) == len(want)
    by_id = {e["event_id"]: e for e in events}
    for a in out["output"]:
        tx, login = by_id[a["transaction_event_id"]], by_id[a["login_event_id"]]
        assert (a["amount"], a["login_timestamp"], a["transaction_timestamp"]) == (
            tx["amount"], login["timestamp"], tx["timestamp"])


def test_the_seed_scenario(tmp_path: Path) -> None:
    def ev(n: int, user: str, kind: str, minute: float, **kw: Any) -> dict[str, Any]:
        return {"event_id": f"e{n}", "user_id": user, "event_type": kind,
                "timestamp": T0 + int(minute * MINUTE), **kw}

    events = [
        ev(1, "alice", "login", 0, location="berlin"),                      # first login: new location
        ev(2, "alice", "transaction", 5, amount=15_000.0),                  # -> alert (e1, e2)
        ev(3, "bob", "login", 0, location="paris", failed_attempts=0),
        ev(4, "bob", "transaction", 1, amount=50.0),
        ev(5, "bob", "login", 30, location="paris", failed_attempts=0),     # known place, no failures
        ev(6, "bob", "transaction", 31, amount=20_000.0),                   # -> no alert
        ev(7, "carol", "login", 0, location="rome"),
        ev(8, "carol", "transaction", 1, amount=100.0),                     # breaks strict contiguity
        ev(9, "carol", "transaction", 2, amount=30_000.0),                  # -> no alert
        ev(10, "dave", "login", 0, location="oslo"),
        ev(11, "dave", "transaction", 10, amount=30_000.0),                 # exactly 10 min: expired
        ev(12, "erin", "login", 0, location="lima"),
        ev(13, "erin", "login", 20, location="lima", failed_attempts=3),    # failed attempts
        ev(14, "erin", "transaction", 29.99, amount=10_000.01),             # -> alert (e13, e14)
        ev(15, "erin", "transaction", 60, amount=10_000.0),                 # not above 10,000
    ]
    events.sort(key=lambda e: e["timestamp"])
    out = _run(tmp_path, events)
    assert _alerts(out["output"]) == {("alice", "e1", "e2"), ("erin", "e13", "e14")} == brute_force(events)


def test_out_of_order_within_the_bound_gives_the_same_alerts(tmp_path: Path) -> None:
    events, _ = generators.fraud(6000, seed=23)
    shuffled = list(generators.disorder(events, seed=23, bound_ms=MINUTE, late_fraction=0.0))
    assert shuffled != events
    out = _run(tmp_path, shuffled)
    assert _alerts(out["output"]) == brute_force(events)
    assert out["late_output"] == []


def test_location_history_survives_kill_and_resume(tmp_path: Path) -> None:
    events, planted = generators.fraud(400_000, seed=31, users=400, frauds=150)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps(e) + "\n" for e in events))
    kills = run_killed_and_resumed("fraud_detection", tmp_path, seed=2, attempts=5)
    assert kills >= 1
    alerts = read_jsonl(out)
    assert _alerts(alerts) == brute_force(events) == {
        (p["user_id"], p["login_event_id"], p["transaction_event_id"]) for p in planted}
    assert len(alerts) == len(planted), "the file sink truncates to the snapshot on resume: no duplicates"


def test_kafka_to_kafka(broker: EmbeddedBroker, topic_name: str) -> None:
    events, planted = generators.fraud(5000, seed=5)
    t = {k: f"{topic_name}-{k}" for k in ("in", "out", "late", "dlq")}
    broker.create_topics({t["in"]: 3, t["out"]: 1, t["late"]: 1, t["dlq"]: 1})
    generators.write_records(events, None, t["in"], broker.bootstrap_servers)
    run_main(build(kafka_bootstrap_servers=broker.bootstrap_servers, input_topic=t["in"], output_topic=t["out"],
                   late_topic=t["late"], dlq_topic=t["dlq"], stop_at_end=True))
    alerts = [json.loads(v) for _, v in read_topic(broker.bootstrap_servers, t["out"])]
    assert _alerts(alerts) == brute_force(events)
    assert len(alerts) == len(planted)
