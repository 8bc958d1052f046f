"""The container entrypoint's cluster plan: process ids, addresses, recovery partitions.

Unit tests of the planning, then a real two-process Bytewax cluster on
localhost started with the entrypoint's command line and partition split: it
must run, resume from the split partitions, and rescale to three processes
where the added one has no partitions.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from bytewax.recovery import init_db_dir
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]


def _load_entrypoint() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_entrypoint", ROOT / "deploy/k8s/entrypoint.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ep = _load_entrypoint()

BASE_ENV = {
    "FLOW": "session_analytics",
    "POD_NAME": "session-analytics-flow-0",
    "POD_NAMESPACE": "streams",
    "PROCESSES": "1",
}


def _env(**changes: str) -> dict[str, str]:
    env = dict(BASE_ENV)
    env.update(changes)
    return env


def test_one_process_is_a_cluster_of_its_own_pod() -> None:
    plan = ep.plan_from_env(_env(WORKERS_PER_PROCESS="4"))
    assert plan.process_id == 0
    assert plan.addresses == (
        "session-analytics-flow-0.session-analytics-flow.streams.svc.cluster.local:9999",
    )
    assert plan.workers == 4
    assert plan.import_str == "flows.session_analytics:flow"
    assert plan.recovery is None
    assert ep.bytewax_argv(plan, python="py") == [
        "py", "-m", "eventio.run", "flows.session_analytics:flow", "-w", "4", "-i", "0",
    ]


@pytest.mark.parametrize("ordinal", [0, 1, 2])
def test_three_processes_list_every_pod_in_process_id_order(ordinal: int) -> None:
    plan = ep.plan_from_env(
        _env(POD_NAME=f"exactly-once-flow-{ordinal}", PROCESSES="3", CLUSTER_PORT="7000",
             SERVICE_NAME="exactly-once-flow", CLUSTER_DOMAIN="k8s.internal")
    )
    assert plan.process_id == ordinal
    assert plan.addresses == tuple(
        f"exactly-once-flow-{i}.exactly-once-flow.streams.svc.k8s.internal:7000" for i in range(3)
    )


def test_transactional_ids_are_one_per_deployment() -> None:
    """Every pod and restart of a deployment shares the prefix (fencing a
    zombie needs the same id); two deployments never do, by namespace or by
    StatefulSet; a prefix set in the ConfigMap wins."""
    def prefix(**changes: str) -> str:
        return ep.plan_from_env(_env(PROCESSES="3", **changes)).transactional_id_prefix

    pods = {prefix(POD_NAME=f"exactly-once-flow-{i}") for i in range(3)}
    assert pods == {"streams.exactly-once-flow"}
    assert prefix(POD_NAME="exactly-once-flow-1", POD_NAMESPACE="staging") == "staging.exactly-once-flow"
    assert prefix(POD_NAME="orders-flow-1") == "streams.orders-flow"
    assert prefix(POD_NAME="orders-flow-1", TRANSACTIONAL_ID_PREFIX="exactly-once") == "exactly-once"


def test_hostname_is_the_fallback_pod_name_and_the_service_defaults_to_the_statefulset() -> None:
    env = _env(PROCESSES="2")
    del env["POD_NAME"]
    env["HOSTNAME"] = "my-flow-12-1"
    plan = ep.plan_from_env(env)
    assert plan.process_id == 1
    assert plan.addresses[0] == "my-flow-12-0.my-flow-12.streams.svc.cluster.local:9999"


def test_addresses_file_is_one_address_a_line(tmp_path: Path) -> None:
    plan = ep.plan_from_env(_env(PROCESSES="3", ADDRESSES_FILE=str(tmp_path / "run/hosts")))
    ep.write_addresses(plan.addresses_file, plan.addresses)
    assert (tmp_path / "run/hosts").read_text().splitlines() == list(plan.addresses)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"FLOW": ""}, "FLOW"),
        ({"FLOW": "flows.x:flow"}, "FLOW"),
        ({"POD_NAME": "no-ordinal"}, "NAME-ORDINAL"),
        ({"POD_NAME": "flow-3", "PROCESSES": "3"}, "replicas and PROCESSES"),
        ({"PROCESSES": "0"}, "PROCESSES must be >= 1"),
        ({"PROCESSES": "two"}, "PROCESSES must be an integer"),
        ({"POD_NAMESPACE": ""}, "POD_NAMESPACE"),
        ({"RECOVERY_DIR": "/r"}, "RECOVERY_PROCESSES must be set"),
        ({"RECOVERY_DIR": "/r", "RECOVERY_PROCESSES": "1", "RECOVERY_PARTS": "0"}, "RECOVERY_PARTS"),
    ],
)
def test_bad_environment_is_a_clear_error(changes: dict[str, str], message: str) -> None:
    with pytest.raises(ep.ConfigError, match=message):
        ep.plan_from_env(_env(**changes))


def test_recovery_flags() -> None:
    plan = ep.plan_from_env(
        _env(POD_NAME="f-1", PROCESSES="3", RECOVERY_DIR="/var/recovery/partitions",
             RECOVERY_PARTS="7", RECOVERY_PROCESSES="3", SNAPSHOT_SECONDS="15", BACKUP_SECONDS="0")
    )
    assert plan.recovery.owned == (1, 4)
    assert ep.bytewax_argv(plan, python="py")[-6:] == [
        "-r", "/var/recovery/partitions", "-s", "15", "-b", "0",
    ]


@given(st.integers(1, 40), st.integers(1, 8), st.integers(0, 8))
def test_partitions_are_spread_once_over_the_first_processes(parts: int, layout: int, extra: int) -> None:
    shares = [ep.owned_partitions(parts, layout, pid) for pid in range(layout + extra)]
    flat = sorted(k for share in shares for k in share)
    assert flat == list(range(parts)), "every partition exactly once"
    sizes = [len(s) for s in shares[:layout]]
    assert max(sizes) - min(sizes) <= 1, "evenly"
    assert all(not s for s in shares[layout:]), "processes added later own none"


def _parts(directory: Path) -> list[str]:
    """Partition files (SQLite adds -wal and -shm files next to them once used)."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".sqlite3"))


