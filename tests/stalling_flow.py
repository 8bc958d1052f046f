"""A transactional producer that can be held inside an open transaction,
and `flows.exactly_once` built with it (`tests.stalling_flow:stalling_flow()`).

`StallingProducer` wraps a producer: once a transaction's records are
flushed to the log, before its offsets and commit, it calls `on_stall` with
the number of records the transaction holds. As a flow target, every
writer's producer in the process is wrapped so that the process stops
itself (SIGSTOP) the first time a transaction with records gets there after
the file named by `STALL_TRIGGER` appears. A test then holds the flow
inside a transaction without racing it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Callable

from bytewax.dataflow import Dataflow

from recovery.transactional_sink import KafkaTransactionalWriter


class StallingProducer:
    """Wraps a transactional producer (see module docstring)."""

    def __init__(self, inner: Any, on_stall: Callable[[int], None]) -> None:
        self._inner = inner
        self._on_stall = on_stall
        self._produced = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def begin_transaction(self, *args: Any) -> None:
        self._produced = 0
        self._inner.begin_transaction(*args)

    def produce(self, *args: Any, **kwargs: Any) -> None:
        self._inner.produce(*args, **kwargs)
        self._produced += 1

    def send_offsets_to_transaction(self, *args: Any) -> None:
        self._inner.flush(10)
        self._on_stall(self._produced)
        self._inner.send_offsets_to_transaction(*args)


def _stop_when_triggered(produced: int) -> None:
    trigger = Path(os.environ["STALL_TRIGGER"])
    if produced and trigger.exists():
        trigger.unlink()
        os.kill(os.getpid(), signal.SIGSTOP)


def stalling_flow() -> Dataflow:
    """`flows.exactly_once.flow`, with every transactional writer this
    process builds stopping itself when triggered (see module docstring)."""
    from flows.exactly_once import flow

    wrapped = KafkaTransactionalWriter.__init__

    def init(self: KafkaTransactionalWriter, *args: Any, **kwargs: Any) -> None:
        wrapped(self, *args, **kwargs)
        self._producer = StallingProducer(self._producer, _stop_when_triggered)  # type: ignore[assignment]

    KafkaTransactionalWriter.__init__ = init  # type: ignore[method-assign]
    return flow
