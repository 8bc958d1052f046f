"""The metrics a running flow serves over HTTP match what it processed.

A small flow (file input with bad lines, a keyed event-time step with a tiny
logic sending on-time elements to `down` and late ones to `late`, dead letters
to a file) runs once in this process with `serve_from_env()` serving the
default registry; the counters scraped over HTTP must equal the processed
counts. The same flow then runs as `python -m bytewax.run` with Bytewax's API
server, the endpoint the Kubernetes PodMonitor scrapes. The README's metrics
table must list exactly the `stream_*` families the endpoint serves, with
their types, labels and help texts.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Optional

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.testing import TestingSink, run_main
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from eventio import metrics
from eventio.config import IOConfig
from eventio.event import Event
from eventio.flowio import read_events, require, write_dead_letters
from operators.runtime.keyed import keyed_event_time
from operators.time.eventtime import BoundedOutOfOrderness, EventTimeLogic

ROOT = Path(__file__).resolve().parents[1]
STEP = "metrics_probe"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class OnTimeOrLate(EventTimeLogic[Event]):
    """Each element to `down` if after the watermark, else to `late` (Flink: ts <= wm is late)."""

    def on_element(self, key: str, ts: int, value: Event, side: int = 0) -> None:
        self.emitted.append(("late" if ts <= self.watermark else "down", (key, value.event_id)))

    def snapshot(self) -> None:
        return None

    def restore(self, state: None) -> None:
        pass


def _event(i: int, ts: int) -> str:
    event = {"event_id": f"e{i}", "user_id": f"u{i % 3}", "event_type": "click", "timestamp": ts}
    if i not in NO_AMOUNT:
        event["amount"] = 1.5
    return json.dumps(event)


NO_AMOUNT = (7, 15)


def input_lines() -> list[str]:
    """20 events: every fifth one 10 s behind the newest (late with a 0 ms bound),
    two without the `amount` the flow requires; and 5 lines that are no events."""
    lines = []
    for i in range(20):
        ts = 1_700_000_000_000 + i * 1000 - (10_000 if i % 5 == 4 else 0)
        lines.append(_event(i, ts))
    lines[3:3] = ["{not json", '{"event_id": "x", "user_id": "u"}', "[1, 2]"]
    lines[12:12] = ["", '{"event_id": 7, "user_id": "u", "event_type": "t", "timestamp": 1}']
    return lines


def build_flow(
    input_path: Path, errors_path: Path, down: Optional[list[Any]] = None, late: Optional[list[Any]] = None,
    hold: Optional[Path] = None,
) -> Dataflow:
    """The probe flow; with `hold`, it stays up until that file exists."""
    cfg = IOConfig(input_path=str(input_path), error_output_path=str(errors_path))
    flow = Dataflow("metrics_probe")
    src = require("require", read_events(flow, "in", cfg), "amount")
    keyed = op.key_on("key", src.events, lambda e: e.user_id)
    outs = keyed_event_time(
        STEP, [keyed], timestamp_of=lambda e: e.timestamp,
        watermarks=lambda: BoundedOutOfOrderness(0), logic=OnTimeOrLate, shards=4,
    )
    write_dead_letters("dlq", src.errors, cfg)
    if hold is not None:
        op.inspect("hold", op.input("hold_in", flow, _HoldSource(hold)))
    op.output("down", outs["down"], TestingSink([] if down is None else down))
    op.output("late", outs["late"], TestingSink([] if late is None else late))
    return flow


class _HoldPartition(StatelessSourcePartition[None]):
    def __init__(self, until: Path) -> None:
        self.until = until

    def next_batch(self) -> list[None]:
        if self.until.exists():
            raise StopIteration()
        return []

    def next_awake(self) -> datetime:
        return datetime.now(timezone.utc) + timedelta(milliseconds=50)


class _HoldSource(DynamicSource[None]):
    """Emits nothing and ends once a file exists: keeps a bounded flow's process up."""

    def __init__(self, until: Path) -> None:
        self.until = until

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _HoldPartition:
        return _HoldPartition(self.until)


def families(port: int, host: str = "127.0.0.1") -> list[Metric]:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as resp:
        return list(text_string_to_metric_families(resp.read().decode()))


