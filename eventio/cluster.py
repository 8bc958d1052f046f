"""Plan a flow run as N cooperating `bytewax.run` processes on this machine.

`python -m flows run NAME --processes N` starts process `k` as
`python -m eventio.run flows.NAME:flow -i k -a "127.0.0.1:P0;...;127.0.0.1:PN-1"`
(`eventio.run` is `bytewax.run` with the garbage collector tuned).
With `-r DIR` each process gets a recovery directory of its own,
`DIR/process-K/`, holding its share of the recovery partitions: Bytewax
0.21 finds a partition in whichever process's directory holds it and needs
every partition exactly once in the cluster (a directory shared by all
processes would open each partition in every process). Partition `p` lives
with process `p % N`; on a resume with another process count the partition
files are moved to their new owners first, so a store written by 2
processes resumes on 1 or 3.

Plain Python, no Bytewax import: the planning is unit tested without a
cluster; `flows/__main__.py` does the process handling.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

from eventio.settings import ConfigurationError

PROCESS_DIR = "process-{}"
_PROCESS_DIR = re.compile(r"^process-(?P<index>\d+)$")
_PART_FILE = re.compile(r"^part-(?P<index>\d+)\.sqlite3(?P<suffix>(-wal|-shm|-journal)?)$")


class ClusterError(ConfigurationError):
    """Options or a recovery directory that cannot make a cluster."""


def process_directory(root: Path, process: int) -> Path:
    """The recovery directory of process `process` under `root`."""
    return root / PROCESS_DIR.format(process)


def owner(part: int, processes: int) -> int:
    """The process whose directory holds recovery partition `part`."""
    return part % processes


@dataclass(frozen=True)
class Move:
    """Rename `source` to `target` (a partition file or its SQLite sidecar)."""

    source: Path
    target: Path


def partition_files(root: Path) -> dict[int, list[Path]]:
    """Every partition file under `root` (in `root` itself, where a plain
    `bytewax.run -r ROOT` keeps them, and in each `process-K/`), by
    partition index; SQLite's `-wal`/`-shm` sidecars count with their
    partition."""
    found: dict[int, list[Path]] = {}
    directories = [root] + sorted(d for d in root.iterdir() if d.is_dir() and _PROCESS_DIR.match(d.name))
    for directory in directories:
        for entry in sorted(directory.iterdir()):
            match = _PART_FILE.match(entry.name)
            if match is not None and entry.is_file():
                found.setdefault(int(match["index"]), []).append(entry)
    return found


def redistribution(root: Path, processes: int) -> list[Move]:
    """The renames that put each partition's files in its owner's directory.

    Sidecars move before their database (the order of the list), so a crash
    midway leaves at most a sidecar ahead of its database, which the next
    plan moves on after it; every partition database stays in exactly one
    place. Refuses a partition whose database is in two places, or a store
    with gaps in its partition numbers.
    """
    files = partition_files(root)
    if files:
        parts = sorted(files)
        if parts != list(range(len(parts))):
            missing = sorted(set(range(parts[-1] + 1)) - set(parts))
            raise ClusterError(f"{root}: recovery partitions {missing} are missing; restore them before resuming")
    moves: list[Move] = []
    for part, paths in sorted(files.items()):
        databases = [p for p in paths if p.name.endswith(".sqlite3")]
        if len(databases) != 1:
            where = ", ".join(str(p.parent) for p in databases) or "nowhere (only its SQLite sidecars)"
            raise ClusterError(f"{root}: recovery partition {part} is in {where}; keep exactly one")
        target = process_directory(root, owner(part, processes))
        sidecars = [p for p in paths if p is not databases[0]]
        moves += [Move(p, target / p.name) for p in sidecars + databases if p.parent != target]
    return moves


def init_parts(directory: Path, parts: int) -> None:
    """Create `parts` empty recovery partitions in `directory` with
    `python -m bytewax.recovery`, in a child process. Called in this
    process, Bytewax's `init_db_dir` returns with its SQLite connections
    still open (their `-wal`/`-shm` files appear and go later), which raced
    with moving the files to their owners and left this process holding
    connections to databases the flow's processes then write."""
    done = subprocess.run([sys.executable, "-m", "bytewax.recovery", str(directory), str(parts)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        last_line = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ClusterError(f"{directory}: creating {parts} recovery partitions failed: {last_line}")


def prepare_recovery(root: Path, processes: int, parts: int, init_db_dir: Callable[[Path, int], None]) -> list[Path]:
    """Make `root` ready for `processes` processes and return their
    directories: on first start (no partitions anywhere under `root`)
    `parts` partitions are created and spread; later ones are moved to
    their owners (`redistribution`), and `parts` is ignored."""
    if parts < 1:
        raise ClusterError(f"--recovery-parts must be >= 1, got {parts}")
    root.mkdir(parents=True, exist_ok=True)
    directories = [process_directory(root, k) for k in range(processes)]
    if not partition_files(root):
        staging = root / ".init"
        staging.mkdir(exist_ok=True)
        for stale in staging.iterdir():
            stale.unlink()
        init_db_dir(staging, parts)
        for directory in directories:
            directory.mkdir(exist_ok=True)
        for entry in sorted(staging.iterdir()):
            match = _PART_FILE.match(entry.name)
            if match is not None:
                os.replace(entry, process_directory(root, owner(int(match["index"]), processes)) / entry.name)
        staging.rmdir()
    for directory in directories:
        directory.mkdir(exist_ok=True)
    for move in redistribution(root, processes):
        os.replace(move.source, move.target)
    return directories


def bytewax_commands(
    import_str: str,
    options: Sequence[str],
    ports: Sequence[int],
    recovery: Optional[Sequence[Path]],
    python: str,
) -> list[list[str]]:
    """The command line of every process: `python -m eventio.run` (`bytewax.run`
    with the garbage collector tuned for keyed state, as a single-process run
    of the benchmarks), `options` (without `-i`, `-a` and `-r`), the process
    id, the addresses, and its own recovery directory."""
    addresses = ";".join(f"127.0.0.1:{port}" for port in ports)
    commands = []
    for k in range(len(ports)):
        argv = [python, "-m", "eventio.run", import_str, *options, "-i", str(k), "-a", addresses]
        if recovery is not None:
            argv += ["-r", str(recovery[k])]
        commands.append(argv)
    return commands


@dataclass(frozen=True)
class RunOptions:
    """`python -m flows run NAME --processes N` options, split."""

    processes: int
    recovery: Optional[Path]
    recovery_parts: Optional[int]
    bytewax: list[str]
    """The other `bytewax.run` options, passed to every process."""


_VALUE_OPTIONS = {"-s", "--snapshot-interval", "-b", "--backup-interval", "-w", "--workers-per-process"}


def split_options(options: Sequence[str]) -> Optional[RunOptions]:
    """`options` of `flows run` split into ours and Bytewax's; None without
    `--processes` (a plain `bytewax.run`). Refuses `-i`/`-a` (the runner
    chooses them) and unknown options."""
    rest: list[str] = []
    processes: Optional[int] = None
    recovery: Optional[Path] = None
    parts: Optional[int] = None
    args = list(options)
    while args:
        arg = args.pop(0)
        name, eq, inline = arg.partition("=")
        if name in ("--processes", "--recovery-parts", "-r", "--recovery-directory") or name in _VALUE_OPTIONS:
            if not eq:
                if not args:
                    raise ClusterError(f"{name} needs a value")
                inline = args.pop(0)
            if name == "--processes":
                processes = _positive(name, inline)
            elif name == "--recovery-parts":
                parts = _positive(name, inline)
            elif name in ("-r", "--recovery-directory"):
                recovery = Path(inline)
            else:
                rest += [name, inline]
        elif name in ("-i", "--process-id", "-a", "--addresses"):
            raise ClusterError(f"{name} is chosen by --processes; leave it out")
        else:
            raise ClusterError(f"unknown option {arg!r} (python -m bytewax.run --help)")
    if processes is None:
        if parts is not None:
            raise ClusterError("--recovery-parts needs --processes")
        return None
    return RunOptions(processes, recovery, parts, rest)


def _positive(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ClusterError(f"{name} must be an integer, got {text!r}") from None
    if value < 1:
        raise ClusterError(f"{name} must be >= 1, got {value}")
    return value


def exit_status(returncode: int) -> int:
    """A child's `Popen.returncode` as a shell exit status (signal `s` -> 128 + s)."""
    return 128 - returncode if returncode < 0 else returncode


PROCESS_ENV = ("FLOWS_PROCESS", "FLOWS_PROCESSES", "FLOWS_OUTPUT_PARTS")
"""What the runner tells each process: its id, the process count and the
number of output files (the recovery partition count, fixed for a store)."""


@dataclass(frozen=True)
class OutputLayout:
    """Output files of a process of `python -m flows run --processes`.

    A file output `out.jsonl` becomes `parts` files `out.part-P.jsonl`, part
    `P` written by process `P % processes` (as its recovery partition), so a
    process writes what it produced to a file of its own instead of sending
    every result to the one worker of a single file. `parts` stays the same
    for a recovery store, so a resumed run on another process count finds
    every file's stored length in a part it lists.
    """

    process: int
    processes: int
    parts: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Optional["OutputLayout"]:
        """The layout the runner set, None outside it (a plain `bytewax.run`)."""
        if not all(env.get(name) for name in PROCESS_ENV):
            return None
        return cls(*(int(env[name]) for name in PROCESS_ENV))

    def env(self) -> dict[str, str]:
        return dict(zip(PROCESS_ENV, map(str, (self.process, self.processes, self.parts))))

    def paths(self, path: str) -> list[str]:
        """Every part's file of output `path`, by part; `path` itself for one part."""
        if self.parts == 1:
            return [path]
        stem, dot, suffix = path.rpartition(".")
        if not dot or "/" in suffix:
            stem, dot, suffix = path, "", ""
        return [f"{stem}.part-{p}{dot}{suffix}" for p in range(self.parts)]

    def local(self) -> list[int]:
        """The parts this process writes."""
        return [p for p in range(self.parts) if owner(p, self.processes) == self.process]

    def written_to(self) -> int:
        """The part this process's results go to: its first, or, for a
        process beyond the part count, another process's."""
        local = self.local()
        return local[0] if local else self.process % self.parts
