"""The embedded broker launcher leaves no process behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from eventio.broker import EmbeddedBroker, free_port
from tests.flow_runs import ROOT


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def test_broker_stops_even_when_the_body_fails() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with EmbeddedBroker() as b:
            assert b.process is not None
            pid = b.process.pid
            b.create_topics({"t": 3})
            meta = AdminClient({"bootstrap.servers": b.bootstrap_servers}).list_topics("t", timeout=10)
            assert len(meta.topics["t"].partitions) == 3
            raise RuntimeError("boom")
    assert not _alive(pid)


def _launch(*args: str) -> tuple[subprocess.Popen[str], str]:
    """`python -m eventio.broker ARGS` and the address it printed."""
    proc = subprocess.Popen([sys.executable, "-m", "eventio.broker", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:"), (line, proc.stderr.read() if proc.stderr else "")
    return proc, line.split("=", 1)[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_the_launcher_has_help() -> None:
    done = subprocess.run([sys.executable, "-m", "eventio.broker", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and "--port" in done.stdout and "--partitions" in done.stdout, done.stderr


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_the_launcher_makes_its_topics_logs_where_asked_and_a_signal_stops_the_broker(
        stop: signal.Signals, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "broker.log"
    proc, bootstrap = _launch("--port", str(port), "--topic", "events", "--topic", "results", "--partitions", "3",
                              "--log", str(log))
    try:
        assert bootstrap == f"127.0.0.1:{port}"
        topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
        assert {name: len(topics[name].partitions) for name in ("events", "results")} == {"events": 3, "results": 3}
    finally:
        proc.send_signal(stop)
        assert proc.wait(timeout=20) == 0
    deadline = time.monotonic() + 10
    while _listening(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _listening(port), "the broker outlived its launcher"
    assert log.stat().st_size > 0


def test_the_launcher_refuses_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "eventio.broker", "--port", str(port)], capture_output=True,
                              text=True, cwd=ROOT, timeout=30)
    assert done.returncode == 2 and f"--port {port}: the port is in use" in done.stderr


def test_a_broker_without_a_log_path_leaves_no_log_behind() -> None:
    with EmbeddedBroker() as b:
        log = b.log_path
        assert log.exists()
    assert not log.exists()
