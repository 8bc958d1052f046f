"""What a `read_committed` consumer sees, computed from the raw log.

The embedded broker writes transaction markers but does not filter aborted
records from `read_committed` fetches, so a consumer cannot be trusted to
show visibility. This reader fetches raw record batches (a minimal Fetch v4
request over a socket, batches parsed by kafka-python, compressed or not) and
applies Kafka's rules itself: a transactional record is visible once the next
control record of its producer is a COMMIT, never if it is an ABORT, and a
`read_committed` consumer stops at the last stable offset (the first offset
of a transaction still open).

It talks to the bootstrap broker only: enough for the single embedded broker.
"""

from __future__ import annotations

import io
import socket
import struct
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Optional

from confluent_kafka.admin import AdminClient
with warnings.catch_warnings():
    # kafka-python loads its protocol schemas with deprecated importlib calls.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.record import MemoryRecords

_FETCH = 1
_FETCH_VERSION = 4
_READ_UNCOMMITTED = 0
_MAX_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class LogRecord:
    """One data record as stored, with the producer that wrote it."""

    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    producer_id: int
    transactional: bool
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class PartitionLog:
    """Everything stored in one partition, in offset order."""

    partition: int
    high_watermark: int = 0
    records: list[LogRecord] = field(default_factory=list)
    markers: list[tuple[int, int, bool]] = field(default_factory=list)
    """(offset, producer id, committed) of each control record."""

    def visible(self) -> list[LogRecord]:
        """Records a `read_committed` consumer returns now, in offset order."""
        committed, open_txns = self._resolve()
        stable = min((txn[0].offset for txn in open_txns.values()), default=self.high_watermark)
        return [r for r in committed if r.offset < stable]

    def open_transactions(self) -> dict[int, list[LogRecord]]:
        """Transactional records with no marker yet, by producer id."""
        return self._resolve()[1]

    def aborted(self) -> list[LogRecord]:
        """Transactional records whose producer's next marker is an ABORT."""
        committed, open_txns = self._resolve()
        undecided = {id(r) for txn in open_txns.values() for r in txn}
        kept = {id(r) for r in committed}
        return [r for r in self.records if id(r) not in kept and id(r) not in undecided]

    def _resolve(self) -> tuple[list[LogRecord], dict[int, list[LogRecord]]]:
        """(committed records in offset order, still-open transactions)."""
        events: list[tuple[int, int, Optional[LogRecord], bool]] = [
            (r.offset, r.producer_id, r, False) for r in self.records
        ] + [(o, pid, None, commit) for o, pid, commit in self.markers]
        events.sort(key=lambda e: e[0])
        open_txns: dict[int, list[LogRecord]] = {}
        committed: list[LogRecord] = []
        for _, pid, record, commit in events:
            if record is None:
                decided = open_txns.pop(pid, [])
                if commit:
                    committed.extend(decided)
            elif record.transactional:
                open_txns.setdefault(pid, []).append(record)
            else:
                committed.append(record)
        committed.sort(key=lambda r: r.offset)
        return committed, open_txns


def _string(s: str) -> bytes:
    raw = s.encode()
    return struct.pack(">h", len(raw)) + raw


def _fetch_request(correlation_id: int, topic: str, partition: int, offset: int) -> bytes:
    header = struct.pack(">hhi", _FETCH, _FETCH_VERSION, correlation_id) + _string("committed-log")
    body = struct.pack(">iiiib", -1, 200, 0, _MAX_BYTES, _READ_UNCOMMITTED)
    body += struct.pack(">i", 1) + _string(topic)
    body += struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, _MAX_BYTES)
    message = header + body
    return struct.pack(">i", len(message)) + message


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return bytes(buf)


def _read_string(r: io.BytesIO) -> str:
    (n,) = struct.unpack(">h", r.read(2))
    return r.read(n).decode()


def _fetch(sock: socket.socket, correlation_id: int, topic: str, partition: int, offset: int) -> tuple[int, bytes]:
    """(high watermark, raw record-batch bytes) of one Fetch v4 round trip."""
    sock.sendall(_fetch_request(correlation_id, topic, partition, offset))
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    r = io.BytesIO(_recv_exact(sock, size))
    (got_id,) = struct.unpack(">i", r.read(4))
    if got_id != correlation_id:
        raise RuntimeError(f"correlation id {got_id} != {correlation_id}")
    r.read(4)  # throttle time
    (n_topics,) = struct.unpack(">i", r.read(4))
    for _ in range(n_topics):
        _read_string(r)
        (n_parts,) = struct.unpack(">i", r.read(4))
        for _ in range(n_parts):
            part, error, high_watermark, _lso = struct.unpack(">ihqq", r.read(22))
            (n_aborted,) = struct.unpack(">i", r.read(4))
            r.read(16 * max(n_aborted, 0))
            (n_bytes,) = struct.unpack(">i", r.read(4))
            data = r.read(n_bytes) if n_bytes > 0 else b""
            if part == partition:
                if error != 0:
                    raise RuntimeError(f"fetch {topic}[{partition}] failed with error code {error}")
                return high_watermark, data
    raise RuntimeError(f"no fetch response for {topic}[{partition}]")


def read_partition(bootstrap: str, topic: str, partition: int, timeout_s: float = 10.0) -> PartitionLog:
    """Every stored batch of one partition, data and control records."""
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    log = PartitionLog(partition)
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        offset, correlation_id = 0, 0
        while True:
            correlation_id += 1
            log.high_watermark, data = _fetch(sock, correlation_id, topic, partition, offset)
            batches = MemoryRecords(data)
            progressed = False
            while batches.has_next():
                batch = batches.next_batch()
                if batch.next_offset <= offset:
                    continue
                progressed = True
                pid = batch.producer_id
                for rec in batch:
                    if rec.offset < offset:
                        continue
                    if batch.is_control_batch:
                        log.markers.append((rec.offset, pid, bool(rec.commit)))
                    else:
                        log.records.append(LogRecord(partition, rec.offset, rec.key, rec.value, pid,
                                                     batch.is_transactional, tuple(rec.headers)))
                offset = batch.next_offset
            if offset >= log.high_watermark or not progressed:
                return log


def partitions_of(bootstrap: str, topic: str) -> list[int]:
    """Partition ids of `topic` (a metadata request creates it if missing)."""
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return sorted(meta.topics[topic].partitions)


def read_topic(bootstrap: str, topic: str, partitions: Optional[Iterable[int]] = None) -> list[PartitionLog]:
    """The raw log of every partition of `topic`."""
    parts = partitions_of(bootstrap, topic) if partitions is None else list(partitions)
    return [read_partition(bootstrap, topic, p) for p in parts]


def read_committed(bootstrap: str, topic: str) -> list[LogRecord]:
    """All records of `topic` a `read_committed` consumer would return now."""
    return [r for log in read_topic(bootstrap, topic) for r in log.visible()]