def test_init_recovery_creates_the_share_once(tmp_path: Path) -> None:
    target = tmp_path / "partitions"
    recovery = ep.Recovery(target, parts=5, owned=(1, 3), snapshot_seconds=10, backup_seconds=0)
    assert ep.init_recovery(recovery, init_db_dir)
    assert _parts(target) == ["part-1.sqlite3", "part-3.sqlite3"]
    (target / "part-1.sqlite3").write_bytes(b"state")
    assert not ep.init_recovery(recovery, init_db_dir), "an existing directory is left alone"
    assert (target / "part-1.sqlite3").read_bytes() == b"state"
    assert [p.name for p in tmp_path.iterdir()] == ["partitions"], "no staging directory left behind"


def test_init_recovery_retries_after_a_crash_midway(tmp_path: Path) -> None:
    target = tmp_path / "partitions"
    recovery = ep.Recovery(target, parts=3, owned=(0,), snapshot_seconds=10, backup_seconds=0)

    def crash(directory: Path, parts: int) -> None:
        init_db_dir(directory, parts)
        raise OSError("disk full")

    with pytest.raises(OSError):
        ep.init_recovery(recovery, crash)
    assert not target.exists(), "no half-made share is visible"
    assert ep.init_recovery(recovery, init_db_dir)
    assert _parts(target) == ["part-0.sqlite3"]


FLOW_MODULE = '''
import os
import bytewax.operators as op
from bytewax.connectors.stdio import StdOutSink
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource

flow = Dataflow("addressing")
numbers = op.input("in", flow, TestingSource(range(int(os.environ["N"]))))
keyed = op.key_on("key", numbers, lambda x: str(x % 4))
sums = op.stateful_map("sum", keyed, lambda s, x: ((s or 0) + x, (s or 0) + x))
op.output("out", sums, StdOutSink())
'''


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run_cluster(tmp_path: Path, processes: int, layout: int, parts: int, workers: int, n: int) -> dict[str, int]:
    """Start `processes` local processes as the entrypoint would; the last sum per key."""
    hosts = tmp_path / f"hosts-{processes}"
    hosts.write_text("".join(f"127.0.0.1:{p}\n" for p in _free_ports(processes)))
    procs = []
    for pid in range(processes):
        plan = ep.plan_from_env(
            _env(POD_NAME=f"f-{pid}", PROCESSES=str(processes), WORKERS_PER_PROCESS=str(workers),
                 FLOW="addressing_flow", RECOVERY_DIR=str(tmp_path / f"volume-{pid}/partitions"),
                 RECOVERY_PARTS=str(parts), RECOVERY_PROCESSES=str(layout), SNAPSHOT_SECONDS="1")
        )
        ep.init_recovery(plan.recovery, init_db_dir)
        env = dict(os.environ, BYTEWAX_HOSTFILE_PATH=str(hosts), N=str(n), PYTHONPATH=str(tmp_path))
        argv = ep.bytewax_argv(plan)
        argv[3] = "addressing_flow:flow"
        procs.append(subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    last: dict[str, int] = {}
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        for line in out.splitlines():
            if not line.startswith("("):
                continue  # Bytewax's own connection retry messages
            key, total = ast.literal_eval(line)  # (key, running sum) tuples
            last[key] = max(last.get(key, 0), total)
    return last


def _sums(n: int) -> dict[str, Any]:
    return {str(k): sum(x for x in range(n) if x % 4 == k) for k in range(4)}


def test_split_partitions_resume_and_rescale_in_a_real_cluster(tmp_path: Path) -> None:
    (tmp_path / "addressing_flow.py").write_text(FLOW_MODULE)
    assert _run_cluster(tmp_path, processes=2, layout=2, parts=4, workers=2, n=20) == _sums(20)
    assert _parts(tmp_path / "volume-0/partitions") == ["part-0.sqlite3", "part-2.sqlite3"]
    assert _parts(tmp_path / "volume-1/partitions") == ["part-1.sqlite3", "part-3.sqlite3"]
    # Resume with more input on three processes: the third pod's new volume is
    # empty, the state of the first 20 items comes from the split partitions.
    assert _run_cluster(tmp_path, processes=3, layout=2, parts=4, workers=1, n=28) == _sums(28)
    assert _parts(tmp_path / "volume-2/partitions") == []
