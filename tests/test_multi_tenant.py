"""flows.multi_tenant: the tenant gate against a plain re-statement of its
rules, and the flow from files, from Kafka and across a restart."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any, Optional

import pytest
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import run_main
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from eventio import generators
from eventio.broker import EmbeddedBroker
from eventio.demo import read_topic
from eventio.event import Event
from flows.multi_tenant import (
    DROPPED,
    RATE_LIMITED,
    TenantConfigError,
    TenantGate,
    build,
    load_tenant_configs,
    parse_tenant_config,
)
from operators.process.broadcast_state import KeyedBroadcastProcess
from tests.flow_files import read_jsonl

T0 = 1_800_000_000_000
DEFAULT = {"tenant_id": "*", "rate_per_second": 100, "burst": 200, "tier": "standard", "drop_event_types": []}


def frozen() -> int:
    return T0


class Gate:
    """The documented rules, restated: configuration = live record, else the
    record in force at start, else (or when deleted) the default; dropped
    types are dropped; a full bucket of `burst` tokens per tenant gains
    `rate_per_second` tokens per second and passes an event per token."""

    def __init__(self, initial: list[dict[str, Any]]) -> None:
        self.initial = {r["tenant_id"]: r for r in initial}
        self.live: dict[str, dict[str, Any]] = {}
        self.micro: dict[str, tuple[int, int]] = {}

    def config(self, tenant: str) -> dict[str, Any]:
        found = self.live.get(tenant, self.initial.get(tenant))
        if found is None or found.get("deleted"):
            found = self.live.get("*", self.initial["*"])
        return found

    def event(self, tenant: str, kind: str, now: int) -> str:
        rec = self.config(tenant)
        if kind in rec.get("drop_event_types", []):
            return DROPPED
        cap = rec["burst"] * 1_000_000
        per_ms = round(rec["rate_per_second"] * 1000)
        held, since = self.micro.get(tenant, (cap, now))
        if now > since:
            held, since = held + (now - since) * per_ms, now
        held = min(held, cap)
        if held >= 1_000_000:
            self.micro[tenant] = (held - 1_000_000, since)
            return "accepted:" + rec.get("tier", "standard")
        self.micro[tenant] = (held, since)
        return RATE_LIMITED


config_record = st.one_of(
    st.fixed_dictionaries({
        "tenant_id": st.sampled_from(["*", "a", "b", "c"]),
        "rate_per_second": st.sampled_from([0, 0.5, 1, 3, 20]),
        "burst": st.integers(1, 4),
        "tier": st.sampled_from(["gold", "silver"]),
        "drop_event_types": st.lists(st.sampled_from(["idle", "click"]), max_size=1),
    }),
    st.fixed_dictionaries({"tenant_id": st.sampled_from(["a", "b"]), "deleted": st.just(True)}),
)
operation = st.one_of(
    st.tuples(st.just("config"), config_record),
    st.tuples(st.just("event"), st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(["view", "idle", "click"]),
              st.integers(0, 2_500)),
)


@settings(max_examples=200, deadline=None)
@given(initial=st.lists(config_record, max_size=3), ops=st.lists(operation, max_size=60))
def test_the_gate_follows_its_rules_in_processing_time(
    initial: list[dict[str, Any]], ops: list[tuple[Any, ...]]
) -> None:
    start = [DEFAULT] + [r for r in initial if not (r["tenant_id"] == "*" and r.get("deleted"))]
    by_tenant = {r["tenant_id"]: r for r in start}
    now = [T0]
    core = KeyedBroadcastProcess(
        TenantGate({t: parse_tenant_config(r) for t, r in by_tenant.items()}),
        clock=lambda: now[0], side_outputs=(RATE_LIMITED, DROPPED),
    )
    reference = Gate(list(by_tenant.values()))
    got, want = [], []
    for i, item in enumerate(ops):
        if item[0] == "config":
            core.on_broadcast(parse_tenant_config(item[1]))
            reference.live[item[1]["tenant_id"]] = item[1]
            continue
        _, tenant, kind, advance = item
        now[0] += advance
        event = Event(f"e{i}", "u", kind, now[0], tenant_id=tenant)
        core.on_element(tenant, event.timestamp, event)
        for port, (key, value) in core.emitted:
            got.append((key, f"{i}", "accepted:" + value[1] if port == "down" else port))
        core.emitted = []
        want.append((tenant, f"{i}", reference.event(tenant, kind, now[0])))
    assert got == want


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"rate_per_second": 1, "burst": 1}, "tenant_id"),
        ({"tenant_id": "a", "burst": 1}, "missing 'rate_per_second'"),
        ({"tenant_id": "a", "rate_per_second": -1, "burst": 1}, "rate_per_second"),
        ({"tenant_id": "a", "rate_per_second": 1, "burst": 0}, "burst"),
        ({"tenant_id": "a", "rate_per_second": 1, "burst": 1, "tier": 3}, "tier"),
        ({"tenant_id": "a", "rate_per_second": 1, "burst": 1, "drop_event_types": "idle"}, "drop_event_types"),
        ({"tenant_id": "a", "rate_per_second": 1, "burst": 1, "rate": 2}, "unknown fields"),
        ({"tenant_id": "*", "deleted": True}, "cannot be deleted"),
    ],
)
def test_bad_configuration_records_are_refused_with_the_reason(record: dict[str, Any], message: str) -> None:
    with pytest.raises(TenantConfigError, match=message):
        parse_tenant_config(record)


def test_a_bad_or_repeated_record_in_the_config_file_fails_the_build(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(DEFAULT) + "\n{not json\n")
    with pytest.raises(TenantConfigError, match=r"bad.jsonl:2: invalid JSON"):
        build(input_path=str(bad), tenant_config_path=str(bad))
    twice = tmp_path / "twice.jsonl"
    twice.write_text("".join(json.dumps({**DEFAULT, "tenant_id": "a"}) + "\n" for _ in range(2)))
    with pytest.raises(TenantConfigError, match="already configured on line 1"):
        load_tenant_configs(twice)


# --- the flow -----------------------------------------------------------------

CONFIG = [
    {"tenant_id": "*", "rate_per_second": 5, "burst": 40, "tier": "basic", "drop_event_types": []},
    {"tenant_id": "t00", "rate_per_second": 1, "burst": 25, "tier": "gold", "drop_event_types": ["idle"]},
    {"tenant_id": "t01", "deleted": True},
    {"tenant_id": "t02", "rate_per_second": 1, "burst": 10_000, "tier": "platinum", "drop_event_types": []},
]


def expected(events: list[dict[str, Any]], config: list[dict[str, Any]]) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, int]]:
    """With a frozen clock no bucket refills: per tenant, in input order, the
    first `burst` kept events pass and the rest are rate-limited. Returns
    accepted and limited event ids per tenant and dropped counts."""
    rules = {r["tenant_id"]: r for r in [DEFAULT] + config}
    accepted: dict[str, list[str]] = {}
    limited: dict[str, list[str]] = {}
    dropped: dict[str, int] = {}
    for e in events:
        tenant = e.get("tenant_id")
        if tenant is None:
            continue
        rule = rules.get(tenant)
        if rule is None or rule.get("deleted"):
            rule = rules["*"]
        if e["event_type"] in rule["drop_event_types"]:
            dropped[tenant] = dropped.get(tenant, 0) + 1
        elif len(accepted.get(tenant, [])) < rule["burst"]:
            accepted.setdefault(tenant, []).append(e["event_id"])
        else:
            limited.setdefault(tenant, []).append(e["event_id"])
    return accepted, limited, dropped


def _write(path: Path, records: list[Any]) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))


def _by_tenant(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in records:
        out.setdefault(r["tenant_id"], []).append(r["event_id"])
    return out


def _sample(tenant: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("stream_tenant_events_total", {"tenant": tenant, "outcome": outcome}) or 0.0


def test_files_with_a_config_file_and_a_frozen_clock(tmp_path: Path) -> None:
    events = list(generators.tenants(3000, seed=3, tenant_count=6))
    _write(tmp_path / "in.jsonl", events + ["{broken"])
    _write(tmp_path / "tenants.jsonl", CONFIG)
    paths = {n: tmp_path / f"{n}.jsonl" for n in ("output", "rate_limited", "error_output")}
    before = {(t, o): _sample(t, o) for t in ("t00", "t01", "t02", "other") for o in ("accepted", RATE_LIMITED, DROPPED)}
    run_main(build(input_path=str(tmp_path / "in.jsonl"), tenant_config_path=str(tmp_path / "tenants.jsonl"),
                   output_path=str(paths["output"]), rate_limited_path=str(paths["rate_limited"]),
                   error_output_path=str(paths["error_output"]), clock=frozen))
    out, limited, errors = (read_jsonl(paths[n]) for n in ("output", "rate_limited", "error_output"))
    want_accepted, want_limited, want_dropped = expected(events, CONFIG)
    assert _by_tenant(out) == want_accepted
    assert _by_tenant(limited) == want_limited
    tiers = {r["tenant_id"]: r["tier"] for r in out}
    assert tiers == {"t00": "gold", "t01": "basic", "t02": "platinum", "t03": "basic", "t04": "basic", "t05": "basic"}
    assert want_dropped["t00"] > 0 and len(want_limited["t00"]) > 0 and "t02" not in want_limited
    missing = [e["event_id"] for e in events if "tenant_id" not in e]
    assert sorted(json.loads(d["payload"])["event_id"] for d in errors if d["payload"].startswith("{\"")) == sorted(missing)
    assert sum(1 for d in errors if d["payload"] == "{broken") == 1
    # Metrics: the configured tenants have their own label, the rest are "other".
    delta = {k: _sample(*k) - v for k, v in before.items()}
    assert delta[("t00", "accepted")] == len(want_accepted["t00"])
    assert delta[("t00", DROPPED)] == want_dropped["t00"]
    assert delta[("t01", RATE_LIMITED)] == len(want_limited["t01"])
    assert delta[("other", "accepted")] == sum(len(want_accepted[t]) for t in ("t03", "t04", "t05"))
    assert _sample("t03", "accepted") == 0


def test_without_any_config_the_built_in_default_applies(tmp_path: Path) -> None:
    events = [{"event_id": f"e{i}", "user_id": "u", "event_type": "click", "timestamp": T0 + i, "tenant_id": "solo"}
              for i in range(260)]
    _write(tmp_path / "in.jsonl", events)
    run_main(build(input_path=str(tmp_path / "in.jsonl"), output_path=str(tmp_path / "out.jsonl"),
                   error_output_path=str(tmp_path / "err.jsonl"), clock=frozen))
    assert [r["event_id"] for r in read_jsonl(tmp_path / "out.jsonl")] == [f"e{i}" for i in range(200)]
    # Only IO variables set: the rate-limited events go next to the results.
    assert [r["event_id"] for r in read_jsonl(tmp_path / "out.rate_limited.jsonl")] == [f"e{i}" for i in range(200, 260)]


def _kafka_build(broker: EmbeddedBroker, t: dict[str, str], **extra: Any) -> Any:
    return build(kafka_bootstrap_servers=broker.bootstrap_servers, input_topic=t["in"], output_topic=t["out"],
                 rate_limited_topic=t["limited"], dlq_topic=t["dlq"], stop_at_end=True, clock=frozen, **extra)


def _topic_records(broker: EmbeddedBroker, topic: str) -> list[tuple[Optional[bytes], dict[str, Any]]]:
    return [(k, json.loads(v)) for k, v in read_topic(broker.bootstrap_servers, topic)]


def test_kafka_to_kafka_with_a_config_file(broker: EmbeddedBroker, topic_name: str, tmp_path: Path) -> None:
    """Two input partitions keyed by user: a tenant's events arrive in no fixed
    order, so which events pass may differ, but not how many."""
    events = list(generators.tenants(2500, seed=5, tenant_count=5))
    t = {k: f"{topic_name}-{k}" for k in ("in", "out", "limited", "dlq")}
    broker.create_topics({t["in"]: 2, t["out"]: 1, t["limited"]: 1, t["dlq"]: 1})
    generators.write_records(events, None, t["in"], broker.bootstrap_servers)
    _write(tmp_path / "tenants.jsonl", CONFIG)
    run_main(_kafka_build(broker, t, tenant_config_path=str(tmp_path / "tenants.jsonl")))
    out = _topic_records(broker, t["out"])
    limited = _topic_records(broker, t["limited"])
    want_accepted, want_limited, _ = expected(events, CONFIG)
    assert {k: len(v) for k, v in _by_tenant([r for _, r in out]).items()} == {k: len(v) for k, v in want_accepted.items()}
    assert {k: len(v) for k, v in _by_tenant([r for _, r in limited]).items()} == {k: len(v) for k, v in want_limited.items()}
    for tenant in want_accepted:
        passed = set(_by_tenant([r for _, r in out]).get(tenant, []))
        over = set(_by_tenant([r for _, r in limited]).get(tenant, []))
        assert passed | over == set(want_accepted[tenant]) | set(want_limited.get(tenant, []))
        assert not passed & over
    assert all(k == r["tenant_id"].encode() for k, r in out + limited)
    assert len(read_topic(broker.bootstrap_servers, t["dlq"])) == sum(1 for e in events if "tenant_id" not in e)


def test_live_config_from_a_topic_survives_a_restart(broker: EmbeddedBroker, topic_name: str, tmp_path: Path) -> None:
    """Run 1 reads the configuration topic (events topic still empty) and
    snapshots it; run 2 resumes and its events see the live configuration."""
    t = {k: f"{topic_name}-{k}" for k in ("in", "out", "limited", "dlq", "config")}
    broker.create_topics({t["in"]: 1, t["out"]: 1, t["limited"]: 1, t["dlq"]: 1, t["config"]: 1})
    live = [{"tenant_id": "acme", "rate_per_second": 1, "burst": 3, "tier": "gold", "drop_event_types": ["idle"]},
            {"tenant_id": "*", "rate_per_second": 1, "burst": 5, "tier": "basic", "drop_event_types": []}]
    generators.write_records(live + [{"tenant_id": "x", "burst": 2}], None, t["config"], broker.bootstrap_servers)
    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(str(tmp_path))
    run_main(_kafka_build(broker, t, tenant_config_topic=t["config"]), epoch_interval=timedelta(0),
             recovery_config=recovery)
    events = [{"event_id": f"e{i}", "user_id": "u", "event_type": kind, "timestamp": T0 + i, "tenant_id": tenant}
              for i, (tenant, kind) in enumerate([("acme", "idle"), ("other", "click")] * 8 + [("acme", "click")] * 6)]
    generators.write_records(events, None, t["in"], broker.bootstrap_servers)
    run_main(_kafka_build(broker, t, tenant_config_topic=t["config"]), epoch_interval=timedelta(0),
             recovery_config=recovery)
    out = [r for _, r in _topic_records(broker, t["out"])]
    limited = [r for _, r in _topic_records(broker, t["limited"])]
    assert _by_tenant(out) == {"acme": ["e16", "e17", "e18"], "other": ["e1", "e3", "e5", "e7", "e9"]}
    assert {r["tier"] for r in out if r["tenant_id"] == "acme"} == {"gold"}
    assert _by_tenant(limited) == {"acme": ["e19", "e20", "e21"], "other": ["e11", "e13", "e15"]}
    dlq = read_topic(broker.bootstrap_servers, t["dlq"])
    assert [json.loads(v) for _, v in dlq] == [{"tenant_id": "x", "burst": 2}]
