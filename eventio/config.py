"""Flow IO configuration from the environment, the same for every flow.

Each setting has an environment variable and a default; `build(**overrides)`
in a flow module passes lower-case overrides (`input_path="x.jsonl"`) that win
over the environment. The README lists every variable.

Outputs follow the run's medium (`Destination`): an output goes to a file
when its `*_PATH` is set, to Kafka when its `*_TOPIC` is; when neither is,
it goes to a file beside `OUTPUT_PATH` if results go to a file
(`out.jsonl` -> `out.late.jsonl`), else to its default topic. So a run with
`INPUT_PATH` and `OUTPUT_PATH` needs no Kafka at all.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping, Optional

from eventio.kafka_config import DEFAULT_CONNECT_TIMEOUT_S, KafkaSettings, env_properties
from eventio.partitioning import Partitioner, output_partitioner
from eventio.start_position import StartPosition, parse_start_offset

_TRUE = {"1", "true", "yes", "on"}
_NOT_FROM_ENV = ("kafka_properties",)


@dataclass(frozen=True)
class Destination:
    """Where one output goes: the file `path`, or else the Kafka `topic`;
    `setting` names the variable that chose it, for messages."""

    path: Optional[str]
    topic: Optional[str]
    setting: str

    @property
    def describe(self) -> str:
        """E.g. "output topic 'results' (OUTPUT_TOPIC)"."""
        return f"output file {self.path!r} ({self.setting})" if self.path else f"output topic {self.topic!r} ({self.setting})"


@dataclass(frozen=True)
class IOConfig:
    """Where a flow reads events and writes results, late events and errors."""

    input_path: Optional[str] = None
    kafka_bootstrap_servers: Optional[str] = None
    """None: `bootstrap.servers` of the Kafka properties, else localhost:9092."""
    input_topic: str = "events"
    input_topic_pattern: Optional[str] = None
    """None: the topics of `input_topic`; else every topic matching this regular expression."""
    partition_discovery_interval_ms: int = 30_000
    """How often a tailing Kafka input looks for new partitions and topics; 0: never."""
    output_path: Optional[str] = None
    output_topic: str = "results"
    output_partition_by: Optional[str] = None
    """None: results placed by key; else by this field (`eventio.partitioning`)."""
    late_output_path: Optional[str] = None
    late_topic: Optional[str] = None
    """None: not set; see `late_output`."""
    error_output_path: Optional[str] = None
    dlq_topic: Optional[str] = None
    """None: not set; see `dead_letter_output`."""
    start_offset: str = "earliest"
    """See `eventio.start_position`; parsed as `start_position`."""
    timestamp_source: str = "field"
    """Event time from the event's `timestamp` field, or `kafka`: the record's timestamp."""
    stop_at_end: bool = False
    kafka_batch_size: int = 1000
    max_message_bytes: Optional[int] = None
    """None: `message.max.bytes` of the Kafka properties, else 1,000,000."""
    consumer_group: Optional[str] = None
    kafka_properties_file: Optional[str] = None
    kafka_connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    kafka_properties: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """librdkafka properties of the `KAFKA_PROPERTY_*` variables (or the
    `kafka_properties` override); never shown, they may hold secrets."""

    @classmethod
    def from_env(
        cls, overrides: Optional[Mapping[str, Any]] = None, env: Optional[Mapping[str, str]] = None
    ) -> "IOConfig":
        """Read `INPUT_PATH`, `KAFKA_BOOTSTRAP_SERVERS`, ... then apply overrides."""
        env = os.environ if env is None else env
        overrides = dict(overrides or {})
        values: dict[str, Any] = {"kafka_properties": overrides.pop("kafka_properties")
                                  if "kafka_properties" in overrides else env_properties(env)}
        for f in fields(cls):
            if f.name in overrides:
                values[f.name] = overrides.pop(f.name)
                continue
            raw = env.get(f.name.upper())
            if f.name in _NOT_FROM_ENV or raw is None or raw == "":
                continue
            try:
                if f.type == "bool":
                    values[f.name] = raw.strip().lower() in _TRUE
                elif f.type in ("int", "Optional[int]"):
                    values[f.name] = int(raw)
                elif f.type == "float":
                    values[f.name] = float(raw)
                else:
                    values[f.name] = raw
            except ValueError:
                raise ValueError(f"{f.name.upper()} must be a number, got {raw!r}") from None
        cfg = cls(**values)
        if cfg.start_position.needs_group and not cfg.consumer_group:
            raise ValueError(f"START_OFFSET={cfg.start_offset!r} reads a consumer group's committed offsets: "
                             "set CONSUMER_GROUP to the group")
        check_timestamp_source(cfg.timestamp_source)
        check_discovery(cfg.input_topic_pattern, cfg.partition_discovery_interval_ms)
        cfg.output_partitioner  # noqa: B018 - a bad OUTPUT_PARTITION_BY stops the build
        cfg.kafka  # noqa: B018 - read the properties file now: a bad one stops the build, not the run
        return cfg

    @cached_property
    def kafka(self) -> KafkaSettings:
        """The Kafka client settings of every consumer, producer and admin
        client of the flow (`eventio.kafka_config`)."""
        return KafkaSettings.resolve(
            bootstrap_servers=self.kafka_bootstrap_servers,
            properties_file=self.kafka_properties_file,
            properties=self.kafka_properties,
            connect_timeout_s=self.kafka_connect_timeout_s,
            max_message_bytes=self.max_message_bytes,
        )

    @cached_property
    def start_position(self) -> StartPosition:
        """`START_OFFSET`, parsed (`ValueError` if it cannot be)."""
        return parse_start_offset(self.start_offset)

    @cached_property
    def output_partitioner(self) -> Optional[Partitioner]:
        """The results' partitioner of `OUTPUT_PARTITION_BY` (None: by key)."""
        return output_partitioner(self.output_partition_by)

    @property
    def record_time(self) -> bool:
        """Whether event time is the Kafka record's timestamp (`TIMESTAMP_SOURCE=kafka`)."""
        return self.timestamp_source.strip().lower() == "kafka"

    @property
    def input_topics(self) -> list[str]:
        return [t.strip() for t in self.input_topic.split(",") if t.strip()]

    @property
    def brokers(self) -> list[str]:
        return list(self.kafka.brokers)

    @property
    def results(self) -> Destination:
        """Results: `OUTPUT_PATH`, else `OUTPUT_TOPIC`."""
        if self.output_path:
            return Destination(self.output_path, None, "OUTPUT_PATH")
        return Destination(None, self.output_topic, "OUTPUT_TOPIC")

    @property
    def late_output(self) -> Destination:
        """Late events: `LATE_OUTPUT_PATH`, `LATE_TOPIC`, beside
        `OUTPUT_PATH` (`.late.jsonl`), else topic `late-events`."""
        return self.destination("late", self.late_output_path, self.late_topic, "late-events",
                                path_var="LATE_OUTPUT_PATH", topic_var="LATE_TOPIC")

    @property
    def dead_letter_output(self) -> Destination:
        """Dead letters: `ERROR_OUTPUT_PATH`, `DLQ_TOPIC`, beside
        `OUTPUT_PATH` (`.dlq.jsonl`), else topic `dlq`."""
        return self.destination("dlq", self.error_output_path, self.dlq_topic, "dlq",
                                path_var="ERROR_OUTPUT_PATH", topic_var="DLQ_TOPIC")

    @property
    def dead_letter_topic(self) -> str:
        """The topic Kafka sinks write the dead letters of records the broker
        refused to (`DLQ_TOPIC`, default `dlq`), whatever the medium of the
        other dead letters: only the sink that met the refusal can write it."""
        return self.dlq_topic or "dlq"

    def side_output(self, name: str, overrides: Mapping[str, Any], default_topic: str, *,
                    path_var: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> Destination:
        """A flow's extra output `name` (e.g. "audit"), set by
        `{NAME}_PATH` (or `path_var`) and `{NAME}_TOPIC`, or the lower-case
        overrides; see `destination`."""
        path_var = path_var or f"{name.upper()}_PATH"
        topic_var = f"{name.upper()}_TOPIC"
        return self.destination(name, setting(path_var.lower(), "", overrides, env),
                                setting(topic_var.lower(), "", overrides, env), default_topic,
                                path_var=path_var, topic_var=topic_var)

    def destination(self, name: str, path: Optional[str], topic: Optional[str], default_topic: str, *,
                    path_var: str, topic_var: str) -> Destination:
        """The file `path` if set; else the Kafka `topic` if set; else, when
        results go to a file, a file beside it (`out.jsonl` gives
        `out.<name>.jsonl`) rather than a Kafka topic nobody configured; else
        `default_topic`."""
        if path:
            return Destination(path, None, path_var)
        if topic:
            return Destination(None, topic, topic_var)
        if self.output_path:
            out = Path(self.output_path)
            stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
            return Destination(str(out.with_name(f"{stem}.{name}.jsonl")), None,
                               f"{path_var}, unset: beside OUTPUT_PATH")
        return Destination(None, default_topic, f"{topic_var}, default")


def setting(
    name: str,
    default: Any,
    overrides: Mapping[str, Any],
    env: Optional[Mapping[str, str]] = None,
) -> Any:
    """A flow-specific setting: override, else env var `NAME`, else default,
    converted to the default's type."""
    if name in overrides:
        return overrides[name]
    raw = (os.environ if env is None else env).get(name.upper())
    if raw is None or raw == "":
        return default
    if isinstance(default, bool):
        return raw.strip().lower() in _TRUE
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


TIMESTAMP_SOURCES = ("field", "kafka")


def check_timestamp_source(raw: str) -> None:
    """`ValueError` naming `TIMESTAMP_SOURCE` unless `raw` is one of `TIMESTAMP_SOURCES`."""
    if raw.strip().lower() not in TIMESTAMP_SOURCES:
        raise ValueError(f"TIMESTAMP_SOURCE must be 'field' (the event's timestamp) or 'kafka' (the Kafka "
                         f"record's timestamp), got {raw!r}")


def check_discovery(pattern: Optional[str], interval_ms: int) -> None:
    """`ValueError` naming the variable for an `INPUT_TOPIC_PATTERN` that is
    not a regular expression or a negative `PARTITION_DISCOVERY_INTERVAL_MS`."""
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as ex:
            raise ValueError(f"INPUT_TOPIC_PATTERN must be a regular expression, got {pattern!r}: {ex}") from None
    if interval_ms < 0:
        raise ValueError(f"PARTITION_DISCOVERY_INTERVAL_MS must be 0 (no discovery) or a positive number of "
                         f"milliseconds, got {interval_ms}")


def split_overrides(overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split `build(**overrides)` into IO settings and flow-specific ones."""
    io_names = {f.name for f in fields(IOConfig)}
    io = {k: v for k, v in overrides.items() if k in io_names}
    rest = {k: v for k, v in overrides.items() if k not in io_names}
    return io, rest