def scrape(port: int) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value for family in families(port) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def dead_letters(samples: Samples) -> Counter[str]:
    return Counter({
        dict(labels)["reason"]: v for (name, labels), v in samples.items() if name == "stream_dead_letters_total"
    })


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the probe flow once in this process; scrape before and after."""
    tmp = tmp_path_factory.mktemp("metrics")
    (tmp / "in.jsonl").write_text("\n".join(input_lines()) + "\n")
    port = metrics.serve_from_env({"METRICS_PORT": str(free_port())})
    assert port is not None
    before = scrape(port)
    down: list[Any] = []
    late: list[Any] = []
    run_main(build_flow(tmp / "in.jsonl", tmp / "errors.jsonl", down, late))
    errors = [json.loads(line) for line in (tmp / "errors.jsonl").read_text().splitlines()]
    return {"before": before, "after": scrape(port), "down": down, "late": late, "errors": errors, "port": port}


def test_serve_from_env_is_off_without_a_port() -> None:
    assert metrics.serve_from_env({}) is None


def test_records_out_per_port_match_the_outputs(in_process: dict[str, Any]) -> None:
    after, before = in_process["after"], in_process["before"]
    down, late = in_process["down"], in_process["late"]
    assert len(late) == 4 and len(down) == 14
    assert value(after, "stream_records_out_total", step=STEP, port="down") - value(
        before, "stream_records_out_total", step=STEP, port="down") == len(down)
    assert value(after, "stream_records_out_total", step=STEP, port="late") - value(
        before, "stream_records_out_total", step=STEP, port="late") == len(late)


def test_events_behind_the_watermark_are_the_late_ones(in_process: dict[str, Any]) -> None:
    """The probe sends exactly the events at or behind the watermark to `late`."""
    behind = value(in_process["after"], "stream_events_behind_watermark_total", step=STEP) - value(
        in_process["before"], "stream_events_behind_watermark_total", step=STEP)
    assert behind == len(in_process["late"]) == 4


def test_processing_time_is_counted(in_process: dict[str, Any]) -> None:
    spent = value(in_process["after"], "stream_processing_seconds_total", step=STEP) - value(
        in_process["before"], "stream_processing_seconds_total", step=STEP)
    assert 0 < spent < 10


def test_dead_letters_by_reason_match_the_dead_letter_output(in_process: dict[str, Any]) -> None:
    written = Counter(e["error_class"] for e in in_process["errors"])
    assert written == {"EventError": 3, "InvalidJsonError": 2, "MissingFieldError": 2}
    counted = dead_letters(in_process["after"]) - dead_letters(in_process["before"])
    assert counted == written


def test_events_in_counts_the_events(in_process: dict[str, Any]) -> None:
    counted = value(in_process["after"], "stream_events_in_total", step=STEP) - value(
        in_process["before"], "stream_events_in_total", step=STEP)
    assert counted == 18


def test_lags_after_the_input_ends(in_process: dict[str, Any]) -> None:
    """The input has ended and the flow is idle: the watermark is at its end
    (+Inf, lag 0), and the event-time lag is now minus the newest timestamp
    (i = 18; i = 19 is 10 s behind), growing between scrapes."""
    newest_s = (1_700_000_000_000 + 18 * 1000) / 1000
    first = scrape(in_process["port"])
    time.sleep(0.3)
    second = scrape(in_process["port"])
    lag = value(second, "stream_event_time_lag_seconds", step=STEP)
    assert abs(lag - (time.time() - newest_s)) < 0.5
    assert lag - value(first, "stream_event_time_lag_seconds", step=STEP) >= 0.25
    assert value(second, "stream_watermark_lag_seconds", step=STEP) == 0
    assert value(second, "stream_watermark_timestamp_seconds", step=STEP) == math.inf


def test_a_lag_is_computed_when_scraped() -> None:
    """A stalled step's lag keeps growing without new batches; unknown until
    set; 0 for a watermark in the future (end of input), whose timestamp is +Inf."""
    lag = metrics.EventTime()
    assert math.isnan(lag.lag_seconds()) and math.isnan(lag.timestamp_seconds())
    lag.ms = int(time.time() * 1000) - 5_000
    first = lag.lag_seconds()
    time.sleep(0.2)
    assert 5 <= first < 6 and lag.lag_seconds() - first >= 0.2
    assert lag.timestamp_seconds() == lag.ms / 1000
    lag.ms = 2**63 - 1
    assert lag.lag_seconds() == 0 and lag.timestamp_seconds() == math.inf


def readme_metrics_table() -> dict[str, tuple[str, set[str], str]]:
    """`metric -> (type, labels, meaning)` from the README's metrics table."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| metric | type | labels | meaning |"):].split("\n\n", 1)[0]
    rows: dict[str, tuple[str, set[str], str]] = {}
    for line in table.splitlines()[2:]:
        name, kind, labels, meaning = (cell.strip() for cell in line.strip("|").split("|"))
        rows[name.strip("`")] = (kind, set(re.findall(r"`(\w+)`", labels)), meaning)
    return rows


