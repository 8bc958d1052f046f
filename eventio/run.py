"""`python -m eventio.run FLOW [bytewax.run options]`: `python -m bytewax.run`
with the process tuned for large keyed state.

Before handing over to `bytewax.run` (same arguments, same behaviour), it
raises the cyclic garbage collector's young-generation threshold to
`STREAM_GC_THRESHOLD` (default 50000; `0` keeps Python's 700): with millions
of keys in state, frequent collections and the full passes they trigger cost
more than the work (`tune_gc`). Building a dataflow changes no process-wide setting; a
flow run by `bytewax.run` directly keeps Python's defaults.
"""

from __future__ import annotations

import gc
import os
import runpy
import sys
from typing import Mapping

DEFAULT_GC_THRESHOLD = 50_000


def tune_gc(threshold: int = DEFAULT_GC_THRESHOLD) -> None:
    """Raise the young-generation GC threshold to `threshold` (never lower
    it); the older generations' at least to 20 and 100. Opt-in for a process
    holding large keyed state: a flow may call it, `main` does."""
    first, second, third = gc.get_threshold()
    if threshold > first:
        gc.set_threshold(threshold, max(second, 20), max(third, 100))


def gc_threshold(env: Mapping[str, str]) -> int:
    """The young-generation threshold `STREAM_GC_THRESHOLD` asks for."""
    value = env.get("STREAM_GC_THRESHOLD", str(DEFAULT_GC_THRESHOLD))
    try:
        threshold = int(value)
    except ValueError:
        raise SystemExit(f"STREAM_GC_THRESHOLD={value!r}: expected a whole number of allocations (0 keeps Python's)")
    if threshold < 0:
        raise SystemExit(f"STREAM_GC_THRESHOLD={value!r}: expected a whole number >= 0")
    return threshold


def main() -> None:
    tune_gc(gc_threshold(os.environ))
    sys.argv[0] = "bytewax.run"
    runpy.run_module("bytewax.run", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
