"""flows.purchase_correlation against brute-force pair enumeration."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Optional

from bytewax.testing import cluster_main, run_main
from prometheus_client.parser import text_string_to_metric_families

from eventio import generators
from eventio.broker import EmbeddedBroker
from eventio.demo import read_topic
from flows.purchase_correlation import build
from tests.flow_files import read_jsonl

MINUTE = 60_000


def brute_force(actions: list[dict[str, Any]], purchases: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """Every (purchase, action) of one user with p.ts in [a.ts - 5 min, a.ts + 5 min)."""
    return {
        (p["event_id"], p["user_id"], p["amount"], a["event_id"], a["event_type"], a["timestamp"], p["timestamp"])
        for a in actions
        for p in purchases
        if a["user_id"] == p["user_id"] and a["timestamp"] - 5 * MINUTE <= p["timestamp"] < a["timestamp"] + 5 * MINUTE
    }


def _pairs(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    keys = ("purchase_id", "user_id", "amount", "action_event_id", "action_type", "action_timestamp", "purchase_timestamp")
    return [tuple(r[k] for k in keys) for r in records]


def _run(tmp_path: Path, actions: list[dict[str, Any]], purchases: list[dict[str, Any]], workers: int = 1) -> dict[str, list[dict[str, Any]]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    paths = {n: tmp_path / f"{n}.jsonl" for n in ("actions", "purchases", "output", "late_output", "error_output")}
    paths["actions"].write_text("".join(json.dumps(e) + "\n" for e in actions))
    paths["purchases"].write_text("".join(json.dumps(e) + "\n" for e in purchases))
    flow = build(actions_path=str(paths["actions"]), purchases_path=str(paths["purchases"]),
                 **{f"{n}_path": str(paths[n]) for n in ("output", "late_output", "error_output")})
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return {n: read_jsonl(paths[n]) for n in ("output", "late_output", "error_output")}


def test_in_order_inputs_give_exactly_the_brute_force_pairs(tmp_path: Path) -> None:
    actions, purchases = generators.correlated(3000, seed=4, users=80)
    out = _run(tmp_path, actions, purchases)
    pairs = _pairs(out["output"])
    assert len(pairs) == len(set(pairs)), "each pair exactly once"
    assert set(pairs) == brute_force(actions, purchases)
    assert out["late_output"] == [] and out["error_output"] == []


def test_bounds_are_inclusive_below_and_exclusive_above(tmp_path: Path) -> None:
    base = generators.BASE_TS
    action = {"event_id": "a1", "user_id": "u", "event_type": "click", "timestamp": base}
    purchases = [
        {"event_id": f"p{i}", "user_id": "u", "event_type": "purchase", "timestamp": base + d, "amount": 1.0}
        for i, d in enumerate((-5 * MINUTE - 1, -5 * MINUTE, 0, 5 * MINUTE - 1, 5 * MINUTE))
    ]
    out = _run(tmp_path, [action], sorted(purchases, key=lambda p: p["timestamp"]))
    assert sorted(r["purchase_id"] for r in out["output"]) == ["p1", "p2", "p3"]


def test_out_of_order_input_loses_nothing_and_late_elements_are_routed(tmp_path: Path) -> None:
    actions, purchases = generators.correlated(3000, seed=6, users=50)
    actions = list(generators.disorder(actions, seed=6, bound_ms=MINUTE, late_fraction=0.05, late_by_ms=30 * MINUTE))
    out = _run(tmp_path, actions, purchases)
    late_ids = {e["event_id"] for e in out["late_output"]}
    on_time_actions = [a for a in actions if a["event_id"] not in late_ids]
    on_time_purchases = [p for p in purchases if p["event_id"] not in late_ids]
    assert set(_pairs(out["output"])) == brute_force(on_time_actions, on_time_purchases)
    assert len(_pairs(out["output"])) == len(set(_pairs(out["output"])))
    assert late_ids, "events held back 30 min behind a 1 min bound must be late"


def test_two_workers_give_the_same_pairs(tmp_path: Path) -> None:
    actions, purchases = generators.correlated(2000, seed=9, users=40)
    one = _run(tmp_path / "one", actions, purchases)
    two = _run(tmp_path / "two", actions, purchases, workers=2)
    assert sorted(_pairs(one["output"])) == sorted(_pairs(two["output"]))
    assert set(_pairs(two["output"])) == brute_force(actions, purchases)


def test_purchases_without_amount_go_to_the_dead_letter_output(tmp_path: Path) -> None:
    actions, purchases = generators.correlated(200, seed=2, users=5)
    broken = dict(purchases[0])
    del broken["amount"]
    out = _run(tmp_path, actions, [broken] + purchases[1:])
    assert [d["reason"] for d in out["error_output"]] == [
        f"event {broken['event_id']!r} has no 'amount', which this flow requires"
    ]
    assert set(_pairs(out["output"])) == brute_force(actions, purchases[1:])


def test_kafka_inputs_on_the_embedded_broker(broker: EmbeddedBroker, topic_name: str) -> None:
    actions, purchases = generators.correlated(1500, seed=12, users=30)
    t = {k: f"{topic_name}-{k}" for k in ("actions", "purchases", "out", "late", "dlq")}
    broker.create_topics({t["actions"]: 2, t["purchases"]: 2, t["out"]: 1, t["late"]: 1, t["dlq"]: 1})
    generators.write_records(actions, None, t["actions"], broker.bootstrap_servers)
    generators.write_records(purchases, None, t["purchases"], broker.bootstrap_servers)
    run_main(build(kafka_bootstrap_servers=broker.bootstrap_servers, actions_topic=t["actions"],
                   purchases_topic=t["purchases"], output_topic=t["out"], late_topic=t["late"],
                   dlq_topic=t["dlq"], stop_at_end=True))
    records = [json.loads(v) for _, v in read_topic(broker.bootstrap_servers, t["out"])]
    late = {json.loads(v)["event_id"] for _, v in read_topic(broker.bootstrap_servers, t["late"])}
    assert set(_pairs(records)) == brute_force(
        [a for a in actions if a["event_id"] not in late], [p for p in purchases if p["event_id"] not in late]
    )


ROOT = Path(__file__).resolve().parent.parent
ROUND = 3000


def _scrape(port: int, name: str) -> float:
    """The value of the sample `name{step="correlate"}` the flow serves."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("step") == "correlate":
                return sample.value
    return 0.0


