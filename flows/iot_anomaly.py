"""IoT anomaly detection: per-device minute means scored against the device's
recent minutes.

Key `device_id`; events need `device_id` and `value` (others go to the
dead-letter output). Two steps:

1. **minutes** — tumbling `WINDOW_MS` (1 min) event-time windows per device,
   the mean of `value`; watermark bound 2 min; events too late for their
   minute go to the late output.
2. **anomalies** — a keyed process function (`operators/process/keyed_process.py`)
   keeps each device's baseline: its minute means of the last `BASELINE_MS`
   (10 min). Each new minute is compared with the minutes of the
   `BASELINE_MS` before it (not itself, so a spike cannot hide in its own
   baseline): with at least `MIN_BASELINE_WINDOWS` (3) of them and a standard
   deviation above 0, `z = (minute mean - baseline mean) / baseline stddev`
   (population standard deviation of the baseline minute means). `|z| >=
   CRITICAL_Z` (3) is `critical`, `|z| >= WARNING_Z` (2) is `warning`; only
   those minutes are output.

Device state has a time-to-live in processing time (the injected clock): a
device whose minutes stop arriving for `DEVICE_TTL_MS` (30 min) loses its
baseline and starts again. One output per alert: `{"device_id",
"window_end", "value", "mean", "stddev", "z", "severity"}` (`value` is the
minute's mean, `mean`/`stddev` the baseline's).

    python -m bytewax.run flows.iot_anomaly:flow
"""

from __future__ import annotations

import statistics
from operator import attrgetter
from typing import Any, Optional

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from eventio.bytewax_run import exits_on_configuration_error, lazy_flow
from eventio.flow_setup import (ALLOWED_LATENESS_MS, IDLE_TIMEOUT_MS, SHARDS, SHARED_SETTINGS, WATERMARK_BOUND_MS,
                               configure)
from eventio.flowio import read_events, require, write_dead_letters, write_late, write_output
from eventio.settings import FlowSettings, Setting, integer, number
from flows import Quickstart
from operators import (
    Aggregate,
    BoundedOutOfOrderness,
    Collector,
    Context,
    KeyedProcess,
    KeyedProcessFunction,
    TumblingEventTimeWindows,
    WindowResult,
    key_by,
    keyed_event_time,
    system_clock_ms,
    window,
)

MINUTE = 60_000


def severity(z: float, warning: float, critical: float) -> Optional[str]:
    """`critical`, `warning` or None for a z-score."""
    size = abs(z)
    if size >= critical:
        return "critical"
    if size >= warning:
        return "warning"
    return None


class DeviceBaseline(KeyedProcessFunction[WindowResult]):
    """Scores each minute of a device against its baseline; see the module
    docstring. State per device: `minutes`, a list of `(window_end, mean)`
    sorted by end, and `expires`, the processing time its TTL timer fires."""

    def __init__(
        self, *, baseline_ms: int, min_windows: int, warning: float, critical: float, ttl_ms: int
    ) -> None:
        if baseline_ms <= 0 or ttl_ms <= 0:
            raise ValueError(f"BASELINE_MS and DEVICE_TTL_MS must be > 0, got {baseline_ms} and {ttl_ms}")
        if min_windows < 2:
            raise ValueError(f"MIN_BASELINE_WINDOWS must be >= 2 for a standard deviation, got {min_windows}")
        if not 0 < warning <= critical:
            raise ValueError(f"need 0 < WARNING_Z <= CRITICAL_Z, got {warning} and {critical}")
        self.baseline_ms = baseline_ms
        self.min_windows = min_windows
        self.warning = warning
        self.critical = critical
        self.ttl_ms = ttl_ms

    def process_element(self, value: WindowResult, ctx: Context, out: Collector) -> None:
        state = ctx.state
        minutes: list[tuple[int, float]] = state.setdefault("minutes", [])
        start, end, mean = value.window_start, value.window_end, value.value
        earliest = start - self.baseline_ms
        baseline = [m for e, m in minutes if earliest < e <= start]
        if len(baseline) >= self.min_windows:
            alert = self._score(ctx.current_key, end, mean, baseline)
            if alert is not None:
                out.collect(alert)
        minutes.append((end, mean))
        if len(minutes) > 1 and minutes[-2][0] > end:
            minutes.sort()
        latest = minutes[-1][0]
        while minutes and minutes[0][0] <= latest - self.baseline_ms:
            minutes.pop(0)
        timers = ctx.timer_service
        if "expires" in state:
            timers.delete_processing_time_timer(state["expires"])
        state["expires"] = timers.current_processing_time() + self.ttl_ms
        timers.register_processing_time_timer(state["expires"])

    def _score(self, device: str, end: int, value: float, baseline: list[float]) -> Optional[dict[str, Any]]:
        # Correctly rounded statistics: a z-score that is exactly a threshold
        # (z = -2.0 from means 11, 11, -5, 11, 11 and -5) must not fall just
        # short of it through a rounded sum of squares.
        mean = statistics.fmean(baseline)
        stddev = statistics.pstdev(baseline)
        if stddev == 0:
            return None
        z = (value - mean) / stddev
        level = severity(z, self.warning, self.critical)
        if level is None:
            return None
        return {"device_id": device, "window_end": end, "value": value, "mean": mean,
                "stddev": stddev, "z": z, "severity": level}

    def on_timer(self, timestamp: int, ctx: Context, out: Collector) -> None:
        if ctx.state.get("expires") == timestamp:
            ctx.state.clear()


