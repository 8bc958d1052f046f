"""The exactly-once flow: its per-user statistics, dead letters in the same
transactions, and how fast a lone record on an idle partition is committed."""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest
from confluent_kafka import Producer
from hypothesis import given
from hypothesis import strategies as st

from eventio.broker import EmbeddedBroker
from eventio.event import Event
from eventio.settings import SettingsError
from flows.exactly_once import build, running_stats
from recovery.directories import init
from tests.committed_log import read_committed
from tests.exactly_once_harness import (
    FLOW,
    FlowProcess,
    committed_outputs,
    flow_env,
    make_events,
    produce,
    reference,
    run_bounded,
    wait_for_outputs,
    wait_until,
)

LATENCY_BOUND_S = 5.0

event_dicts = st.lists(
    st.fixed_dictionaries(
        {"user_id": st.sampled_from(["a", "b", "c"])},
        optional={"value": st.floats(-1e6, 1e6, allow_nan=False)},
    ),
    max_size=40,
)


@given(event_dicts)
def test_running_stats_match_the_brute_force_reference(raw: list[dict[str, Any]]) -> None:
    events = [{"event_id": f"e{i}", "event_type": "t", "timestamp": i, **r} for i, r in enumerate(raw)]
    states: dict[str, Any] = {}
    got = {}
    for e in events:
        states[e["user_id"]], out = running_stats(states.get(e["user_id"]), Event.from_dict(e))
        got[out["event_id"]] = out
    assert got == reference(events)


def test_build_rejects_bad_settings_and_needs_no_broker() -> None:
    with pytest.raises(SettingsError, match="unknown setting 'sink_partitons'; did you mean 'sink_partitions'"):
        build(sink_partitons=3)
    with pytest.raises(SettingsError, match="delivery_guarantee='at_most_once': expected one of exactly_once, "
                                            "at_least_once"):
        build(delivery_guarantee="at_most_once")
    build(delivery_guarantee="at_least_once")
    flow = build(kafka_bootstrap_servers="127.0.0.1:1", sink_partitions=2, heartbeat_ms=100)
    assert flow.flow_id == "exactly_once"


@pytest.fixture(scope="module")
def running_flow(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FlowProcess]]:
    """One flow on `eo-flow-*` topics for the tests below, warmed up."""
    topic = "eo-flow"
    broker.create_topics({f"{topic}-in": 2, f"{topic}-out": 2, f"{topic}-dlq": 1})
    recovery = tmp_path_factory.mktemp("eo-flow")
    init(recovery, 1)
    with FlowProcess(FLOW, recovery, flow_env(broker.bootstrap_servers, topic)) as flow:
        produce(broker.bootstrap_servers, f"{topic}-in", make_events(1, 1, seed=0))
        wait_for_outputs(broker.bootstrap_servers, f"{topic}-out", 1, flow)
        yield topic, flow


def test_dead_letters_are_committed_once_with_the_results(broker: EmbeddedBroker, running_flow: tuple[str, FlowProcess]) -> None:
    bs = broker.bootstrap_servers
    topic, flow = running_flow
    events = [{**e, "event_id": f"d{i}", "user_id": f"d-{e['user_id']}"} for i, e in enumerate(make_events(200, 7, seed=5))]
    produce(bs, f"{topic}-in", events)
    producer = Producer({"bootstrap.servers": bs})
    bad = [b"{not json", b'{"event_id": "x"}']
    for raw in bad:
        producer.produce(f"{topic}-in", raw, key=b"bad", partition=1)
    producer.flush(10)
    outs = wait_for_outputs(bs, f"{topic}-out", 1 + len(events), flow)
    assert {o["event_id"]: o for o in outs if o["event_id"].startswith("d")} == reference(events)
    dead = read_committed(bs, f"{topic}-dlq")
    assert [d.value for d in dead] == bad
    assert all(d.key == b"bad" for d in dead)


def test_a_lone_record_on_an_idle_partition_is_visible_within_the_bound(
    broker: EmbeddedBroker, running_flow: tuple[str, FlowProcess]
) -> None:
    bs = broker.bootstrap_servers
    topic, flow = running_flow
    before = len(committed_outputs(bs, f"{topic}-out"))
    time.sleep(2)  # every sink partition goes quiet
    lone = {"event_id": "lone", "user_id": "lonely-user", "event_type": "t", "timestamp": 1, "value": 1.0}
    started = time.monotonic()
    produce(bs, f"{topic}-in", [lone])
    assert wait_until(lambda: len(committed_outputs(bs, f"{topic}-out")) > before, LATENCY_BOUND_S), (
        f"not visible within {LATENCY_BOUND_S}s:\n{flow.log_tail()}"
    )
    latency = time.monotonic() - started
    (out,) = [o for o in committed_outputs(bs, f"{topic}-out") if o["event_id"] == "lone"]
    assert out == {"user_id": "lonely-user", "event_id": "lone", "count": 1, "running_avg": 1.0}
    print(f"lone record visible after {latency:.2f}s")


def test_an_overflowing_average_is_a_dead_letter_in_the_same_transactions(
    broker: EmbeddedBroker, running_flow: tuple[str, FlowProcess]
) -> None:
    """Two values of 1e308 make the running average infinite: that output is
    not committed as `Infinity` or `null` but as a dead letter keyed by the
    user, and the flow goes on."""
    bs = broker.bootstrap_servers
    topic, flow = running_flow
    huge = [{"event_id": f"o{i}", "user_id": "overflow", "event_type": "t", "timestamp": i, "value": 1e308}
            for i in range(2)]
    after = {"event_id": "o-after", "user_id": "after-overflow", "event_type": "t", "timestamp": 3, "value": 2.0}
    produce(bs, f"{topic}-in", [*huge, after])
    assert wait_until(lambda: any(o["event_id"] == "o-after" for o in committed_outputs(bs, f"{topic}-out")), 30), \
        flow.log_tail()
    outs = {o["event_id"]: o for o in committed_outputs(bs, f"{topic}-out") if o["event_id"].startswith("o")}
    assert outs == {"o0": {"user_id": "overflow", "event_id": "o0", "count": 1, "running_avg": 1e308},
                    "o-after": {"user_id": "after-overflow", "event_id": "o-after", "count": 1, "running_avg": 2.0}}
    assert wait_until(lambda: any(d.key == b"overflow" for d in read_committed(bs, f"{topic}-dlq")), 30)
    (dead,) = [d for d in read_committed(bs, f"{topic}-dlq") if d.key == b"overflow"]
    assert dead.value == b'{"user_id":"overflow","event_id":"o1","count":2,"running_avg":Infinity}'


def test_a_bounded_run_commits_every_output_before_it_exits(broker: EmbeddedBroker, tmp_path: Any) -> None:
    """STOP_AT_END: when the process has exited 0, every output is committed;
    no second start is needed for the last epoch."""
    bs = broker.bootstrap_servers
    topic = "eo-bounded"
    broker.create_topics({f"{topic}-in": 2, f"{topic}-out": 2, f"{topic}-dlq": 1})
    events = make_events(2000, 40, seed=11)
    produce(bs, f"{topic}-in", events)
    run_bounded(bs, topic, tmp_path / "state")
    outs = committed_outputs(bs, f"{topic}-out")
    assert {o["event_id"]: o for o in outs} == reference(events)
    assert len(outs) == len(events)