def test_readme_metrics_table_matches_the_endpoint(in_process: dict[str, Any]) -> None:
    """Every `stream_*` family the endpoint serves is in the table with its
    type, labels and help text, and nothing else is. Labels come from the
    served samples; families this probe leaves without samples (Kafka,
    windows, transactions, tenants) take them from their collector."""
    metrics.tenant_events()  # the multi_tenant flow's; served once registered
    served: dict[str, tuple[str, set[str], str]] = {}
    for family in families(in_process["port"]):
        if not family.name.startswith("stream_") or family.name.endswith("_created"):
            continue  # prometheus-client's creation time of each counter and histogram
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {k for s in family.samples for k in s.labels if k != "le"}
        if not family.samples:
            labels = set(REGISTRY._names_to_collectors[name]._labelnames)  # type: ignore[attr-defined]
        served[name] = (family.type, labels, family.documentation)
    assert len(served) >= 14
    assert readme_metrics_table() == served


def _serve_in_a_process(env: dict[str, str]) -> subprocess.Popen[str]:
    """A process serving the metrics with `serve_from_env(env)` until its stdin closes."""
    code = (
        "import sys\nfrom eventio import metrics\n"
        f"metrics.serve_from_env({env!r})\nprint('ready', flush=True)\nsys.stdin.read()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def _answers(host: str, port: int) -> bool:
    try:
        return any(f.name == "stream_events_in" for f in families(port, host))
    except OSError:
        return False


@pytest.mark.parametrize("host", [None, "127.0.0.2"])
def test_metrics_host_picks_the_interface(host: Optional[str]) -> None:
    """By default every interface answers (as an exporter in a container
    needs); `METRICS_HOST` binds one (127.0.0.2 is a loopback address of its own)."""
    port = free_port()
    env = {"METRICS_PORT": str(port), **({"METRICS_HOST": host} if host else {})}
    proc = _serve_in_a_process(env)
    try:
        assert _answers("127.0.0.2", port)
        assert _answers("127.0.0.1", port) is (host is None)
    finally:
        proc.communicate(timeout=10)


FLOW_MODULE = """
from pathlib import Path
from tests.test_metrics_endpoint import build_flow

here = Path(__file__).parent
flow = build_flow(here / "in.jsonl", here / "errors.jsonl", hold=here / "stop")
"""


def _wait_for(check: Callable[[], bool], proc: subprocess.Popen[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("metrics never reached the expected values")


def test_bytewax_api_server_serves_the_flow_metrics(tmp_path: Path) -> None:
    """The endpoint the PodMonitor scrapes: Bytewax's API server, /metrics on BYTEWAX_DATAFLOW_API_PORT."""
    (tmp_path / "in.jsonl").write_text("\n".join(input_lines()) + "\n")
    (tmp_path / "probe_flow.py").write_text(FLOW_MODULE)
    port = free_port()
    env = dict(
        os.environ, BYTEWAX_DATAFLOW_API_ENABLED="true", BYTEWAX_DATAFLOW_API_PORT=str(port),
        BYTEWAX_DATAFLOW_API_CACHE_PATH=str(tmp_path),
        PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]), str(tmp_path)]),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "probe_flow:flow"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        def complete() -> bool:
            s = scrape(port)
            out = sum(value(s, "stream_records_out_total", step=STEP, port=p) for p in ("down", "late"))
            return out == 18 and sum(dead_letters(s).values()) == 7

        _wait_for(complete, proc, seconds=30)
        samples = scrape(port)
        assert value(samples, "stream_records_out_total", step=STEP, port="late") == 4
        served = {f.name for f in families(port)}
        assert "stream_events_in" in served and "stream_tenant_events" not in served, "tenants: multi_tenant only"
        written = Counter(json.loads(line)["error_class"] for line in (tmp_path / "errors.jsonl").read_text().splitlines())
        assert dead_letters(samples) == written
        assert any(name.startswith("bytewax_") for name, _ in samples), "Bytewax's own metrics too"
        (tmp_path / "stop").touch()
        assert proc.wait(timeout=30) == 0, proc.communicate()[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