_MS = integer(1, unit="milliseconds")
SETTINGS = FlowSettings(
    "iot_anomaly",
    SHARED_SETTINGS,
    (Setting("WINDOW_MS", _MS, MINUTE, "aggregation window per device"),
     Setting("BASELINE_MS", _MS, 10 * MINUTE, "how far back the baseline reaches"),
     Setting("MIN_BASELINE_WINDOWS", integer(1), 3, "fewest baseline minutes to score against"),
     Setting("WARNING_Z", number(0), 2.0, "`|z|` from which a minute is a warning"),
     Setting("CRITICAL_Z", number(0), 3.0, "`|z|` from which a minute is critical"),
     Setting("DEVICE_TTL_MS", _MS, 30 * MINUTE, "processing time after which a silent device's state is dropped"),
     WATERMARK_BOUND_MS.with_default(2 * MINUTE), ALLOWED_LATENESS_MS, IDLE_TIMEOUT_MS, SHARDS),
)
QUICKSTART = Quickstart.of("iot")
"""How to make input for it and run it."""
EXAMPLE_OUTPUT = {"device_id": "d0005", "window_end": 1704072660000, "value": 16.129399999999997,
                  "mean": 15.468487619047618, "stddev": 0.2623077410711513, "z": 2.5196068490144383,
                  "severity": "warning"}
"""A real output record (of the generator's events)."""


@exits_on_configuration_error
def build(**overrides: Any) -> Dataflow:
    """The flow, configured by `SETTINGS` from the environment and
    `overrides` (their lower-case names, and `clock`: processing time in
    ms, for tests)."""
    s, cfg = configure(SETTINGS, overrides, extra=("clock",))
    bound, idle, shards = s["watermark_bound_ms"], s["idle_timeout_ms"], s["shards"]
    clock = overrides.get("clock", system_clock_ms)
    baseline = DeviceBaseline(baseline_ms=s["baseline_ms"], min_windows=s["min_baseline_windows"],
                              warning=s["warning_z"], critical=s["critical_z"], ttl_ms=s["device_ttl_ms"])

    flow = Dataflow("iot_anomaly")
    src = require("readings", read_events(flow, "read", cfg), "device_id", "value")
    minutes = window(
        "minutes",
        key_by("by_device", src.events, attrgetter("device_id")),
        assigner=TumblingEventTimeWindows(s["window_ms"]),
        allowed_lateness_ms=s["allowed_lateness_ms"],
        aggregate=Aggregate.mean(attrgetter("value")),
        timestamp_of=attrgetter("timestamp"),
        watermarks=lambda: BoundedOutOfOrderness(bound),
        partition_of=attrgetter("channel"),
        expected_channels=src.channels,
        idle_timeout_ms=idle or None,
        shards=shards,
    )
    alerts = keyed_event_time(
        "anomalies",
        [minutes.down],
        timestamp_of=lambda r: r.window_end - 1,
        watermarks=lambda: BoundedOutOfOrderness(0),
        logic=lambda: KeyedProcess(baseline, clock=clock),
        ports=("down",),
        shards=shards,
        clock=clock,
    )
    unencodable = [
        write_output("out", op.map("alerts", alerts["down"], lambda kv: kv[1]), cfg, key_of=lambda r: r["device_id"]),
        write_late("late", op.map("late_events", minutes.late, lambda kv: kv[1]), cfg),
    ]
    write_dead_letters("dlq", src.errors, cfg, *unencodable)
    return flow


__getattr__ = lazy_flow(build)
