"""Kafka that cannot be reached or is lost: the run ends within the bounded
time with exit status 69 and one short message naming the brokers, the topic
and the variable; nothing committed is lost or committed twice.

Each test that takes a broker away has a broker of its own.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from eventio.broker import EmbeddedBroker, free_port
from recovery.directories import init
from tests.committed_log import read_committed
from tests.exactly_once_harness import (
    FLOW,
    FlowProcess,
    LogEnd,
    assert_exactly_once,
    committed_outputs,
    flow_env,
    make_events,
    produce,
    reference,
    wait_for_outputs,
    wait_until,
)
from tests.flow_runs import EXIT_UNAVAILABLE, assert_stopped_cleanly, run_flow

pytestmark = pytest.mark.integration

CONNECT_TIMEOUT_S = 3
EVENT = {"event_id": "e1", "user_id": "u1", "event_type": "click", "timestamp": 1_700_000_000_000}


def _events_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(EVENT) + "\n")
    return path


def test_unreachable_input_brokers_end_the_run_at_once_with_one_message(tmp_path: Path) -> None:
    brokers = f"127.0.0.1:{free_port()}"
    run = run_flow("flows.session_analytics:flow", {
        "KAFKA_BOOTSTRAP_SERVERS": brokers, "KAFKA_CONNECT_TIMEOUT_S": str(CONNECT_TIMEOUT_S),
        "INPUT_TOPIC": "clicks", "OUTPUT_PATH": str(tmp_path / "out.jsonl")})
    assert_stopped_cleanly(run, f"cannot reach Kafka: no broker of {brokers} (KAFKA_BOOTSTRAP_SERVERS) answered "
                                f"within {CONNECT_TIMEOUT_S} s (KAFKA_CONNECT_TIMEOUT_S) for input topic 'clicks' "
                                "(INPUT_TOPIC); last error: ")
    assert "Connection refused" in run.last_line
    assert run.seconds < CONNECT_TIMEOUT_S + 15


def test_unreachable_output_brokers_end_the_run_at_once_with_one_message(tmp_path: Path) -> None:
    brokers = f"127.0.0.1:{free_port()}"
    run = run_flow("flows.session_analytics:flow", {
        "KAFKA_BOOTSTRAP_SERVERS": brokers, "KAFKA_CONNECT_TIMEOUT_S": str(CONNECT_TIMEOUT_S),
        "INPUT_PATH": str(_events_file(tmp_path)), "OUTPUT_TOPIC": "sessions", "LATE_TOPIC": "late",
        "DLQ_TOPIC": "bad"})
    assert_stopped_cleanly(run, f"cannot reach Kafka: no broker of {brokers} (KAFKA_BOOTSTRAP_SERVERS) answered "
                                f"within {CONNECT_TIMEOUT_S} s (KAFKA_CONNECT_TIMEOUT_S) for output topic ")
    assert any(f"output topic {t!r} ({var})" in run.last_line
               for t, var in (("sessions", "OUTPUT_TOPIC"), ("late", "LATE_TOPIC"), ("bad", "DLQ_TOPIC")))
    assert run.seconds < CONNECT_TIMEOUT_S + 15


def _exactly_once_env(broker: EmbeddedBroker, topic: str) -> dict[str, str]:
    return flow_env(broker.bootstrap_servers, topic, KAFKA_CONNECT_TIMEOUT_S=str(CONNECT_TIMEOUT_S),
                    SINK_TIMEOUT_S="5")


def _stop_within(flow: FlowProcess, timeout_s: float) -> str:
    """The flow's exit (status 69 within `timeout_s`) and its output."""
    assert flow.process is not None
    flow.process.wait(timeout_s)
    output = flow.log_tail(20_000)
    assert flow.process.returncode == EXIT_UNAVAILABLE, output[-3000:]
    assert "Traceback" not in output and "panicked" not in output, output[-3000:]
    return output.strip().splitlines()[-1]


