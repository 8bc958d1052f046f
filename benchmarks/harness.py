"""Benchmark harness: each case runs in a fresh process, several times.

A case is a function returning `{"events": n, "seconds": s}` (plus optional
extra figures); it is registered with `@case(name, what, **params)`. The
harness runs `python -m benchmarks.child NAME` per repetition so peak RSS is
that run's own (`benchmarks/child.py`), takes the median events/s, and
reports the machine.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

Result = dict[str, Any]


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    run: Callable[..., Result]
    params: dict[str, Any] = field(default_factory=dict)
    baseline: str | None = None
    repeat: int = 3


CASES: dict[str, Case] = {}


def case(name: str, what: str, *, baseline: str | None = None, repeat: int = 3, **params: Any) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    """Register `fn(**params)` as benchmark `name`; `baseline` names the case
    it is compared with (ratio = this / baseline)."""

    def register(fn: Callable[..., Result]) -> Callable[..., Result]:
        CASES[name] = Case(name, what, fn, params, baseline, repeat)
        return fn

    return register


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem_gb:.0f} GiB, Python {platform.python_version()}"


def run_in_subprocess(name: str, timeout_s: float = 900) -> Result:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.child", name],
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"benchmark {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(name: str) -> Result:
    """Median events/s over the case's repetitions."""
    c = CASES[name]
    runs = [run_in_subprocess(name) for _ in range(c.repeat)]
    rates = [r["events"] / r["seconds"] for r in runs]
    summary = dict(runs[rates.index(statistics.median_low(rates))])
    summary.update(
        name=name, what=c.what, runs=len(runs), events_per_s=statistics.median(rates),
        rates=[round(r) for r in rates], peak_rss_mb=max(r["peak_rss_mb"] for r in runs),
    )
    return summary
