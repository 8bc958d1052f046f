"""A run's progress on stderr: events in, results, late events, dead
letters, events/s and the watermark as a date.

The flow's IO steps add to one process-wide `TALLY` per batch (a lock and a
dict update per batch of up to a thousand records: nothing per event). A
`Reporter`, started by `eventio.flow_setup` only when the flow runs under
`python -m bytewax.run` and `QUIET` is not set, prints a line every
`BOUNDED_INTERVAL_S` on a bounded input (a file, or Kafka with
`STOP_AT_END`), every `UNBOUNDED_INTERVAL_S` on an endless one, and a
summary when the process ends.
"""

from __future__ import annotations

import atexit
import math
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Callable, Optional, TextIO, TypeVar

from eventio import metrics
from eventio.settings import BOOLEAN, Setting

T = TypeVar("T")
U = TypeVar("U")
EVENTS = "events in"
RESULTS = "results"
LATE = "late"
DEAD_LETTERS = "dead letters"
BOUNDED_INTERVAL_S = 5.0
UNBOUNDED_INTERVAL_S = 60.0

QUIET = Setting("QUIET", BOOLEAN, False, "no progress, status or summary lines on stderr")


class Tally:
    """Counts by what was counted (`EVENTS`, `RESULTS`, ... or an output's step id)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, what: str, n: int) -> None:
        if n:
            with self._lock:
                self._counts[what] = self._counts.get(what, 0) + n

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


TALLY = Tally()


def counted(what: str, batch_fn: Callable[[list[T]], list[U]]) -> Callable[[list[T]], list[U]]:
    """`batch_fn` that adds the size of what it returns to `TALLY[what]`."""
    add = TALLY.add

    def counting(batch: list[T]) -> list[U]:
        out = batch_fn(batch)
        add(what, len(out))
        return out

    return counting


def watermark_s() -> Optional[float]:
    """The least finite watermark of the flow's event-time steps, in Unix
    seconds (`stream_watermark_timestamp_seconds`), or None before any."""
    values = [sample.value for family in metrics.WATERMARK.collect() for sample in family.samples
              if math.isfinite(sample.value)]
    return min(values) if values else None


def status_line(flow: str, counts: dict[str, int], rate: float, watermark: Optional[float],
                prefix: str = "") -> str:
    """`flow: 1,000 events in, 10 results, 0 late, 2 dead letters, 5,000 events/s, watermark 2024-...Z`."""
    parts = [f"{counts.get(EVENTS, 0):,} events in", f"{counts.get(RESULTS, 0):,} results",
             f"{counts.get(LATE, 0):,} late", f"{counts.get(DEAD_LETTERS, 0):,} dead letters"]
    parts += [f"{n:,} {what}" for what, n in sorted(counts.items()) if what not in (EVENTS, RESULTS, LATE, DEAD_LETTERS)]
    parts.append(f"{rate:,.0f} events/s")
    if watermark is not None:
        when = datetime.fromtimestamp(watermark, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        parts.append(f"watermark {when}")
    return f"{flow}: {prefix}{', '.join(parts)}"


_prepared: list["Reporter"] = []


def prepare(reporter: "Reporter") -> None:
    """Start `reporter` once the flow has been built (`start_prepared`):
    a build refused for its configuration prints no summary."""
    _prepared[:] = [reporter]


def start_prepared() -> None:
    while _prepared:
        _prepared.pop().start()


class Reporter:
    """Prints `status_line`s every `interval_s` from a daemon thread, and a
    summary at process exit."""

    def __init__(self, flow: str, interval_s: float, out: TextIO = sys.stderr,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._flow = flow
        self._interval_s = interval_s
        self._out = out
        self._clock = clock
        self._start = clock()
        self._last = (self._start, 0)
        self._stopped = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name="progress", daemon=True).start()
        atexit.register(self.summary)

    def _run(self) -> None:
        while not self._stopped.wait(self._interval_s):
            self.report()

    def report(self) -> None:
        """One progress line, with the rate since the last one."""
        now, counts = self._clock(), TALLY.counts()
        then, read_then = self._last
        self._last = (now, counts.get(EVENTS, 0))
        rate = (counts.get(EVENTS, 0) - read_then) / (now - then) if now > then else 0.0
        self._print(status_line(self._flow, counts, rate, watermark_s()))

    def summary(self) -> None:
        """The last line: totals and the average rate over the whole run."""
        self._stopped.set()
        elapsed = self._clock() - self._start
        counts = TALLY.counts()
        rate = counts.get(EVENTS, 0) / elapsed if elapsed > 0 else 0.0
        self._print(status_line(self._flow, counts, rate, watermark_s(), prefix=f"done in {elapsed:.1f} s: "))

    def _print(self, line: str) -> None:
        try:
            print(line, file=self._out, flush=True)
        except (OSError, ValueError):  # stderr closed: nobody to tell
            pass
