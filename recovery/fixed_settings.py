"""Settings a recovery store was written with and that cannot change, checked
when a flow is built, with a message naming the setting and the store's value.

A resumed Bytewax run routes each stored state to the partition of the same
name; one its sources or sinks no longer list stops the run with `Key
StateKey("2") is not in this worker's routing map`, which names neither the
setting nor the store. Such settings: the exactly-once sink's
`SINK_PARTITIONS`, the input files (`INPUT_PATH`, ...), the input topics
(`INPUT_TOPIC`, ...) and the output files (`OUTPUT_PATH`, ...).

The check runs under `python -m bytewax.run -r DIR` only, while the flow
module is imported: before Bytewax opens the store (SQLite's POSIX locks are
per process, so the store must not be opened beside Bytewax).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Optional

from eventio.bytewax_run import cli_settings
from eventio.settings import ConfigurationError
from recovery.directories import stored_states


class StoreMismatchError(ConfigurationError):
    """A setting differs from the one the recovery store was written with."""


def recovery_directory() -> Optional[Path]:
    """The recovery directory of the running `bytewax.run -r DIR`, if any."""
    settings = cli_settings()
    config = None if settings is None else settings.get("recovery_config")
    directory = getattr(config, "db_dir", None)
    return None if directory is None else Path(directory)


def check_parts(
    step_id: str,
    parts: Iterable[str],
    setting: str,
    describe: Callable[[list[str]], str] = lambda keys: ", ".join(map(repr, keys)),
    directory: Optional[Path] = None,
    part_of: Callable[[str], str] = lambda key: key,
) -> None:
    """Refuse to build when the store holds state of step `step_id` (its
    full id) for a partition not in `parts`, the ones `setting` now gives
    (`part_of` maps a stored state key to such a part); `describe` says what
    the partitions are, in the setting's terms."""
    directory = directory or recovery_directory()
    if directory is None:
        return
    listed = set(parts)
    stored = sorted({part_of(key) for key in stored_states(directory, step_id)})
    if set(stored) <= listed:
        return
    raise StoreMismatchError(
        f"{setting} has changed: the recovery store {directory} was written with {describe(stored)} "
        f"(step {step_id!r}), and {setting} now gives {describe(sorted(listed))}. {setting} is fixed for the "
        f"life of a recovery store: set it back, or start on a new recovery directory"
    )
