"""Flow IO configuration, the same for every flow, declared once.

`IO_SETTINGS` declares every IO variable (`eventio.settings`); a flow lists
them with its own, resolves them in `build(**overrides)` (lower-case
overrides such as `input_path="x.jsonl"` win over the environment) and makes
its `IOConfig` with `IOConfig.from_settings`.

Outputs follow the run's medium (`Destination`): an output goes to a file
when its `*_PATH` is set, to Kafka when its `*_TOPIC` is; when neither is,
it goes to a file beside `OUTPUT_PATH` if results go to a file
(`out.jsonl` -> `out.late.jsonl`), else to its default topic. So a run with
`INPUT_PATH` and `OUTPUT_PATH` needs no Kafka at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from eventio.decoding import SERDE_SETTINGS, SerdeConfig
from eventio.kafka_config import DEFAULT_CONNECT_TIMEOUT_S, PROPERTY_PREFIX, KafkaSettings, env_properties
from eventio.partitioning import Partitioner, output_partitioner
from eventio.settings import (BOOLEAN, TEXT, FlowSettings, Kind, Setting, SettingsError, WhyNot, choice, integer,
                              number)
from eventio.start_position import EXPECTED, StartPosition, parse_start_offset


@dataclass(frozen=True)
class KafkaPropertiesSetting(Setting):
    """The `KAFKA_PROPERTY_<NAME>` family: every such variable is one
    librdkafka property; the override `kafka_properties` is a mapping.
    Check shows their names, never their values."""

    @property
    def key(self) -> str:
        return "kafka_properties"

    def read(self, env: Mapping[str, str], overrides: Mapping[str, Any]) -> Any:
        if self.key in overrides:
            value = overrides[self.key]
            if not isinstance(value, Mapping):
                raise ValueError("kafka_properties: expected a mapping of librdkafka property names to values")
            return dict(value)
        return env_properties(env)

    def text(self, value: Any) -> str:
        return ", ".join(f"{name}=***" for name in sorted(value)) or "(none)"

    def default_text(self) -> str:
        return "none"


def _optional(name: str, doc: str, kind: Kind = TEXT) -> Setting:
    return Setting(name, kind, None, doc, optional=True)


def _checked_by(check: Callable[[str], Any], expected: str) -> Kind:
    """Text that `check` accepts (it raises `ValueError` otherwise), kept as given."""

    def parse(text: str) -> str:
        check(text)
        return text

    def accepts(value: Any) -> bool:
        try:
            return isinstance(value, str) and parse(value) is not None
        except ValueError:
            return False

    return Kind(expected, parse, accepts)


def _regex(text: str) -> None:
    try:
        re.compile(text)
    except re.error as ex:
        raise WhyNot(str(ex)) from None


IO_SETTINGS: tuple[Setting, ...] = (
    _optional("INPUT_PATH", "JSON-lines input file (comma-separated for several; one watermark channel each). "
              "Bounded: the end of the files ends the flow. When set, Kafka input is not used"),
    _optional("KAFKA_BOOTSTRAP_SERVERS", "Kafka brokers, `host:port,...`; unset: `bootstrap.servers` of the "
              "Kafka properties, else `localhost:9092`"),
    Setting("INPUT_TOPIC", TEXT, "events", "input topics, comma-separated; each partition is a watermark channel"),
    _optional("INPUT_TOPIC_PATTERN", "instead of `INPUT_TOPIC`: every topic whose whole name matches this regular "
              "expression (internal `__` topics never), as Flink's `setTopicPattern`; see [Kafka source and sink]"
              "(#kafka-source-and-sink-beside-flinks)", _checked_by(_regex, "a regular expression")),
    Setting("PARTITION_DISCOVERY_INTERVAL_MS", integer(0, unit="milliseconds"), 30_000,
            "how often a tailing Kafka input looks for new partitions of its topics and new topics matching "
            "`INPUT_TOPIC_PATTERN`, read from their beginning (Flink's `partition.discovery.interval.millis`); "
            "0: never. Off with `STOP_AT_END`, as in Flink's bounded mode"),
    _optional("OUTPUT_PATH", "results as JSON lines to this file; unset: to `OUTPUT_TOPIC`"),
    Setting("OUTPUT_TOPIC", TEXT, "results", "results topic"),
    _optional("OUTPUT_PARTITION_BY", "place results on the Kafka partition of this field's value (`event_type`: "
              "each type on one partition), at-least-once and exactly-once alike; unset: by key, as librdkafka's "
              "default partitioner. Late events and dead letters stay by key",
              _checked_by(output_partitioner, "the name of a field of the results")),
    _optional("LATE_OUTPUT_PATH", "late side output, the late events themselves as event JSON, to this file; "
              "unset: to `LATE_TOPIC`, else beside `OUTPUT_PATH` (`out.late.jsonl`) when results go to a file"),
    _optional("LATE_TOPIC", "late side output topic; unset: `late-events` when results go to Kafka"),
    _optional("ERROR_OUTPUT_PATH", "dead letters (input that cannot be decoded, results that cannot be encoded "
              "or that Kafka refuses: original bytes, provenance and reason) to this file; unset: to `DLQ_TOPIC`, "
              "else beside `OUTPUT_PATH` (`out.dlq.jsonl`) when results go to a file"),
    _optional("DLQ_TOPIC", "dead-letter topic; unset: `dlq` when results go to Kafka (records a Kafka sink meets "
              "refused always go to a topic: this one, else `dlq`)"),
    Setting("START_OFFSET", _checked_by(parse_start_offset, EXPECTED.replace("'", "")), "earliest",
            "where a Kafka partition without a recovery position starts: `committed` is `CONSUMER_GROUP`'s "
            "committed offset (a partition without one stops the run; `committed:earliest|latest` start there "
            "instead), `timestamp:` the first record at or after that time; afterwards positions come from "
            "Bytewax recovery"),
    Setting("TIMESTAMP_SOURCE", choice("field", "kafka"), "field",
            "event time from the event's `timestamp` field, or `kafka`: the Kafka record's timestamp (create or "
            "log-append time, as Flink's default without an assigner), which then replaces the event's "
            "`timestamp` (outputs carry it); Kafka input only"),
    Setting("STOP_AT_END", BOOLEAN, False, "stop at the end the Kafka topics had at start-up instead of tailing "
            "them (a bounded Kafka run)"),
    Setting("KAFKA_BATCH_SIZE", integer(1), 1000, "records per consume call"),
    _optional("MAX_MESSAGE_BYTES", "the largest record a flow reads or writes, bytes: larger input records and "
              "results go to the dead-letter output, cut to fit; it is also every producer's `message.max.bytes` "
              "(one setting: a `message.max.bytes` in the Kafka properties sets it too, and both may be given only "
              "if equal); unset: 1000000", integer(1)),
    _optional("CONSUMER_GROUP", "Kafka consumer group to commit each input partition's offset to at every "
              "snapshot, as Flink's Kafka source commits on checkpoint: for monitoring with Kafka's consumer-group "
              "tools only; positions on restart come from Bytewax recovery. Partitions are assigned, never joined "
              "to the group"),
    _optional("KAFKA_PROPERTIES_FILE", "a Java-style properties file (`key=value`) of librdkafka properties for "
              "every Kafka client of the flow, as Flink's `--kafka.properties` (TLS, SASL, ...)"),
    KafkaPropertiesSetting(f"{PROPERTY_PREFIX}<NAME>", TEXT, {}, "one librdkafka property, `NAME` lower-cased "
                           "with `_` as `.` (`KAFKA_PROPERTY_SECURITY_PROTOCOL=SSL`); wins over the file; `check` "
                           "shows the names only", secret=True),
    Setting("KAFKA_CONNECT_TIMEOUT_S", number(0, unit="seconds"), DEFAULT_CONNECT_TIMEOUT_S,
            "how long a flow waits for its Kafka brokers: at start-up for each topic it reads or writes, and "
            "while running for a broker to be back, before it stops (exit 69)"),
    *SERDE_SETTINGS,
)
"""The IO variables every flow reads."""


def side_output_settings(name: str, default_topic: str, what: str, *, path_var: Optional[str] = None) -> tuple[Setting, ...]:
    """The two variables of a flow's extra output `name` (e.g. "audit"):
    `{NAME}_PATH` (or `path_var`) and `{NAME}_TOPIC`; see `IOConfig.destination`."""
    path_var = path_var or f"{name.upper()}_PATH"
    return (
        _optional(path_var, f"{what} to this file; unset: beside `OUTPUT_PATH` (`out.{name}.jsonl`) when "
                  "results go to a file"),
        _optional(f"{name.upper()}_TOPIC", f"{what} topic; unset: `{default_topic}` when results go to Kafka"),
    )


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
    serde: SerdeConfig = field(default_factory=SerdeConfig)
    """How input values are decoded (`VALUE_FORMAT`, `SCHEMA_*`)."""

    @classmethod
    def from_settings(cls, values: Mapping[str, Any]) -> "IOConfig":
        """The configuration of resolved settings (`FlowSettings.resolve`
        over `IO_SETTINGS` and more). Reads the Kafka properties file now:
        a bad one stops the build, not the run."""
        cfg = cls(**{f.name: values[f.name] for f in fields(cls) if f.name != "serde"},
                  serde=SerdeConfig.from_settings(values))
        if cfg.start_position.needs_group and not cfg.consumer_group:
            raise SettingsError([f"START_OFFSET={cfg.start_offset!r} reads a consumer group's committed offsets: "
                                 "set CONSUMER_GROUP to the group"])
        cfg.kafka  # noqa: B018
        return cfg

    @classmethod
    def from_env(cls, overrides: Optional[Mapping[str, Any]] = None,
                 env: Optional[Mapping[str, str]] = None) -> "IOConfig":
        """The IO settings alone, from `overrides` and `env` (default
        `os.environ`): for code that builds its own flow."""
        return cls.from_settings(FlowSettings("io", IO_SETTINGS).resolve(overrides, env))

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

    def side_output(self, name: str, values: Mapping[str, Any], default_topic: str, *,
                    path_var: Optional[str] = None) -> Destination:
        """A flow's extra output `name` (e.g. "audit") of the resolved
        `side_output_settings(name, ...)` in `values`; see `destination`."""
        path_var = path_var or f"{name.upper()}_PATH"
        topic_var = f"{name.upper()}_TOPIC"
        return self.destination(name, values.get(path_var.lower()), values.get(topic_var.lower()), default_topic,
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

