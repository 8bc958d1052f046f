"""librdkafka's own log, through Python `logging`, rate-limited.

Every Kafka client of a flow is given `LIBRDKAFKA_LOG` as its `logger`, so
librdkafka hands its log lines to Python (on the client's next poll) instead
of printing them to stderr. A broker that cannot be reached makes every
client log a line per reconnect attempt (about 140 lines a second from the
clients of one flow were seen); here each distinct line is logged once per
`interval_s` (60 s), the next one after the interval saying how many were
held back. Lines are distinct by their text without the client's name and
the timings librdkafka appends ("(after 0ms in state CONNECT, 3 identical
error(s) suppressed)"). Secret property values are blanked out by the
client's own settings before anything is logged (`KafkaSettings.redact`).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any, Callable, Optional

_VOLATILE = re.compile(r"\s*\(after \d+ms in state [A-Z_]+(?:, \d+ identical error\(s\) suppressed)?\)"
                       r"|\[rdkafka#(?:producer|consumer)-\d+\] ")

LOGGER = logging.getLogger("eventio.librdkafka")


class RateLimitedLog:
    """A `logger` for confluent-kafka clients: `log(level, fmt, *args)` as
    `logging.Logger.log`, each distinct line at most once per `interval_s`."""

    def __init__(self, logger: logging.Logger = LOGGER, interval_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, list[float]] = {}
        """line -> [time it was last logged, occurrences held back since]."""

    def log(self, level: int, fmt: str, *args: Any, redact: Optional[Callable[[str], str]] = None) -> None:
        if not self._logger.isEnabledFor(level):
            return
        text = fmt % args if args else fmt
        if redact is not None:
            text = redact(text)
        key = _VOLATILE.sub("", text)
        now = self._clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self._interval_s:
                seen[1] += 1
                return
            held = 0 if seen is None else int(seen[1])
            self._seen[key] = [now, 0]
            if len(self._seen) > 10_000:  # bounded memory for endlessly varying lines
                self._seen = {key: self._seen[key]}
        if held:
            text = f"{text} ({held} more like it in the last {self._interval_s:g} s)"
        self._logger.log(level, "librdkafka: %s", text)

    def for_client(self, redact: Callable[[str], str]) -> "ClientLog":
        """This log as one client's `logger`, blanking its secrets out."""
        return ClientLog(self, redact)


class ClientLog:
    """One client's view of a `RateLimitedLog`."""

    def __init__(self, log: RateLimitedLog, redact: Callable[[str], str]) -> None:
        self._log = log
        self._redact = redact

    def log(self, level: int, fmt: str, *args: Any) -> None:
        self._log.log(level, fmt, *args, redact=self._redact)


LIBRDKAFKA_LOG = RateLimitedLog()
"""The one librdkafka log of the process (rate limits span all clients)."""
