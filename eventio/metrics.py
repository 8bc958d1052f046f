"""Prometheus metrics every flow exports, served on `METRICS_PORT`.

Metrics live in prometheus-client's default registry, so Bytewax's own
endpoint (`BYTEWAX_DATAFLOW_API_ENABLED=true`, port 3030, `/metrics`) serves
them too, next to Bytewax's built-in metrics. Label values are bounded: step
ids, ports and reasons (exception class names). Consumer lag per partition is
Bytewax's own `bytewax_kafka_consumer_lag{step_id,topic,partition}`, registered
in the same registry by its Kafka source.
"""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Optional

from prometheus_client import Counter, Gauge, Histogram, start_http_server

EVENTS_IN = Counter("stream_events_in", "Events entering a step", ["step"])
EVENTS_OUT = Counter("stream_events_out", "Records leaving a step, by output port", ["step", "port"])
LATE_EVENTS = Counter(
    "stream_late_events", "Events at or behind the operator watermark when they arrived", ["step"]
)
VERY_LATE_EVENTS = Counter(
    "stream_very_late_events", "Events beyond allowed lateness, sent to the late output", ["step"]
)
DEAD_LETTERS = Counter("stream_dead_letters", "Input routed to the dead-letter output", ["reason"])
WATERMARK_LAG = Gauge(
    "stream_watermark_lag_seconds", "Processing time minus the operator watermark, when scraped", ["step"]
)
EVENT_TIME_LAG = Gauge(
    "stream_event_time_lag_seconds", "Processing time minus the newest event timestamp, when scraped", ["step"]
)
WINDOW_FIRINGS = Counter("stream_window_firings", "Window results emitted", ["step", "late"])
OPEN_STATE = Gauge(
    "stream_open_state", "Open windows, sessions, buffered elements or partial matches", ["step"]
)
SNAPSHOT_SECONDS = Histogram(
    "stream_snapshot_duration_seconds", "Time to snapshot one shard's state", ["step"],
    buckets=(0.001, 0.005, 0.02, 0.1, 0.5, 2.0, 10.0),
)
TRANSACTIONS = Counter(
    "stream_kafka_transactions", "Kafka transactions of transactional sinks", ["outcome"]
)
TENANT_EVENTS = Counter(
    "stream_tenant_events", "Events per tenant by outcome (multi_tenant flow; tenant label bounded)",
    ["tenant", "outcome"],
)
PROCESSING_SECONDS = Histogram(
    "stream_batch_processing_seconds", "Time to process one batch in a step, per event",
    ["step"], buckets=(1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1),
)


class Lag:
    """Wall-clock time minus an event time, computed when scraped. Steps set
    `event_time_ms` per batch; while a step is idle or its input stalls the
    lag keeps growing, which an alert on a stalled watermark needs (a lag set
    per batch would freeze at its last value). NaN until an event time is
    set; never below 0 (the end-of-input watermark is in the far future)."""

    __slots__ = ("event_time_ms",)

    def __init__(self) -> None:
        self.event_time_ms: Optional[int] = None

    def seconds(self) -> float:
        event_time_ms = self.event_time_ms
        if event_time_ms is None:
            return math.nan
        return max(0.0, time.time() - event_time_ms / 1000)


_lags: dict[tuple[Gauge, str], Lag] = {}
_lags_lock = threading.Lock()


def lag(gauge: Gauge, step: str) -> Lag:
    """The one `Lag` behind `gauge{step}` in this process, shared by the
    step's shards and channels in every worker (the last one set wins)."""
    with _lags_lock:
        found = _lags.get((gauge, step))
        if found is None:
            found = _lags[(gauge, step)] = Lag()
            gauge.labels(step).set_function(found.seconds)
        return found


_server_lock = threading.Lock()
_server_port: Optional[int] = None


def serve_from_env(env: Optional[dict[str, str]] = None) -> Optional[int]:
    """Start the metrics HTTP server once per process if `METRICS_PORT` is set."""
    global _server_port
    raw = (os.environ if env is None else env).get("METRICS_PORT")
    if not raw:
        return None
    with _server_lock:
        if _server_port is None:
            port = int(raw)
            start_http_server(port)
            _server_port = port
    return _server_port
