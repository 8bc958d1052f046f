"""The embedded broker launcher leaves no process behind."""

from __future__ import annotations

import os

import pytest
from confluent_kafka.admin import AdminClient

from eventio.broker import EmbeddedBroker


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
