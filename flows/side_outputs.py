"""Where a flow's extra outputs go when only the foundation's IO variables are set.

A side output (errors, audit, rate-limited events, ...) has its own `*_PATH`
and `*_TOPIC` variables. When its path is unset but the results go to a file
(`OUTPUT_PATH`), it goes to a file next to the results rather than to a Kafka
topic nobody configured: `out.jsonl` gives `out.errors.jsonl`. Otherwise it
goes to its topic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from eventio.config import IOConfig


def side_output_path(cfg: IOConfig, explicit: str, name: str) -> Optional[str]:
    """`explicit` if set, else a sibling of `OUTPUT_PATH` named for `name`,
    else None (write to the side output's topic)."""
    if explicit:
        return explicit
    if not cfg.output_path:
        return None
    out = Path(cfg.output_path)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return str(out.with_name(f"{stem}.{name}.jsonl"))
