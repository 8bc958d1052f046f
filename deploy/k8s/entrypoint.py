"""Container entrypoint: start this pod's process of a Bytewax cluster.

A flow runs as a StatefulSet whose pod `NAME-N` is Bytewax process `N`. This
script turns the pod's environment into the `python -m eventio.run` command
(`bytewax.run` with the garbage collector tuned):

1. the process id is the pod's ordinal (`POD_NAME`, else `HOSTNAME`);
2. the addresses of all `PROCESSES` processes, in process-id order, are the
   stable DNS names of the pods behind the headless service,
   `NAME-I.SERVICE.NAMESPACE.svc.CLUSTER_DOMAIN:CLUSTER_PORT`, written one a
   line to `ADDRESSES_FILE`, which Bytewax reads through
   `BYTEWAX_HOSTFILE_PATH`;
3. with `RECOVERY_DIR` set, this process's share of the `RECOVERY_PARTS`
   recovery partitions is created once, atomically, on its own volume; Bytewax
   needs every partition somewhere in the cluster, not all in every process.
   The share depends on `RECOVERY_PROCESSES`, the process count of the first
   start, which stays fixed when `PROCESSES` changes: a pod added later gets
   an empty directory instead of fresh copies of partitions that hold state;
4. unless set, `TRANSACTIONAL_ID_PREFIX` (the exactly-once sink's Kafka
   transactional ids) becomes `NAMESPACE.STATEFULSET`: the same in every pod
   and restart of one deployment, as fencing zombies needs, and different for
   two deployments, which would otherwise fence each other;
5. `python -m eventio.run` (`bytewax.run` with the garbage collector tuned for
   keyed state) replaces this process (`exec`), so signals reach Bytewax.

Plain Python and no Bytewax import at module level, so the planning is unit
tested without a cluster. Every setting is an environment variable; see
`deploy/README.md`.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, NoReturn, Optional

DEFAULT_CLUSTER_PORT = 9999
DEFAULT_ADDRESSES_FILE = "/tmp/bytewax-addresses.txt"
_ORDINAL = re.compile(r"^(?P<name>.+)-(?P<ordinal>\d+)$")
_FLOW_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_PART_FILE = re.compile(r"^part-(?P<index>\d+)\.sqlite3")


class ConfigError(ValueError):
    """The pod's environment cannot describe a valid cluster process."""


@dataclass(frozen=True)
class Recovery:
    """Where this process keeps its recovery partitions and how often it snapshots."""

    directory: Path
    parts: int
    owned: tuple[int, ...]
    snapshot_seconds: int
    backup_seconds: int


@dataclass(frozen=True)
class ProcessPlan:
    """Everything `bytewax.run` needs to start this pod's process."""

    import_str: str
    process_id: int
    addresses: tuple[str, ...]
    workers: int
    addresses_file: Path
    recovery: Optional[Recovery]
    transactional_id_prefix: str


def pod_ordinal(pod_name: str) -> tuple[str, int]:
    """The StatefulSet name and ordinal of pod `NAME-N`."""
    match = _ORDINAL.match(pod_name)
    if match is None:
        raise ConfigError(f"pod name {pod_name!r} is not of the form NAME-ORDINAL")
    return match["name"], int(match["ordinal"])


def cluster_addresses(
    statefulset: str,
    service: str,
    namespace: str,
    processes: int,
    port: int = DEFAULT_CLUSTER_PORT,
    domain: str = "cluster.local",
) -> tuple[str, ...]:
    """`host:port` of every process in process-id order: the pods' stable DNS names."""
    if processes < 1:
        raise ConfigError(f"PROCESSES must be >= 1, got {processes}")
    return tuple(
        f"{statefulset}-{i}.{service}.{namespace}.svc.{domain}:{port}" for i in range(processes)
    )


