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
from datetime import timedelta
from types import ModuleType
from typing import Optional

from eventio.bytewax_run import cli_settings

log = logging.getLogger(__name__)


def epoch_interval_s(main: Optional[ModuleType] = None) -> Optional[float]:
    """Seconds per epoch of the running `python -m bytewax.run`, or None
    when the flow is not run by it (`main`: the `__main__` module)."""
    settings = cli_settings(main)
    if settings is None:
        return None
    interval = settings.get("epoch_interval")
    if not isinstance(interval, timedelta):
        log.warning("bytewax.run no longer exposes its epoch interval: checks that depend on it are skipped")
        return None
    return interval.total_seconds()
