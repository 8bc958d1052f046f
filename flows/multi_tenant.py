"""Multi-tenant processing: per-tenant rate limits and settings from a
broadcast configuration stream.

Events are keyed by `tenant_id` (events without one go to the dead-letter
output), so every tenant has its own state and no state crosses tenants. A
tenant's configuration is a JSON record

    {"tenant_id": "acme", "rate_per_second": 50, "burst": 100,
     "tier": "gold", "drop_event_types": ["idle"]}

(`tier` defaults to "standard", `drop_event_types` to none); the record for
tenant `"*"` applies to every tenant without its own, and
`{"tenant_id": "acme", "deleted": true}` sends a tenant back to `"*"`.

Per event, in processing time (the injected clock):
1. its tenant's configuration is looked up;
2. events whose type is in `drop_event_types` are dropped (counted only);
3. the tenant's token bucket (`burst` tokens, refilled at `rate_per_second`;
   `operators/process/token_bucket.py`) takes a token: the event goes to the main
   output as event JSON plus `"tier"`, or, with no token left, to the
   `rate_limited` side output as event JSON. Outputs on Kafka are keyed by
   `tenant_id`.

Configuration sources. The built-in defaults (`flows/config/tenants.jsonl`:
`"*"` at 100 events/s, burst 200, tier "standard") and the records of
`TENANT_CONFIG_PATH` (one record per tenant) are in force before the first
event. The broadcast stream (`broadcast_process`, Flink's broadcast state) is
`TENANT_CONFIG_TOPIC` if set — live changes, read from the earliest offset —
else the `TENANT_CONFIG_PATH` file, else the built-in defaults; records
already in force replay as no-ops. As in Flink, broadcast records and events
are not ordered with each other: an event processed before a live change
arrives sees the previous configuration. A changed limit applies from the
tenant's next event (tokens held are capped at the new burst). Malformed
configuration records go to the dead-letter output. Broadcast state is part
of every shard's snapshot, so live changes survive a restart.

Per-tenant metrics: `stream_tenant_events_total{tenant, outcome}` with outcome
`accepted`, `rate_limited` or `dropped`. Label cardinality is bounded: only
tenants named in the configuration in force at start (built-in defaults and
`TENANT_CONFIG_PATH`), at most `TENANT_METRICS_LIMIT` of them, get their own
`tenant` label; all other tenants are counted under `tenant="other"`.

Configuration (besides the IO variables):

    python -m bytewax.run flows.multi_tenant:flow
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Union

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream

from eventio import metrics
from eventio.bytewax_run import exits_on_configuration_error, lazy_flow
from eventio.config import IOConfig, side_output_settings
from eventio.deadletter import DeadLetter
from eventio.event import Event
from eventio.flow_setup import SHARDS, SHARED_SETTINGS, configure
from eventio.flowio import JsonLinesSource, kafka_source, read_events, require, write_dead_letters, write_json, write_output
from eventio.settings import TEXT, ConfigurationError, FlowSettings, Setting, integer
from flows import BROKER, Quickstart
from operators import (
    BoundedOutOfOrderness,
    BroadcastContext,
    Collector,
    KeyedBroadcastContext,
    KeyedBroadcastProcessFunction,
    TokenBucket,
    broadcast_process,
    key_by,
    system_clock_ms,
)

DEFAULTS_PATH = Path(__file__).resolve().parent / "config" / "tenants.jsonl"
DEFAULT_TENANT = "*"
RATE_LIMITED = "rate_limited"
DROPPED = "dropped"


class TenantConfigError(ConfigurationError):
    """A tenant configuration record that cannot be used; the message says why."""


@dataclass(frozen=True)
class TenantConfig:
    """One tenant's limits and settings; `deleted` sends it back to `"*"`."""

    tenant_id: str
    bucket: Optional[TokenBucket] = None
    tier: str = "standard"
    drop_event_types: frozenset[str] = frozenset()
    deleted: bool = False


def parse_tenant_config(data: Any) -> TenantConfig:
    """Validate one decoded configuration record."""
    if not isinstance(data, dict):
        raise TenantConfigError(f"a tenant configuration is a JSON object, got {type(data).__name__}")
    tenant = data.get("tenant_id")
    if not isinstance(tenant, str) or not tenant:
        raise TenantConfigError(f"tenant_id must be a non-empty string, got {tenant!r}")
    if data.get("deleted") is True:
        if tenant == DEFAULT_TENANT:
            raise TenantConfigError(f"the default tenant {DEFAULT_TENANT!r} cannot be deleted")
        return TenantConfig(tenant, deleted=True)
    unknown = set(data) - {"tenant_id", "rate_per_second", "burst", "tier", "drop_event_types", "deleted"}
    if unknown:
        raise TenantConfigError(f"tenant {tenant!r}: unknown fields {sorted(unknown)}")
    for name in ("rate_per_second", "burst"):
        if name not in data:
            raise TenantConfigError(f"tenant {tenant!r}: missing {name!r}")
    try:
        bucket = TokenBucket(data["rate_per_second"], data["burst"])
    except ValueError as ex:
        raise TenantConfigError(f"tenant {tenant!r}: {ex}") from ex
    tier = data.get("tier", "standard")
    if not isinstance(tier, str):
        raise TenantConfigError(f"tenant {tenant!r}: tier must be a string, got {tier!r}")
    drop = data.get("drop_event_types", [])
    if not isinstance(drop, list) or not all(isinstance(t, str) for t in drop):
        raise TenantConfigError(f"tenant {tenant!r}: drop_event_types must be a list of strings, got {drop!r}")
    return TenantConfig(tenant, bucket, tier, frozenset(drop))


