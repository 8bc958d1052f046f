"""The application flows' generator scenarios: deterministic, valid events in
timestamp order, with what each scenario promises."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest

from eventio import generators as g
from eventio.event import Event
from flows.multi_tenant import parse_tenant_config

SCENARIOS: dict[str, Callable[[int, int], Iterable[dict[str, Any]]]] = {
    "quarterly": lambda n, seed: g.quarterly(n, seed),
    "bursts": lambda n, seed: g.bursts(n, seed),
    "mixed": lambda n, seed: g.mixed(n, seed),
    "shoppers": lambda n, seed: g.shoppers(n, seed),
    "tenants": lambda n, seed: g.tenants(n, seed),
    "iot": lambda n, seed: g.iot(n, seed),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_deterministic_valid_and_in_timestamp_order(name: str) -> None:
    first = list(SCENARIOS[name](3000, 1))
    assert first == list(SCENARIOS[name](3000, 1)) != list(SCENARIOS[name](3000, 2))
    assert len(first) == 3000
    parsed = [Event.from_dict(e) for e in first]
    assert [e.timestamp for e in parsed] == sorted(e.timestamp for e in parsed)
    assert len({e.event_id for e in parsed}) == 3000


def test_each_scenario_holds_what_its_flow_needs() -> None:
    quarters = {(e["timestamp"] - g.BASE_TS) // (91 * g.DAY) for e in g.quarterly(5000, 3)}
    assert len(quarters) >= 7
    per_user = Counter(e["user_id"] for e in g.bursts(5000, 3))
    assert max(per_user.values()) > 100
    mixed = list(g.mixed(5000, 3))
    assert any(e["event_type"] not in g.KNOWN_TYPES for e in mixed)
    assert any(e.get("amount", 0) < 0 for e in mixed)
    assert any(e.get("user_type") == "admin" for e in mixed)
    assert any(e.get("amount", 0) >= 1000 for e in mixed)
    shoppers = list(g.shoppers(3000, 3))
    assert {e["event_type"] for e in shoppers} == {"login", *g.SHOP_TYPES} and all("category" in e for e in shoppers)
    tenants = list(g.tenants(5000, 3))
    assert 20 < sum(1 for e in tenants if "tenant_id" not in e) < 100
    readings = list(g.iot(2000, 3, devices=5))
    assert {e["device_id"] for e in readings} == {f"d{i:04d}" for i in range(5)}
    assert all(isinstance(e["value"], float) for e in readings)


def test_cli_writes_tenants_and_their_configuration(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "eventio.generators", "tenants", "--count", "500", "--tenants", "4",
                    "--output", str(tmp_path / "t.jsonl"), "--config-output", str(tmp_path / "c.jsonl")],
                   check=True, capture_output=True)
    assert len((tmp_path / "t.jsonl").read_text().splitlines()) == 500
    configs = [parse_tenant_config(json.loads(x)) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert [c.tenant_id for c in configs] == ["*", "t00", "t03"]
