"""Flow IO configuration from the environment, the same for every flow.

Each setting has an environment variable and a default; `build(**overrides)`
in a flow module passes lower-case overrides (`input_path="x.jsonl"`) that win
over the environment. The README lists every variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Optional

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class IOConfig:
    """Where a flow reads events and writes results, late events and errors."""

    input_path: Optional[str] = None
    kafka_bootstrap_servers: str = "localhost:9092"
    input_topic: str = "events"
    output_path: Optional[str] = None
    output_topic: str = "results"
    late_output_path: Optional[str] = None
    late_topic: str = "late-events"
    error_output_path: Optional[str] = None
    dlq_topic: str = "dlq"
    start_offset: str = "earliest"
    stop_at_end: bool = False
    kafka_batch_size: int = 1000
    max_message_bytes: int = 1_048_576
    consumer_group: Optional[str] = None

    @classmethod
    def from_env(
        cls, overrides: Optional[Mapping[str, Any]] = None, env: Optional[Mapping[str, str]] = None
    ) -> "IOConfig":
        """Read `INPUT_PATH`, `KAFKA_BOOTSTRAP_SERVERS`, ... then apply overrides."""
        env = os.environ if env is None else env
        overrides = dict(overrides or {})
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in overrides:
                values[f.name] = overrides.pop(f.name)
                continue
            raw = env.get(f.name.upper())
            if raw is None or raw == "":
                continue
            if f.type == "bool":
                values[f.name] = raw.strip().lower() in _TRUE
            elif f.type == "int":
                values[f.name] = int(raw)
            else:
                values[f.name] = raw
        cfg = cls(**values)
        if cfg.start_offset not in ("earliest", "latest"):
            raise ValueError(f"START_OFFSET must be 'earliest' or 'latest', got {cfg.start_offset!r}")
        return cfg

    @property
    def input_topics(self) -> list[str]:
        return [t.strip() for t in self.input_topic.split(",") if t.strip()]

    @property
    def brokers(self) -> list[str]:
        return [b.strip() for b in self.kafka_bootstrap_servers.split(",") if b.strip()]

    def side_output_path(self, explicit: str, name: str) -> Optional[str]:
        """Where a flow's extra output `name` goes: `explicit` if set; else,
        when results go to a file, a sibling of it (`out.jsonl` gives
        `out.<name>.jsonl`) rather than a Kafka topic nobody configured; else
        None, meaning the side output's own topic."""
        if explicit:
            return explicit
        if not self.output_path:
            return None
        out = Path(self.output_path)
        stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
        return str(out.with_name(f"{stem}.{name}.jsonl"))


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


def split_overrides(overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split `build(**overrides)` into IO settings and flow-specific ones."""
    io_names = {f.name for f in fields(IOConfig)}
    io = {k: v for k, v in overrides.items() if k in io_names}
    rest = {k: v for k, v in overrides.items() if k not in io_names}
    return io, rest