def test_a_broker_lost_while_the_flow_is_idle_stops_it_with_one_message(tmp_path: Path, topic_name: str) -> None:
    init(tmp_path / "state", 1)
    with EmbeddedBroker() as broker:
        broker.create_topics({f"{topic_name}-in": 2, f"{topic_name}-out": 4, f"{topic_name}-dlq": 1})
        events = make_events(300, 20, seed=5)
        produce(broker.bootstrap_servers, f"{topic_name}-in", events)
        with FlowProcess(FLOW, tmp_path / "state", _exactly_once_env(broker, topic_name)) as flow:
            outs = wait_for_outputs(broker.bootstrap_servers, f"{topic_name}-out", len(events), flow)
            assert_exactly_once(outs, reference(events))
            os.killpg(broker.process.pid, signal.SIGKILL)  # type: ignore[union-attr]
            lost = time.monotonic()
            last = _stop_within(flow, 60)
            # Noticed after the connect timeout of reconnecting, not after librdkafka's minutes.
            assert time.monotonic() - lost < CONNECT_TIMEOUT_S + 20
    assert last.startswith(f"lost Kafka: no broker of {broker.bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS) answered "
                           f"for {CONNECT_TIMEOUT_S} s (KAFKA_CONNECT_TIMEOUT_S)"), last


def test_a_broker_lost_with_output_in_flight_stops_the_flow_with_one_message(tmp_path: Path, topic_name: str) -> None:
    init(tmp_path / "state", 1)
    with EmbeddedBroker() as broker:
        bs = broker.bootstrap_servers
        broker.create_topics({f"{topic_name}-in": 2, f"{topic_name}-out": 4, f"{topic_name}-dlq": 1})
        with FlowProcess(FLOW, tmp_path / "state", _exactly_once_env(broker, topic_name)) as flow:
            produce(bs, f"{topic_name}-in", make_events(200, 20, seed=6))
            wait_for_outputs(bs, f"{topic_name}-out", 200, flow)
            log_end = LogEnd(bs, f"{topic_name}-out", 4)
            before = log_end()
            feeding = threading.Thread(target=produce, args=(bs, f"{topic_name}-in", make_events(50_000, 20, seed=7)))
            feeding.start()
            assert wait_until(lambda: log_end() > before, 30), "no output in flight"
            log_end.close()
            os.killpg(broker.process.pid, signal.SIGKILL)  # type: ignore[union-attr]
            feeding.join(60)
            lost = time.monotonic()
            last = _stop_within(flow, 60)
            assert time.monotonic() - lost < 5 + CONNECT_TIMEOUT_S + 20
    assert f"on brokers {bs} (KAFKA_BOOTSTRAP_SERVERS)" in last or f"no broker of {bs} (KAFKA_BOOTSTRAP_SERVERS)" in last, last


def test_a_broker_gone_silent_stops_the_flow_and_a_resumed_run_is_exact(tmp_path: Path, topic_name: str) -> None:
    """The broker stops answering (SIGSTOP: a network partition that keeps
    its data) with output in flight; the flow stops with its message; once
    the broker is back the resumed run commits every output exactly once."""
    init(tmp_path / "state", 1)
    events = make_events(6000, 50, seed=8)
    with EmbeddedBroker() as broker:
        bs = broker.bootstrap_servers
        broker.create_topics({f"{topic_name}-in": 2, f"{topic_name}-out": 4, f"{topic_name}-dlq": 1})
        produce(bs, f"{topic_name}-in", events[:3000])
        env = _exactly_once_env(broker, topic_name)
        with FlowProcess(FLOW, tmp_path / "state", env) as flow:
            wait_for_outputs(bs, f"{topic_name}-out", 3000, flow)
            produce(bs, f"{topic_name}-in", events[3000:])
            assert wait_until(lambda: len(committed_outputs(bs, f"{topic_name}-out")) > 3000, 30)
            os.killpg(broker.process.pid, signal.SIGSTOP)  # type: ignore[union-attr]
            try:
                last = _stop_within(flow, 90)
            finally:
                os.killpg(broker.process.pid, signal.SIGCONT)  # type: ignore[union-attr]
        assert f"{bs} (KAFKA_BOOTSTRAP_SERVERS)" in last, last
        seen = committed_outputs(bs, f"{topic_name}-out")
        assert len({o["event_id"] for o in seen}) == len(seen), "an output committed twice before the stop"
        with FlowProcess(FLOW, tmp_path / "state", env) as resumed:
            outs = wait_for_outputs(bs, f"{topic_name}-out", len(events), resumed)
        assert_exactly_once(outs, reference(events))
        assert not [r for r in read_committed(bs, f"{topic_name}-dlq")]
