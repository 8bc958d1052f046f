"""flows.iot_anomaly: alerts against plain statistics over the input (minute
means from the brute-force window reference), device TTL with a fake clock."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Optional

import pytest
from bytewax.testing import run_main
from hypothesis import example, given, settings
from hypothesis import strategies as st

from eventio import generators
from eventio.broker import EmbeddedBroker
from eventio.demo import read_topic
from flows.iot_anomaly import DeviceBaseline, build
from operators.process.keyed_process import KeyedProcess
from operators.windows.results import WindowResult
from tests.windowing_reference import Reference, Spec
from tests.flow_files import run_on_files

MINUTE = 60_000
T0 = 1_800_000_000_000


def frozen() -> int:
    return T0


def score(minutes: list[tuple[int, int, float]], *, baseline: int = 10 * MINUTE, least: int = 3,
          warning: float = 2.0, critical: float = 3.0) -> list[tuple[Any, ...]]:
    """Alerts of one device from its (start, end, mean) minutes in order."""
    alerts = []
    for start, end, mean in minutes:
        base = [m for _, e, m in minutes if start - baseline < e <= start]
        if len(base) < least:
            continue
        mu, sd = statistics.fmean(base), statistics.pstdev(base)
        if sd == 0:
            continue
        z = (mean - mu) / sd
        level = "critical" if abs(z) >= critical else "warning" if abs(z) >= warning else None
        if level:
            alerts.append((end, mean, mu, sd, z, level))
    return alerts


def expected(events: list[dict[str, Any]], bound: int = 2 * MINUTE) -> tuple[dict[str, list[tuple[Any, ...]]], list[str]]:
    """Alerts per device and late event ids."""
    spec = Spec(kind="tumbling", size=MINUTE, bound=bound, evaluate=lambda vs: statistics.fmean(v for v, _ in vs))
    firings, late = Reference(spec).run([(e["device_id"], e["timestamp"], (e["value"], e["event_id"]), 0)
                                         for e in events])
    minutes: dict[str, list[tuple[int, int, float]]] = {}
    for device, start, end, mean, _, _ in sorted(firings):
        minutes.setdefault(device, []).append((start, end, mean))
    alerts = {d: a for d, ms in minutes.items() if (a := score(ms))}
    return alerts, sorted(v[1] for _, v in late)


def observed(records: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    for r in sorted(records, key=lambda r: (r["device_id"], r["window_end"])):
        assert list(r) == ["device_id", "window_end", "value", "mean", "stddev", "z", "severity"]
        out.setdefault(r["device_id"], []).append(
            (r["window_end"], r["value"], r["mean"], r["stddev"], r["z"], r["severity"]))
    return out


def same_alerts(got: dict[str, list[tuple[Any, ...]]], want: dict[str, list[tuple[Any, ...]]]) -> None:
    assert set(got) == set(want)
    for device in want:
        assert [(a[0], a[5]) for a in got[device]] == [(a[0], a[5]) for a in want[device]]
        assert [a[1:5] for a in got[device]] == [pytest.approx(a[1:5], rel=1e-9, abs=1e-9) for a in want[device]]


def _run(tmp_path: Path, lines: list[str], **extra: Any) -> dict[str, list[dict[str, Any]]]:
    return run_on_files(build, tmp_path, lines, clock=frozen, **extra)


def test_alerts_from_out_of_order_readings(tmp_path: Path) -> None:
    events = list(generators.disorder(generators.iot(6000, seed=4, devices=12), seed=4, bound_ms=MINUTE,
                                      late_fraction=0.01, late_by_ms=5 * MINUTE))
    out = _run(tmp_path, [json.dumps(e) for e in events])
    want, late = expected(events)
    same_alerts(observed(out["output"]), want)
    assert sorted(e["event_id"] for e in out["late_output"]) == late
    severities = {a[5] for alerts in want.values() for a in alerts}
    assert severities == {"warning", "critical"} and late


def test_readings_without_device_or_value_go_to_the_dead_letter_output(tmp_path: Path) -> None:
    events = list(generators.iot(300, seed=1, devices=3))
    no_device = {k: v for k, v in events[10].items() if k != "device_id"}
    no_value = {k: v for k, v in events[20].items() if k != "value"}
    kept = [e for i, e in enumerate(events) if i not in (10, 20)]
    lines = [json.dumps(no_device if i == 10 else no_value if i == 20 else e) for i, e in enumerate(events)]
    out = _run(tmp_path, lines)
    assert sorted(d["reason"] for d in out["error_output"]) == [
        f"event {events[10]['event_id']!r} has no 'device_id', which this flow requires",
        f"event {events[20]['event_id']!r} has no 'value', which this flow requires",
    ]
    same_alerts(observed(out["output"]), expected(kept)[0])


def test_thresholds_are_configurable_and_checked(tmp_path: Path) -> None:
    events = list(generators.iot(3000, seed=7, devices=6))
    out = _run(tmp_path, [json.dumps(e) for e in events], warning_z=1.5, critical_z=2.5)
    spec = Spec(kind="tumbling", size=MINUTE, bound=2 * MINUTE, evaluate=lambda vs: statistics.fmean(vs))
    firings, _ = Reference(spec).run([(e["device_id"], e["timestamp"], e["value"], 0) for e in events])
    minutes: dict[str, list[tuple[int, int, float]]] = {}
    for device, start, end, mean, _, _ in sorted(firings):
        minutes.setdefault(device, []).append((start, end, mean))
    want = {d: a for d, ms in minutes.items() if (a := score(ms, warning=1.5, critical=2.5))}
    same_alerts(observed(out["output"]), want)
    with pytest.raises(ValueError, match="WARNING_Z"):
        build(input_path=__file__, warning_z=4.0, critical_z=3.0)


def minute(start: int, mean: float) -> WindowResult:
    return WindowResult("d", start, start + MINUTE, mean, (), start + MINUTE - 1)


@settings(max_examples=150, deadline=None)
@given(
    means=st.lists(st.sampled_from([10.0, 11.0, 12.0, 30.0, -5.0]), min_size=1, max_size=25),
    gaps=st.lists(st.sampled_from([1, 1, 1, 2, 5]), min_size=25, max_size=25),
    waits=st.lists(st.integers(0, 40 * MINUTE), min_size=25, max_size=25),
)
# z is exactly -2.0 at the last minute: a rounded sum of squares made it -1.9999999999999998.
@example(means=[10.0, 10.0, 10.0, 11.0, 11.0, -5.0, 11.0, 11.0, -5.0], gaps=[1] * 7 + [2, 5] + [1] * 16, waits=[0] * 25)
def test_device_state_expires_after_its_ttl_of_processing_time(
    means: list[float], gaps: list[int], waits: list[int]
) -> None:
    """Minutes of one device with gaps in event time and waits in processing
    time: a wait of at least the TTL since the last minute drops the history."""
    now = [T0]
    ttl = 30 * MINUTE
    core = KeyedProcess(DeviceBaseline(baseline_ms=10 * MINUTE, min_windows=3, warning=2.0, critical=3.0,
                                       ttl_ms=ttl), clock=lambda: now[0])
    history: list[tuple[int, int, float]] = []
    last_touch: Optional[int] = None
    got, want = [], []
    start = 0
    for mean, gap, wait in zip(means, gaps, waits):
        start += gap * MINUTE
        now[0] += wait
        due = core.next_processing_time()
        if due is not None and due <= now[0]:
            core.on_processing_time(now[0])
        core.on_element("d", start + MINUTE - 1, minute(start, mean))
        got += [(a["window_end"], a["severity"]) for _, (_, a) in core.emitted]
        core.emitted = []
        if last_touch is not None and now[0] >= last_touch + ttl:
            history = []
        history.append((start, start + MINUTE, mean))
        last_touch = now[0]
        want += [(a[0], a[5]) for a in score(history) if a[0] == start + MINUTE]
    assert got == want


def test_kafka_to_kafka(broker: EmbeddedBroker, topic_name: str) -> None:
    events = list(generators.iot(4000, seed=9, devices=10))
    t = {k: f"{topic_name}-{k}" for k in ("in", "out", "late", "dlq")}
    broker.create_topics({t["in"]: 2, t["out"]: 1, t["late"]: 1, t["dlq"]: 1})
    generators.write_records(events, None, t["in"], broker.bootstrap_servers)
    run_main(build(kafka_bootstrap_servers=broker.bootstrap_servers, input_topic=t["in"], output_topic=t["out"],
                   late_topic=t["late"], dlq_topic=t["dlq"], stop_at_end=True, clock=frozen))
    records = read_topic(broker.bootstrap_servers, t["out"])
    same_alerts(observed([json.loads(v) for _, v in records]), expected(events)[0])
    assert all(k == json.loads(v)["device_id"].encode() for k, v in records)
    assert read_topic(broker.bootstrap_servers, t["late"]) == []
