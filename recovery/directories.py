"""Create and inspect Bytewax recovery directories.

    python -m recovery.directories init DIR PARTS   # idempotent; makes DIR
    python -m recovery.directories inspect DIR      # executions, frontiers, state

`init` wraps `bytewax.recovery.init_db_dir`, which panics when run twice:
here a directory that already holds the same number of partitions is left
alone and a different number is a clear error. `inspect` opens the SQLite
partitions read-only; run it from a separate process, never inside a
running dataflow (SQLite's POSIX locks are per process).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from bytewax.recovery import init_db_dir

_PART_GLOB = "part-*.sqlite3"


@dataclass
class StepState:
    """Stored snapshots of one step: keys, newest epoch, bytes."""

    keys: int = 0
    newest_epoch: int = 0
    bytes: int = 0


@dataclass
class RecoveryInfo:
    """What a recovery directory holds."""

    partitions: int
    executions: list[dict[str, int]] = field(default_factory=list)
    """Each execution: number, worker count and the epoch it resumed from."""
    frontiers: dict[int, int] = field(default_factory=dict)
    """Latest execution with a frontier: worker index -> first epoch not yet complete."""
    frontiers_execution: Optional[int] = None
    """Number of the execution `frontiers` belongs to."""
    commit_epochs: dict[int, int] = field(default_factory=dict)
    """Recovery partition -> newest epoch whose snapshots are committed."""
    steps: dict[str, StepState] = field(default_factory=dict)

    @property
    def resume_epoch(self) -> Optional[int]:
        """Epoch the next execution resumes from: the oldest worker frontier."""
        return min(self.frontiers.values()) if self.frontiers else None


def partition_count(directory: Path) -> Optional[int]:
    """Partition count recorded in `directory`, None if it holds none."""
    files = sorted(directory.glob(_PART_GLOB))
    if not files:
        return None
    with closing(_open(files[0])) as db:
        (count,) = db.execute("SELECT part_count FROM parts").fetchone()
    found = len(files)
    if found != count:
        raise RuntimeError(f"{directory} holds {found} of {count} recovery partitions; restore the missing ones")
    return int(count)


def init(directory: Path, partitions: int) -> bool:
    """Create `directory` with `partitions` empty recovery partitions unless it
    already has them; return whether it created them."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    directory.mkdir(parents=True, exist_ok=True)
    existing = partition_count(directory)
    if existing == partitions:
        return False
    if existing is not None:
        raise RuntimeError(
            f"{directory} already holds {existing} recovery partitions, not {partitions}; "
            "the count cannot change (use a new directory)"
        )
    init_db_dir(directory, partitions)
    return True


def inspect(directory: Path, *, snapshots: bool = True) -> RecoveryInfo:
    """Read executions, frontiers, commit epochs and (unless `snapshots` is
    false, for cheap polling of a running flow) snapshot sizes."""
    count = partition_count(directory)
    if count is None:
        raise FileNotFoundError(f"{directory} holds no recovery partitions")
    info = RecoveryInfo(partitions=count)
    executions: dict[int, dict[str, int]] = {}
    fronts: dict[int, dict[int, int]] = {}
    for path in sorted(directory.glob(_PART_GLOB)):
        with closing(_open(path)) as db:
            for ex, workers, resume in db.execute("SELECT ex_num, worker_count, resume_epoch FROM exs"):
                executions[ex] = {"execution": ex, "workers": workers, "resume_epoch": resume}
            for ex, worker, frontier in db.execute("SELECT ex_num, worker_index, worker_frontier FROM fronts"):
                fronts.setdefault(ex, {})[worker] = frontier
            for part, epoch in db.execute("SELECT part_index, commit_epoch FROM commits"):
                info.commit_epochs[part] = epoch
            if not snapshots:
                continue
            for step, keys, newest, size in db.execute(
                "SELECT step_id, COUNT(DISTINCT state_key), MAX(snap_epoch), SUM(LENGTH(ser_change)) "
                "FROM snaps GROUP BY step_id"
            ):
                s = info.steps.setdefault(step, StepState())
                s.keys += keys
                s.newest_epoch = max(s.newest_epoch, newest)
                s.bytes += size or 0
    info.executions = [executions[k] for k in sorted(executions)]
    if fronts:
        info.frontiers_execution = max(fronts)
        info.frontiers = fronts[info.frontiers_execution]
    return info


def stored_states(directory: Path, step_id: str) -> dict[str, bytes]:
    """The newest stored snapshot of each state key of step `step_id`
    (its full id, `flow.step`), keys whose state was discarded left out."""
    newest: dict[str, tuple[int, Optional[bytes]]] = {}
    for path in sorted(directory.glob(_PART_GLOB)):
        with closing(_open(path)) as db:
            try:
                rows = db.execute("SELECT state_key, snap_epoch, ser_change FROM snaps WHERE step_id = ?", (step_id,))
                for key, epoch, blob in rows:
                    if key not in newest or epoch >= newest[key][0]:
                        newest[key] = (epoch, blob)
            except sqlite3.OperationalError:  # not initialised yet
                continue
    return {key: blob for key, (_, blob) in newest.items() if blob is not None}


def _open(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m recovery.directories", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_init = sub.add_parser("init", help="create DIR with PARTS recovery partitions (idempotent)")
    p_init.add_argument("directory", type=Path)
    p_init.add_argument("partitions", type=int)
    p_inspect = sub.add_parser("inspect", help="print what DIR holds as JSON")
    p_inspect.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    if args.command == "init":
        created = init(args.directory, args.partitions)
        print(f"{'created' if created else 'kept'} {args.partitions} recovery partitions in {args.directory}")
    else:
        info = inspect(args.directory)
        print(json.dumps({**asdict(info), "resume_epoch": info.resume_epoch}, indent=2))


if __name__ == "__main__":
    main()
