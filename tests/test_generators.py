"""Generators are deterministic and produce what their scenarios promise."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from eventio import generators as g
from eventio.event import Event


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_output_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    runs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = tmp_path / f"{name}.jsonl"
        subprocess.run(
            [sys.executable, "-m", "eventio.generators", "disorder", "--count", "3000",
             "--seed", str(seed), "--output", str(out)],
            check=True, capture_output=True,
        )
        runs.append(_digest(out))
    assert runs[0] == runs[1] != runs[2]


def test_sessions_are_valid_events_in_timestamp_order() -> None:
    events = list(g.sessions(5000, seed=1))
    assert len(events) == 5000
    parsed = [Event.from_dict(e) for e in events]
    assert [e.timestamp for e in parsed] == sorted(e.timestamp for e in parsed)
    assert {e.event_type for e in parsed} >= {"login", "page_view", "purchase", "logout"}


def test_disorder_is_bounded_except_for_the_late_fraction() -> None:
    ordered = list(g.sessions(5000, seed=2))
    shuffled = list(g.disorder(ordered, seed=2, bound_ms=60_000, late_fraction=0.05, late_by_ms=600_000))
    assert sorted(e["event_id"] for e in shuffled) == sorted(e["event_id"] for e in ordered)
    max_seen = -1
    beyond = 0
    for e in shuffled:
        if e["timestamp"] < max_seen - 60_000:
            beyond += 1
        max_seen = max(max_seen, e["timestamp"])
    assert 0 < beyond <= 0.05 * 5000 * 2


def test_fraud_scenarios_are_planted_as_described() -> None:
    events, planted = g.fraud(4000, seed=5)
    assert planted
    by_id = {e["event_id"]: e for e in events}
    for alert in planted:
        login, tx = by_id[alert["login_event_id"]], by_id[alert["transaction_event_id"]]
        assert login["event_type"] == "login" and tx["event_type"] == "transaction"
        assert tx["amount"] > 10_000 and 0 < tx["timestamp"] - login["timestamp"] < 600_000
        user_events = [e for e in events if e["user_id"] == login["user_id"]]
        i = user_events.index(login)
        assert user_events[i + 1] is tx


def test_correlated_purchases_are_near_an_action_of_their_user() -> None:
    actions, purchases = g.correlated(2000, seed=9)
    assert purchases
    for p in purchases[:200]:
        assert any(
            a["user_id"] == p["user_id"] and abs(a["timestamp"] - p["timestamp"]) <= 300_000
            for a in actions
        )
    assert json.dumps(actions[0])
