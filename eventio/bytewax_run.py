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

A configuration a person must fix (`ConfigurationError`: a setting, a file
it names, a recovery store it points to) ends the run before the dataflow
starts: `exits_on_configuration_error` wraps a flow's `build` so that under
`bytewax.run` it prints the message and exits with `EXIT_USAGE`, no
traceback. `lazy_flow` gives a flow module its `flow` attribute built on
first access, so importing a flow module builds nothing.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from types import ModuleType
from typing import Any, Callable, NoReturn, Optional, TypeVar

from eventio import progress
from eventio.settings import ConfigurationError

EXIT_UNAVAILABLE = 69
"""Exit status of a stopped run (`EX_UNAVAILABLE` of sysexits.h)."""
EXIT_USAGE = 2
"""Exit status of a run refused for its configuration (as argparse's)."""
F = TypeVar("F", bound=Callable[..., Any])

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


def exits_on_configuration_error(build: F) -> F:
    """`build`, which under `bytewax.run` starts the progress lines once it
    has built the flow, and turns a `ConfigurationError` into its message on
    stderr (one line per problem, after the flow's module
    name; indented lines as they are) and exit status `EXIT_USAGE`; elsewhere the error propagates."""

    @functools.wraps(build)
    def checked(*args: Any, **kwargs: Any) -> Any:
        try:
            flow = build(*args, **kwargs)
        except ConfigurationError as ex:
            if cli_settings() is None:
                raise
            print("\n".join(line if line[:1].isspace() else f"{build.__module__}: {line}"
                            for line in str(ex).splitlines()), file=sys.stderr)
            sys.exit(EXIT_USAGE)
        if cli_settings() is not None:
            progress.start_prepared()
        return flow

    return checked  # type: ignore[return-value]


def lazy_flow(build: Callable[[], Any]) -> Callable[[str], Any]:
    """A module `__getattr__` giving the module of `build` a `flow`
    attribute, built by `build()` on first access and kept: what
    `python -m bytewax.run flows.<name>:flow` asks for."""
    module = sys.modules[build.__module__]

    def __getattr__(name: str) -> Any:
        if name != "flow":
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")
        try:
            flow = build()
        except AttributeError as ex:  # not "no attribute flow": a bug in build
            raise RuntimeError(f"building {module.__name__}.flow failed") from ex
        setattr(module, "flow", flow)
        return flow

    return __getattr__
