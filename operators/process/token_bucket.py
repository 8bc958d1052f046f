"""Token-bucket rate limiting in processing time.

A bucket holds up to `burst` tokens and gains `rate_per_second` tokens per
second of processing time; an event that finds a whole token takes it and
passes, otherwise it is over the limit. A new bucket starts full.

Arithmetic is exact integers: one token is `UNITS_PER_TOKEN` units and the
bucket gains `round(rate_per_second * 1000)` units per millisecond, so the
rate has a resolution of 0.001 tokens per second and no rounding drift
accumulates however long a bucket lives. Processing time is passed in (epoch
milliseconds from an injected clock); time going backwards refills nothing.

`TokenBucket` is the policy (rate and burst) and is stateless; the state of
one bucket is a plain `(units, last_ms)` tuple, so it can live in keyed
operator state and be pickled. Plain Python, no Bytewax import.
"""

from __future__ import annotations

import math
from typing import Optional

UNITS_PER_TOKEN = 1_000_000

BucketState = tuple[int, int]
"""(units held, processing time of the last refill in epoch ms)."""


class TokenBucket:
    """The limit of a bucket: `burst` tokens, refilled at `rate_per_second`."""

    __slots__ = ("rate_per_second", "burst", "_refill", "_capacity")

    def __init__(self, rate_per_second: float, burst: int) -> None:
        if (
            isinstance(rate_per_second, bool)
            or not isinstance(rate_per_second, (int, float))
            or not math.isfinite(rate_per_second)
            or rate_per_second < 0
        ):
            raise ValueError(f"rate_per_second must be a finite number >= 0, got {rate_per_second!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be an int >= 1, got {burst!r}")
        self.rate_per_second = rate_per_second
        self.burst = burst
        self._refill = round(rate_per_second * 1000)
        self._capacity = burst * UNITS_PER_TOKEN

    def try_take(self, state: Optional[BucketState], now_ms: int) -> tuple[bool, BucketState]:
        """Refill to `now_ms`, then take one token if there is one: `(passed,
        new state)`. `state` None is a new, full bucket."""
        if state is None:
            units, last = self._capacity, now_ms
        else:
            units, last = state
            if now_ms > last:
                units += (now_ms - last) * self._refill
                last = now_ms
            if units > self._capacity:
                units = self._capacity
        if units >= UNITS_PER_TOKEN:
            return True, (units - UNITS_PER_TOKEN, last)
        return False, (units, last)

    def tokens(self, state: Optional[BucketState], now_ms: int) -> float:
        """Tokens available at `now_ms` (for inspection and metrics)."""
        if state is None:
            return float(self.burst)
        units, last = state
        units = min(self._capacity, units + max(0, now_ms - last) * self._refill)
        return units / UNITS_PER_TOKEN

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TokenBucket)
            and self.rate_per_second == other.rate_per_second
            and self.burst == other.burst
        )

    def __hash__(self) -> int:
        return hash((self.rate_per_second, self.burst))

    def __getstate__(self) -> tuple[float, int]:
        return (self.rate_per_second, self.burst)

    def __setstate__(self, state: tuple[float, int]) -> None:
        self.__init__(*state)  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"TokenBucket(rate_per_second={self.rate_per_second!r}, burst={self.burst!r})"
