"""The epoch interval this process runs its dataflow with, for steps that
must agree with it (the exactly-once sink's transaction timeout).

`python -m bytewax.run ... -s S` (or `BYTEWAX_SNAPSHOT_INTERVAL`) makes
epochs of `S` seconds with recovery and of 10 s without; the dataflow itself
is never told. `bytewax.run` (0.21) imports the flow module after it has
settled the interval in its `kwargs["epoch_interval"]`, so a flow built at
import reads it from there. Under `run_main`/`cli_main` (tests) there is no
such script and the interval is unknown.
"""

from __future__ import annotations

import logging
import sys
from datetime import timedelta
from types import ModuleType
from typing import Optional

log = logging.getLogger(__name__)


def epoch_interval_s(main: Optional[ModuleType] = None) -> Optional[float]:
    """Seconds per epoch of the running `python -m bytewax.run`, or None
    when the flow is not run by it (`main`: the `__main__` module)."""
    main = sys.modules.get("__main__") if main is None else main
    spec = getattr(main, "__spec__", None)
    if spec is None or spec.name != "bytewax.run":
        return None
    settings = getattr(main, "kwargs", None)
    interval = settings.get("epoch_interval") if isinstance(settings, dict) else None
    if not isinstance(interval, timedelta):
        log.warning("bytewax.run no longer exposes its epoch interval: checks that depend on it are skipped")
        return None
    return interval.total_seconds()
