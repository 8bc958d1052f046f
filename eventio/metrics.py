"""Prometheus metrics every flow exports, served on `METRICS_HOST`:`METRICS_PORT`.

Metrics live in prometheus-client's default registry, so Bytewax's own
endpoint (`BYTEWAX_DATAFLOW_API_ENABLED=true`, port 3030, `/metrics`) serves
them too, next to Bytewax's built-in metrics. Names follow Prometheus'
conventions: base units (`_seconds`), `_total` for counters, one meaning per
name, labels for kinds. Label values are bounded: step ids, ports, topics,
outcomes and reasons (exception class names). Consumer lag per partition is
Bytewax's own `bytewax_kafka_consumer_lag{step_id,topic,partition}`,
registered in the same registry by its Kafka source and kept up to date by
ours. The README's metrics table lists every one (a test compares it with
what the endpoint serves).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Mapping, Optional

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from eventio.settings import TEXT, FlowSettings, Setting, SettingsError, integer

EVENTS_IN = Counter("stream_events_in", "Events entering a keyed event-time step", ["step"])
RECORDS_OUT = Counter(
    "stream_records_out",
    'Records a keyed event-time step emitted, by output port (port="late": its late side output)',
    ["step", "port"],
)
EVENTS_BEHIND_WATERMARK = Counter(
    "stream_events_behind_watermark",
    "Events at or behind the step's watermark when they arrived (processed if within the allowed lateness)",
    ["step"],
)
DEAD_LETTERS = Counter(
    "stream_dead_letters", "Input records routed to the dead-letter output, by error class", ["reason"]
)
KAFKA_RECORDS_READ = Counter(
    "stream_kafka_records_read", "Records read from Kafka input partitions, decoded or dead-lettered", ["step", "topic"]
)
WATERMARK = Gauge(
    "stream_watermark_timestamp_seconds",
    "The step's watermark as a Unix time (NaN until known, +Inf after the end of a bounded input)",
    ["step"],
)
WATERMARK_LAG = Gauge(
    "stream_watermark_lag_seconds", "Wall-clock time minus the step's watermark, when scraped", ["step"]
)
EVENT_TIME_LAG = Gauge(
    "stream_event_time_lag_seconds", "Wall-clock time minus the newest event timestamp of a step, when scraped",
    ["step"],
)
WINDOW_FIRINGS = Counter(
    "stream_window_firings", 'Window results emitted (late="true": results superseding an earlier one)', ["step", "late"]
)
STATE_ENTRIES = Gauge("stream_state_entries", "Entries a step holds in its state, by what they are", ["step", "kind"])
SNAPSHOT_SECONDS = Histogram(
    "stream_snapshot_duration_seconds", "Time to snapshot one shard's state", ["step"],
    buckets=(0.001, 0.005, 0.02, 0.1, 0.5, 2.0, 10.0),
)
PROCESSING_SECONDS = Counter(
    "stream_processing_seconds", "Wall-clock time a step's shards spent processing batches", ["step"]
)
TRANSACTIONS = Counter(
    "stream_kafka_transactions", "Kafka transactions of exactly-once sinks, by outcome", ["outcome"]
)
TRANSACTION_OUTCOMES = ("committed", "aborted", "fenced")
"""`outcome` values of `TRANSACTIONS`: aborted ones are retried, a fenced
producer stops its flow."""

_tenant_events: Optional[Counter] = None
_tenant_lock = threading.Lock()


def tenant_events() -> Counter:
    """Events per tenant by outcome, registered on first use so that only the
    multi_tenant flow serves it."""
    global _tenant_events
    with _tenant_lock:
        if _tenant_events is None:
            _tenant_events = Counter(
                "stream_tenant_events", "Events per tenant by outcome (multi_tenant flow; tenant label bounded)",
                ["tenant", "outcome"],
            )
        return _tenant_events


_END_OF_TIME_MS = 2**63 - 1
"""The end-of-input watermark (`operators.time.eventtime.MAX_WATERMARK`)."""


class EventTime:
    """An event time a step sets per batch (`ms`, epoch milliseconds), exported
    as gauges computed when scraped: while a step is idle or its input stalls
    the lag keeps growing, which an alert on a stalled watermark needs (a lag
    set per batch would freeze at its last value). NaN until set; the lag is
    never below 0 and the timestamp is +Inf at the end of input."""

    __slots__ = ("ms",)

    def __init__(self) -> None:
        self.ms: Optional[int] = None

    def lag_seconds(self) -> float:
        ms = self.ms
        if ms is None:
            return math.nan
        return max(0.0, time.time() - ms / 1000)

    def timestamp_seconds(self) -> float:
        ms = self.ms
        if ms is None:
            return math.nan
        return math.inf if ms >= _END_OF_TIME_MS else ms / 1000


_event_times: dict[tuple[str, str], EventTime] = {}
_event_times_lock = threading.Lock()


def _event_time(what: str, step: str, gauges: tuple[tuple[Gauge, str], ...]) -> EventTime:
    with _event_times_lock:
        found = _event_times.get((what, step))
        if found is None:
            found = _event_times[(what, step)] = EventTime()
            for gauge, reading in gauges:
                gauge.labels(step).set_function(getattr(found, reading))
        return found


def watermark(step: str) -> EventTime:
    """The one `EventTime` behind `stream_watermark_timestamp_seconds{step}`
    and `stream_watermark_lag_seconds{step}` in this process, shared by the
    step's shards in every worker (the last one set wins)."""
    return _event_time("watermark", step, ((WATERMARK, "timestamp_seconds"), (WATERMARK_LAG, "lag_seconds")))


def newest_event(step: str) -> EventTime:
    """The one `EventTime` behind `stream_event_time_lag_seconds{step}`, shared
    by the step's channels in every worker."""
    return _event_time("newest", step, ((EVENT_TIME_LAG, "lag_seconds"),))


_server_lock = threading.Lock()
_server_port: Optional[int] = None


DEFAULT_METRICS_HOST = "0.0.0.0"
"""All IPv4 interfaces, as an exporter in a container needs."""

METRICS_SETTINGS: tuple[Setting, ...] = (
    Setting("METRICS_PORT", integer(1, 65535), None, "serve Prometheus metrics on this port; unset: not served",
            optional=True),
    Setting("METRICS_HOST", TEXT, DEFAULT_METRICS_HOST,
            "interface of the metrics server (`127.0.0.1`: this host only, `::`: IPv6)"),
)


def serve(values: Mapping[str, Any]) -> Optional[int]:
    """Start the metrics HTTP server once per process on the resolved
    `METRICS_HOST`:`METRICS_PORT`, if a port is set. A port that cannot be
    listened on is a `SettingsError` naming it."""
    global _server_port
    port, host = values["metrics_port"], values["metrics_host"]
    if port is None:
        return None
    with _server_lock:
        if _server_port is None:
            try:
                start_http_server(port, addr=host)
            except OSError as ex:
                raise SettingsError([f"METRICS_PORT={port}: cannot listen on {host}:{port}: {ex.strerror or ex}"]) from None
            _server_port = port
    return _server_port


def serve_from_env(env: Optional[Mapping[str, str]] = None) -> Optional[int]:
    """`serve` with the metrics settings of `env` (default `os.environ`)."""
    return serve(FlowSettings("metrics", METRICS_SETTINGS).resolve(env=env))