def owned_partitions(parts: int, processes: int, process_id: int) -> tuple[int, ...]:
    """Recovery partitions created on this process's volume: every
    `processes`-th one, so a first start spreads them evenly. A process whose
    id is not below `processes` (added by a later scale-up) owns none."""
    if parts < 1:
        raise ConfigError(f"RECOVERY_PARTS must be >= 1, got {parts}")
    return tuple(k for k in range(parts) if k % processes == process_id)


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, "")
    try:
        value = int(raw) if raw.strip() else default
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def plan_from_env(env: Mapping[str, str]) -> ProcessPlan:
    """Read the pod's environment into a process plan; `ConfigError` says what is wrong."""
    flow = env.get("FLOW", "")
    if not _FLOW_NAME.match(flow):
        raise ConfigError(f"FLOW must name a module in flows/ (e.g. session_analytics), got {flow!r}")
    pod_name = env.get("POD_NAME") or env.get("HOSTNAME", "")
    statefulset, process_id = pod_ordinal(pod_name)
    processes = _int(env, "PROCESSES", 1)
    if process_id >= processes:
        raise ConfigError(
            f"pod {pod_name} has ordinal {process_id} but PROCESSES={processes}: "
            "the StatefulSet's replicas and PROCESSES must agree"
        )
    namespace = env.get("POD_NAMESPACE", "")
    if not namespace:
        raise ConfigError("POD_NAMESPACE must be set (downward API metadata.namespace)")
    addresses = cluster_addresses(
        statefulset,
        env.get("SERVICE_NAME") or statefulset,
        namespace,
        processes,
        _int(env, "CLUSTER_PORT", DEFAULT_CLUSTER_PORT),
        env.get("CLUSTER_DOMAIN") or "cluster.local",
    )
    recovery = None
    if env.get("RECOVERY_DIR"):
        if not env.get("RECOVERY_PROCESSES", "").strip():
            raise ConfigError(
                "RECOVERY_PROCESSES must be set with RECOVERY_DIR: the process count the "
                "partitions were first spread over (keep it when PROCESSES changes)"
            )
        parts = _int(env, "RECOVERY_PARTS", processes)
        layout = _int(env, "RECOVERY_PROCESSES", processes)
        recovery = Recovery(
            directory=Path(env["RECOVERY_DIR"]),
            parts=parts,
            owned=owned_partitions(parts, layout, process_id),
            snapshot_seconds=_int(env, "SNAPSHOT_SECONDS", 30),
            backup_seconds=_int(env, "BACKUP_SECONDS", 0, minimum=0),
        )
    return ProcessPlan(
        import_str=f"flows.{flow}:flow",
        process_id=process_id,
        addresses=addresses,
        workers=_int(env, "WORKERS_PER_PROCESS", 1),
        addresses_file=Path(env.get("ADDRESSES_FILE") or DEFAULT_ADDRESSES_FILE),
        recovery=recovery,
        transactional_id_prefix=env.get("TRANSACTIONAL_ID_PREFIX") or f"{namespace}.{statefulset}",
    )


def write_addresses(path: Path, addresses: tuple[str, ...]) -> None:
    """One `host:port` a line, in process-id order, as Bytewax's hostfile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{a}\n" for a in addresses))


InitDir = Callable[[Path, int], None]


def init_recovery(recovery: Recovery, init_db_dir: InitDir) -> bool:
    """Create this process's recovery partitions unless its directory exists.

    All partitions are created in a staging directory next to the target, the
    ones this process does not own are deleted, and the staging directory is
    renamed into place: a crash at any point leaves either no directory (and
    the next start retries) or a complete one, never half a share. Returns
    whether partitions were created.
    """
    target = recovery.directory
    if target.exists():
        return False
    staging = target.with_name(f".{target.name}.init")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    init_db_dir(staging, recovery.parts)
    owned = set(recovery.owned)
    for entry in staging.iterdir():
        match = _PART_FILE.match(entry.name)
        if match is None or int(match["index"]) not in owned:
            entry.unlink()
    os.replace(staging, target)
    return True


def bytewax_argv(plan: ProcessPlan, python: str = sys.executable) -> list[str]:
    """The command line for `plan`: `python -m eventio.run`, which is
    `bytewax.run` with the garbage collector tuned for keyed state
    (`STREAM_GC_THRESHOLD`)."""
    argv = [
        python, "-m", "eventio.run", plan.import_str,
        "-w", str(plan.workers),
        "-i", str(plan.process_id),
    ]
    if plan.recovery is not None:
        argv += [
            "-r", str(plan.recovery.directory),
            "-s", str(plan.recovery.snapshot_seconds),
            "-b", str(plan.recovery.backup_seconds),
        ]
    return argv


def main() -> NoReturn:
    """Plan from the environment, prepare the files and exec Bytewax."""
    try:
        plan = plan_from_env(os.environ)
    except ConfigError as ex:
        sys.exit(f"entrypoint: {ex}")
    write_addresses(plan.addresses_file, plan.addresses)
    if plan.recovery is not None:
        from eventio.cluster import init_parts  # in a child process: no SQLite connection left open here

        if init_recovery(plan.recovery, init_parts):
            print(
                f"entrypoint: created recovery partitions {list(plan.recovery.owned)} "
                f"of {plan.recovery.parts} in {plan.recovery.directory}",
                flush=True,
            )
    env = dict(
        os.environ,
        BYTEWAX_HOSTFILE_PATH=str(plan.addresses_file),
        TRANSACTIONAL_ID_PREFIX=plan.transactional_id_prefix,
    )
    for inherited in ("BYTEWAX_ADDRESSES", "BYTEWAX_PROCESS_ID"):
        env.pop(inherited, None)
    argv = bytewax_argv(plan)
    print(f"entrypoint: process {plan.process_id} of {len(plan.addresses)}: {' '.join(argv[1:])}", flush=True)
    os.execve(argv[0], argv, env)


if __name__ == "__main__":
    main()
