"""IoT anomaly detection: per-device minute means scored against the device's
recent minutes.

Key `device_id`; events need `device_id` and `value` (others go to the
dead-letter output). Two steps:

1. **minutes** — tumbling `WINDOW_MS` (1 min) event-time windows per device,
   the mean of `value`; watermark bound 2 min; events too late for their
   minute go to the late output.
2. **anomalies** — a keyed process function (`operators/keyed_process.py`)
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

| variable | default | meaning |
|---|---|---|
| `WINDOW_MS` | `60000` | aggregation window per device |
| `BASELINE_MS` | `600000` | how far back the baseline reaches |
| `MIN_BASELINE_WINDOWS` | `3` | fewest baseline minutes to score against |
| `WARNING_Z` | `2.0` | `|z|` from which a minute is a warning |
| `CRITICAL_Z` | `3.0` | `|z|` from which a minute is critical |
| `DEVICE_TTL_MS` | `1800000` | processing time after which a silent device's state is dropped |
| `WATERMARK_BOUND_MS` | `120000` | out-of-orderness bound of the watermark |
| `ALLOWED_LATENESS_MS` | `0` | allowed lateness of the minute windows |
| `IDLE_TIMEOUT_MS` | `0` (off) | input partitions silent this long stop holding the watermark |
| `SHARDS` | `32` | state shards |

    python -m bytewax.run flows.iot_anomaly:flow
"""

from __future__ import annotations

import statistics
from operator import attrgetter
from typing import Any, Optional

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from eventio import metrics
from eventio.config import IOConfig, setting, split_overrides
from eventio.flowio import read_events, require, write_dead_letters, write_late, write_output
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


def build(**overrides: Any) -> Dataflow:
    """The flow, configured by the environment and `overrides`
    (`window_ms`, `baseline_ms`, `min_baseline_windows`, `warning_z`,
    `critical_z`, `device_ttl_ms`, `watermark_bound_ms`,
    `allowed_lateness_ms`, `idle_timeout_ms`, `shards`, `clock`, IO
    settings)."""
    io, rest = split_overrides(overrides)
    cfg = IOConfig.from_env(io)
    bound = setting("watermark_bound_ms", 2 * MINUTE, rest)
    idle = setting("idle_timeout_ms", 0, rest)
    shards = setting("shards", 32, rest)
    clock = rest.get("clock", system_clock_ms)
    baseline = DeviceBaseline(
        baseline_ms=setting("baseline_ms", 10 * MINUTE, rest),
        min_windows=setting("min_baseline_windows", 3, rest),
        warning=setting("warning_z", 2.0, rest),
        critical=setting("critical_z", 3.0, rest),
        ttl_ms=setting("device_ttl_ms", 30 * MINUTE, rest),
    )
    metrics.serve_from_env()

    flow = Dataflow("iot_anomaly")
    src = require("readings", read_events(flow, "read", cfg), "device_id", "value")
    minutes = window(
        "minutes",
        key_by("by_device", src.events, attrgetter("device_id")),
        assigner=TumblingEventTimeWindows(setting("window_ms", MINUTE, rest)),
        allowed_lateness_ms=setting("allowed_lateness_ms", 0, rest),
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


flow = build()