def parse_tenant_config_json(raw: Union[str, bytes]) -> TenantConfig:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as ex:
        raise TenantConfigError(f"invalid JSON: {ex}") from ex
    return parse_tenant_config(data)


def load_tenant_configs(path: Union[str, Path]) -> dict[str, TenantConfig]:
    """The configuration file's records by tenant, read when the flow is
    built; a bad record or a tenant given twice is refused with its line."""
    configs: dict[str, TenantConfig] = {}
    seen: dict[str, int] = {}
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                config = parse_tenant_config_json(raw)
            except TenantConfigError as ex:
                raise TenantConfigError(f"{path}:{n}: {ex}") from ex
            if config.tenant_id in seen:
                raise TenantConfigError(
                    f"{path}:{n}: tenant {config.tenant_id!r} is already configured on line "
                    f"{seen[config.tenant_id]}; give one record per tenant"
                )
            seen[config.tenant_id] = n
            configs[config.tenant_id] = config
    return configs


class TenantGate(KeyedBroadcastProcessFunction[Event, TenantConfig]):
    """Drops, rate-limits or passes each tenant's events by its configuration.

    `initial` is the configuration in force before any broadcast record (it
    must configure `"*"`); broadcast records override it per tenant. Keyed
    state per tenant: its token bucket.
    """

    def __init__(self, initial: Mapping[str, TenantConfig]) -> None:
        default = initial.get(DEFAULT_TENANT)
        if default is None or default.bucket is None:
            raise TenantConfigError(f"the initial configuration must configure tenant {DEFAULT_TENANT!r}")
        self.initial = dict(initial)

    def process_broadcast_element(self, value: TenantConfig, ctx: BroadcastContext) -> None:
        ctx.broadcast_state[value.tenant_id] = value

    def config_of(self, tenant: str, live: Mapping[str, TenantConfig]) -> TenantConfig:
        config = live.get(tenant) or self.initial.get(tenant)
        if config is None or config.deleted:
            config = live.get(DEFAULT_TENANT) or self.initial[DEFAULT_TENANT]
        return config

    def process_element(self, value: Event, ctx: KeyedBroadcastContext, out: Collector) -> None:
        config = self.config_of(ctx.current_key, ctx.broadcast_state)
        if value.event_type in config.drop_event_types:
            ctx.output(DROPPED, value)
            return
        state = ctx.state
        assert config.bucket is not None
        passed, state["bucket"] = config.bucket.try_take(
            state.get("bucket"), ctx.timer_service.current_processing_time()
        )
        if passed:
            out.collect((value, config.tier))
        else:
            ctx.output(RATE_LIMITED, value)


class TenantLabels:
    """Bounded `tenant` label values: the first `limit` named tenants keep
    their id, everything else is `"other"`."""

    def __init__(self, tenants: Iterable[str], limit: int) -> None:
        self.named = frozenset(t for t in sorted(tenants) if t != DEFAULT_TENANT)
        if len(self.named) > limit:
            self.named = frozenset(sorted(self.named)[:limit])
        self._children: dict[tuple[str, str], Any] = {}

    def count(self, tenant: str, outcome: str) -> None:
        label = tenant if tenant in self.named else "other"
        child = self._children.get((label, outcome))
        if child is None:
            child = self._children[(label, outcome)] = metrics.tenant_events().labels(label, outcome)
        child.inc()


def _config_lines(lines: list[bytes], path: str, first: int) -> list[Union[TenantConfig, DeadLetter]]:
    """Tenant configuration lines of a file (a `JsonLinesSource` decoder)."""
    out: list[Union[TenantConfig, DeadLetter]] = []
    for n, raw in enumerate(lines, first):
        raw = raw.rstrip(b"\r")
        try:
            out.append(parse_tenant_config_json(raw))
        except TenantConfigError as ex:
            out.append(DeadLetter.of(ex, source=path, value=raw, offset=n))
    return out


