"""The `python -m bytewax.run` process a flow runs in: its settings, and
stopping it with one clear message.

`bytewax.run` (0.21) imports the flow module after it has parsed its
arguments into the module global `kwargs` (epoch interval, recovery
configuration, ...), which it then passes to `cli_main`; a flow built at
import reads them there. Under `run_main`/`cli_main` (tests) there is no such
script.

An exception raised inside a Bytewax step ends the run with a Rust panic and
a chained traceback several screens long, and one raised while Bytewax is
already unwinding aborts the process (exit 134). For failures a message says
all about (a Kafka cluster that cannot be reached, settings it refuses),
`stop_run` instead logs that message and ends the process with
`EXIT_UNAVAILABLE` at once, as a `kill -9` would: nothing is committed that
was not already, and a resumed run continues from the recovery store. Outside
`bytewax.run` it raises the error, so tests and embedding code see it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from types import ModuleType
from typing import Any, NoReturn, Optional

EXIT_UNAVAILABLE = 69
"""Exit status of a stopped run (`EX_UNAVAILABLE` of sysexits.h)."""

log = logging.getLogger("eventio.run")
_stopping = threading.Lock()


def cli_settings(main: Optional[ModuleType] = None) -> Optional[dict[str, Any]]:
    """The keyword arguments `python -m bytewax.run` hands to `cli_main`
    (`{}` if it no longer exposes them), or None when the flow is not run by
    it (`main`: the `__main__` module)."""
    main = sys.modules.get("__main__") if main is None else main
    spec = getattr(main, "__spec__", None)
    if spec is None or spec.name != "bytewax.run":
        return None
    settings = getattr(main, "kwargs", None)
    return settings if isinstance(settings, dict) else {}


def stop_run(error: BaseException) -> NoReturn:
    """End the run because of `error`, whose message says what to do: under
    `bytewax.run`, log it as one line and exit with `EXIT_UNAVAILABLE`;
    elsewhere raise it. When several workers stop at once, one speaks."""
    if cli_settings() is None:
        raise error
    if not _stopping.acquire(blocking=False):
        while True:  # another worker is ending the process
            time.sleep(1)
    log.critical("%s", error)
    for handler in logging.getLogger().handlers + log.handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_UNAVAILABLE)
