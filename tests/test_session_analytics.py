"""flows.session_analytics against the brute-force Flink reference.

Expected outputs are computed by `tests/windowing_reference.py` (Flink's
window-operator rules, written independently of `operators/`) from the same
events, never by the flow's own code.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from bytewax.testing import cluster_main, run_main
from prometheus_client import REGISTRY

from eventio import generators
from eventio.broker import EmbeddedBroker
from eventio.demo import read_topic
from flows.session_analytics import build
from tests.killed_runs import run_killed_and_resumed
from tests.windowing_reference import Reference, Spec
from tests.flow_files import read_jsonl

MINUTE = 60_000
GAPS = {"login": 30 * MINUTE, "purchase": 60 * MINUTE, "page_view": 10 * MINUTE, "idle": 2 * MINUTE}


def _stats(elements: list[tuple[str, float]]) -> tuple[int, int, int, float]:
    return (
        len(elements),
        sum(1 for kind, _ in elements if kind == "page_view"),
        sum(1 for kind, _ in elements if kind == "purchase"),
        round(float(sum(amount for kind, amount in elements if kind == "purchase")), 2),
    )


def simulated(events: list[dict[str, Any]], bound: int = 2 * MINUTE, lateness: int = 5 * MINUTE) -> Reference:
    """The reference simulation, run over `events`."""
    spec = Spec(kind="dynamic", gap_of=lambda v: GAPS.get(v[0], 15 * MINUTE), lateness=lateness,
                bound=bound, evaluate=lambda els: _stats([(kind, amount) for kind, amount, _ in els]))
    stream = [(e["user_id"], e["timestamp"], (e["event_type"], e.get("amount") or 0.0, e["event_id"]), 0)
              for e in events]
    reference = Reference(spec)
    reference.run(stream)
    return reference


def expected(events: list[dict[str, Any]], bound: int = 2 * MINUTE, lateness: int = 5 * MINUTE) -> tuple[Counter, list[str]]:
    """Session records and late event ids, by the reference simulation."""
    reference = simulated(events, bound, lateness)
    firings, late = reference.firings, reference.late
    records = Counter()
    for user, start, end, (count, views, purchases, spent), supersedes, _ in firings:
        records[json.dumps([user, start, end, end - start, count, views, purchases, spent, bool(supersedes),
                            supersedes])] += 1
    return records, sorted(v[2] for _, v in late)


def observed(lines: list[dict[str, Any]]) -> Counter:
    return Counter(
        json.dumps([r["user_id"], r["session_start"], r["session_end"], r["duration_ms"], r["event_count"],
                    r["page_views"], r["purchases"], round(float(r["total_spent"]), 2), r["is_late_update"],
                    r["supersedes"]])
        for r in lines
    )


def _counters() -> dict[str, float]:
    """The window step's metrics, as Prometheus exports them."""
    def get(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    return {
        "firings": get("stream_window_firings_total", step="sessions", late="false"),
        "late_firings": get("stream_window_firings_total", step="sessions", late="true"),
        "very_late": get("stream_records_out_total", step="sessions", port="late"),
        "behind": get("stream_events_behind_watermark_total", step="sessions"),
    }


def _write(path: Path, events: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def _files(tmp_path: Path) -> dict[str, str]:
    return {name: str(tmp_path / f"{name}.jsonl") for name in ("input_path", "output_path", "late_output_path", "error_output_path")}


def test_out_of_order_and_late_events_match_flinks_rules(tmp_path: Path) -> None:
    events = list(generators.disorder(generators.sessions(4000, seed=11, users=40), seed=11,
                                      bound_ms=3 * MINUTE, late_fraction=0.03, late_by_ms=20 * MINUTE))
    paths = _files(tmp_path)
    _write(Path(paths["input_path"]), events)
    before = _counters()
    run_main(build(**paths))
    after = _counters()
    want, want_late = expected(events)
    got = observed(read_jsonl(Path(paths["output_path"])))
    assert got == want
    lines = read_jsonl(Path(paths["output_path"]))
    assert after["late_firings"] - before["late_firings"] == sum(1 for r in lines if r["is_late_update"])
    assert after["firings"] - before["firings"] == sum(1 for r in lines if not r["is_late_update"])
    assert after["very_late"] - before["very_late"] == len(want_late)
    assert after["behind"] - before["behind"] >= len(want_late) + (after["late_firings"] - before["late_firings"])
    assert sum(1 for r in read_jsonl(Path(paths["output_path"])) if r["is_late_update"]) > 0
    assert sorted(e["event_id"] for e in read_jsonl(Path(paths["late_output_path"]))) == want_late
    assert want_late, "the input should contain events beyond the allowed lateness"
    assert read_jsonl(Path(paths["error_output_path"])) == []


def test_a_table_applying_supersedes_holds_every_session_once(tmp_path: Path) -> None:
    """A consumer that deletes the rows a record supersedes and writes the
    record ends with the reference's final sessions, and so counts every
    event that was not late exactly once, also where a late event merged
    sessions that had fired and the merged session fired on time later."""
    events = list(generators.disorder(generators.sessions(4000, seed=11, users=40), seed=11,
                                      bound_ms=3 * MINUTE, late_fraction=0.03, late_by_ms=20 * MINUTE))
    paths = _files(tmp_path)
    _write(Path(paths["input_path"]), events)
    run_main(build(**paths))
    records = read_jsonl(Path(paths["output_path"]))
    table: dict[tuple[str, int, int], dict[str, Any]] = {}
    for r in records:
        for start, end in r["supersedes"]:
            del table[(r["user_id"], start, end)]
        table[(r["user_id"], r["session_start"], r["session_end"])] = r
    final = simulated(events).final
    assert sorted(table) == sorted((user, start, end) for user, start, end, _ in final)
    late = read_jsonl(Path(paths["late_output_path"]))
    assert sum(r["event_count"] for r in table.values()) == len(events) - len(late)
    merged = [r for r in records if any(w != [r["session_start"], r["session_end"]] for w in r["supersedes"])]
    assert merged and all(r["is_late_update"] for r in merged)
    assert sum(r["event_count"] for r in records) > len(events) - len(late)  # the raw records double count


def test_the_readmes_worked_example_of_supersedes(tmp_path: Path) -> None:
    t0 = 1_704_067_200_000
    views = [("u1", 0), ("u1", 14), ("u1", 8), ("u2", 26), ("u1", 5)]
    events = [{"event_id": f"e{i}", "user_id": user, "event_type": "page_view", "timestamp": t0 + at * MINUTE}
              for i, (user, at) in enumerate(views)]
    paths = _files(tmp_path)
    _write(Path(paths["input_path"]), events)
    run_main(build(**paths))
    records = [r for r in read_jsonl(Path(paths["output_path"])) if r["user_id"] == "u1"]

    def minutes(ms: int) -> int:
        return (ms - t0) // MINUTE

    assert [(minutes(r["session_start"]), minutes(r["session_end"]), r["event_count"], r["is_late_update"],
             [[minutes(s), minutes(e)] for s, e in r["supersedes"]]) for r in records] == [
        (0, 10, 1, False, []),
        (0, 24, 3, True, [[0, 10]]),
        (0, 24, 4, True, [[0, 24]]),
    ]


def test_two_workers_give_the_same_sessions_as_one(tmp_path: Path) -> None:
    events = list(generators.sessions(3000, seed=5, users=60))
    results = []
    for workers in (1, 2):
        paths = _files(tmp_path / f"w{workers}")
        Path(paths["input_path"]).parent.mkdir()
        _write(Path(paths["input_path"]), events)
        cluster_main(build(**paths), [], 0, worker_count_per_proc=workers)
        results.append(observed(read_jsonl(Path(paths["output_path"]))))
    assert results[0] == results[1] == expected(events)[0]


def test_kafka_to_kafka_with_three_partitions(broker: EmbeddedBroker, topic_name: str) -> None:
    """Each partition is in order, so per-partition watermarks make nothing late."""
    events = list(generators.sessions(3000, seed=8, users=50))
    names = {k: f"{topic_name}-{k}" for k in ("in", "out", "late", "dlq")}
    broker.create_topics({names["in"]: 3, names["out"]: 1, names["late"]: 1, names["dlq"]: 1})
    generators.write_records(events, None, names["in"], broker.bootstrap_servers)
    run_main(build(kafka_bootstrap_servers=broker.bootstrap_servers, input_topic=names["in"],
                   output_topic=names["out"], late_topic=names["late"], dlq_topic=names["dlq"],
                   stop_at_end=True))
    records = [json.loads(v) for _, v in read_topic(broker.bootstrap_servers, names["out"])]
    assert observed(records) == expected(events)[0]
    assert not any(r["is_late_update"] for r in records)
    assert read_topic(broker.bootstrap_servers, names["late"]) == []


def test_killed_and_resumed_run_ends_with_the_same_sessions(tmp_path: Path) -> None:
    """SIGKILL mid-run, resume from recovery: same results as an uninterrupted
    run (which the smaller tests above check against the reference)."""
    events = list(generators.disorder(generators.sessions(200_000, seed=3, users=2000), seed=3,
                                      bound_ms=MINUTE, late_fraction=0.01, late_by_ms=10 * MINUTE))
    inp = tmp_path / "in.jsonl"
    _write(inp, events)
    out = tmp_path / "out.jsonl"
    kills = run_killed_and_resumed("session_analytics", tmp_path, seed=1, parts=2)
    assert kills >= 1, "the run finished before it could be killed; make the input larger"
    uninterrupted = {n: str(tmp_path / f"plain-{n}.jsonl") for n in ("output_path", "late_output_path", "error_output_path")}
    run_main(build(input_path=str(inp), **uninterrupted))
    assert observed(read_jsonl(out)) == observed(read_jsonl(Path(uninterrupted["output_path"])))
    assert sorted(e["event_id"] for e in read_jsonl(tmp_path / "late.jsonl")) == sorted(
        e["event_id"] for e in read_jsonl(Path(uninterrupted["late_output_path"])))