def _config_record(value: Optional[bytes], key: Optional[bytes], topic: str, partition: int, offset: int,
                   channel: Optional[str] = None) -> Union[TenantConfig, DeadLetter]:
    """A tenant configuration record of the Kafka topic (a `DecodingKafkaSource` decoder)."""
    try:
        if value is None:
            raise TenantConfigError("message has no value")
        return parse_tenant_config_json(value)
    except TenantConfigError as ex:
        return DeadLetter.of(ex, source=topic, value=value, key=key, partition=partition, offset=offset)


def tenant_configs(
    flow: Dataflow, cfg: IOConfig, path: Optional[str], topic: Optional[str]
) -> tuple[Stream[TenantConfig], Stream[DeadLetter]]:
    """The broadcast configuration stream and its dead letters."""
    if topic:
        earliest = dataclasses.replace(cfg, start_offset="earliest")
        parsed = op.input("config_kafka", flow, kafka_source(earliest, [topic], _config_record, "TENANT_CONFIG_TOPIC"))
    else:
        parsed = op.input("config_file", flow, JsonLinesSource([path or str(DEFAULTS_PATH)], _config_lines))
    split = op.branch("config_split", parsed, lambda x: isinstance(x, TenantConfig))
    return split.trues, split.falses


SETTINGS = FlowSettings(
    "multi_tenant",
    SHARED_SETTINGS,
    (Setting("TENANT_CONFIG_PATH", TEXT, None, "JSON-lines tenant configurations, in force from the start",
             optional=True),
     Setting("TENANT_CONFIG_TOPIC", TEXT, None, "Kafka topic of tenant configuration changes (broadcast)",
             optional=True),
     *side_output_settings("rate_limited", "rate-limited", "events over their tenant's limit, as event JSON,"),
     Setting("TENANT_METRICS_LIMIT", integer(0), 100, "most tenants with their own metrics label"),
     SHARDS),
)
QUICKSTART = Quickstart(
    "tenants --count 20000 --output events.jsonl --config-output tenants.jsonl",
    "INPUT_PATH=events.jsonl TENANT_CONFIG_PATH=tenants.jsonl OUTPUT_PATH=out.jsonl",
    f"tenants --count 20000 --topic events --config-output tenants.jsonl --bootstrap {BROKER}",
    f"KAFKA_BOOTSTRAP_SERVERS={BROKER} STOP_AT_END=true TENANT_CONFIG_PATH=tenants.jsonl")
"""How to make input for it and run it."""
EXAMPLE_OUTPUT = {"event_id": "e00000300", "user_id": "u00423", "event_type": "page_view",
                  "timestamp": 1704067207243, "tenant_id": "t03", "tier": "standard"}
"""A real output record (of the generator's events)."""


@exits_on_configuration_error
def build(**overrides: Any) -> Dataflow:
    """The flow, configured by `SETTINGS` from the environment and
    `overrides` (their lower-case names, and `clock`: processing time in
    ms, for tests)."""
    s, cfg = configure(SETTINGS, overrides, extra=("clock",))
    config_path, config_topic = s["tenant_config_path"], s["tenant_config_topic"]
    clock = overrides.get("clock", system_clock_ms)
    initial = load_tenant_configs(DEFAULTS_PATH)
    if config_path:
        initial.update(load_tenant_configs(config_path))
    labels = TenantLabels(initial, s["tenant_metrics_limit"])

    flow = Dataflow("multi_tenant")
    src = require("tenanted", read_events(flow, "read", cfg), "tenant_id")
    configs, config_errors = tenant_configs(flow, cfg, config_path, config_topic)
    gated = broadcast_process(
        "gate",
        key_by("by_tenant", src.events, attrgetter("tenant_id")),
        configs,
        function=TenantGate(initial),
        timestamp_of=attrgetter("timestamp"),
        watermarks=lambda: BoundedOutOfOrderness(0),
        side_outputs=(RATE_LIMITED, DROPPED),
        shards=s["shards"],
        clock=clock,
    )

    def accepted(item: tuple[str, tuple[Event, str]]) -> dict[str, Any]:
        tenant, (event, tier) = item
        labels.count(tenant, "accepted")
        return {**event.to_dict(), "tier": tier}

    def limited(item: tuple[str, Event]) -> Event:
        labels.count(item[0], RATE_LIMITED)
        return item[1]

    unencodable = [write_output("out", op.map("accepted", gated.down, accepted), cfg, key_of=lambda r: r["tenant_id"])]
    unencodable.append(write_json(
        "rate_limited",
        op.map("limited", gated.side[RATE_LIMITED], limited),
        cfg,
        cfg.side_output("rate_limited", s, "rate-limited"),
        key_of=attrgetter("tenant_id"),
    ))
    op.inspect("dropped", gated.side[DROPPED], lambda _step, item: labels.count(item[0], DROPPED))
    write_dead_letters("dlq", src.errors, cfg, config_errors, *unencodable)
    return flow


__getattr__ = lazy_flow(build)