def _open_state_per_round(broker: EmbeddedBroker, topic: str, idle_timeout_ms: Optional[int]) -> list[float]:
    """Run the flow on Kafka, tailing: a few purchases at the start, then
    actions in rounds 1 s of event time apart; after each round is read and
    the purchases input has been quiet for over the idle timeout, the join's
    buffered elements (`stream_state_entries`)."""
    t = {k: f"{topic}-{k}" for k in ("actions", "purchases", "out", "late", "dlq")}
    broker.create_topics({name: 1 for name in t.values()})
    base = generators.BASE_TS
    purchases = [{"event_id": f"p{i}", "user_id": f"u{i % 10}", "event_type": "purchase",
                  "timestamp": base + i * 1000, "amount": 1.0} for i in range(20)]
    generators.write_records(purchases, None, t["purchases"], broker.bootstrap_servers)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
           "ACTIONS_TOPIC": t["actions"], "PURCHASES_TOPIC": t["purchases"], "OUTPUT_TOPIC": t["out"],
           "LATE_TOPIC": t["late"], "DLQ_TOPIC": t["dlq"], "METRICS_PORT": str(port), "SHARDS": "4",
           "IDLE_TIMEOUT_MS": str(idle_timeout_ms or 0)}
    flow = subprocess.Popen([sys.executable, "-m", "bytewax.run", "flows.purchase_correlation:flow"], env=env,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    sizes = []
    try:
        for r in range(4):
            actions = [{"event_id": f"a{r}-{i}", "user_id": f"u{i % 10}", "event_type": "click",
                        "timestamp": base + (r * ROUND + i) * 1000} for i in range(ROUND)]
            generators.write_records(actions, None, t["actions"], broker.bootstrap_servers)
            deadline = time.monotonic() + 60
            while True:
                try:
                    if _scrape(port, "stream_events_in_total") >= len(purchases) + (r + 1) * ROUND:
                        break
                except OSError:
                    pass  # not serving yet
                assert flow.poll() is None, "the flow stopped"
                assert time.monotonic() < deadline, "the flow did not read the round in time"
                time.sleep(0.2)
            time.sleep(1.5)
            sizes.append(_scrape(port, "stream_state_entries"))
    finally:
        os.killpg(flow.pid, signal.SIGKILL)
        flow.wait()
    return sizes


def test_join_state_stays_bounded_when_purchases_go_quiet_with_an_idle_timeout(
    broker: EmbeddedBroker, topic_name: str
) -> None:
    """Without a timeout the quiet purchases input holds the watermark where
    it was: every action stays buffered. With `IDLE_TIMEOUT_MS` the purchases
    partition drops out of the watermark and actions are freed once they are
    more than the interval behind: about 5 min + the 2 min bound of actions,
    one a second."""
    held = _open_state_per_round(broker, f"{topic_name}-held", None)
    assert held[-1] >= 4 * ROUND and held == sorted(held)
    bounded = _open_state_per_round(broker, f"{topic_name}-idle", 500)
    assert max(bounded) < 1000, bounded
