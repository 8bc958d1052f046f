"""Epoch-aligned commits: the core of the exactly-once sink, free of Bytewax and Kafka.

One `EpochCommitter` serves one sink partition. Output written during an epoch
is buffered; at the end of the epoch `snapshot()` moves it into *pending*
under the next sequence number and returns `(seq, pending)` as the
partition's recovery state. The next call (`add` or `snapshot`) runs only
after that snapshot is durable (Bytewax starts an epoch once every snapshot
of the previous one is written), so it first commits the pending records in
one transaction that also records `seq` as the partition's committed
sequence. On resume, the pending records of the restored state are committed
only if the recorded sequence is older: an epoch's output is committed once,
whether the process died before, during or after its commit.
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Protocol, Sequence

OutRecord = tuple[str, Optional[int], Optional[bytes], Optional[bytes], Any]
"""(topic, partition or None for the producer's partitioner, key, value,
headers) of one output record."""

SinkState = tuple[int, tuple[OutRecord, ...]]
"""(sequence number of the last snapshot with output, its records)."""

log = logging.getLogger(__name__)


class TransactionalWriter(Protocol):
    """A store that commits a batch of records and a sequence number atomically."""

    def committed_seq(self) -> int:
        """Sequence number recorded by the last committed transaction, 0 if none."""
        ...

    def commit(self, records: Sequence[OutRecord], seq: int) -> None:
        """Make `records` visible and record `seq`, all or nothing."""
        ...

    def close(self) -> None:
        """Release the connection; never commits."""
        ...


class EpochCommitter:
    """Buffers an epoch's output and commits it once its snapshot is durable."""

    def __init__(self, writer: TransactionalWriter, resume: Optional[SinkState]) -> None:
        self._writer = writer
        self._buffer: list[OutRecord] = []
        committed = writer.committed_seq()
        if resume is None:
            # Continue the numbering of earlier executions so that a
            # recorded sequence is never mistaken for a newer one.
            self.seq, self.pending = committed, ()
            return
        seq, pending = resume
        if committed > seq:
            log.warning(
                "output is committed up to sequence %d but the recovery state is at %d: "
                "the recovery store is older than the output (restored from a backup?); "
                "output after sequence %d is produced again",
                committed, seq, seq,
            )
            self.seq, self.pending = committed, ()
        elif committed == seq:
            self.seq, self.pending = seq, ()
        else:
            self.seq, self.pending = seq, tuple(pending)
        # Restored state was loaded from durable storage: commit it now.
        self._commit_pending()

    def add(self, records: list[OutRecord]) -> None:
        """Buffer one batch of the current epoch (an empty batch is a heartbeat)."""
        if self.pending:
            self._commit_pending()
        self._buffer.extend(records)

    def snapshot(self) -> SinkState:
        """End of epoch: the buffered output becomes pending under a new sequence."""
        if self.pending:
            self._commit_pending()
        if self._buffer:
            self.seq += 1
            self.pending = tuple(self._buffer)
            self._buffer = []
        return (self.seq, self.pending)

    def close(self) -> None:
        """Stop without committing: Bytewax also closes on abort, when the last
        snapshot may not be durable; a later execution commits it."""
        self._writer.close()

    def _commit_pending(self) -> None:
        if self.pending:
            self._writer.commit(self.pending, self.seq)
            self.pending = ()
