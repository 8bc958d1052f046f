"""Synthetic inputs shared by the benchmarks, identical for every contender."""

from __future__ import annotations

import random

Item = tuple[str, int, float, str]
"""(key, timestamp ms, value, event type)."""

TYPES = ("page_view", "page_view", "page_view", "login", "purchase", "idle")


def keyed_events(n: int, keys: int, seed: int = 1, step_ms: int = 3, disorder_ms: int = 0) -> list[Item]:
    """`n` events over `keys` keys, timestamps advancing `step_ms` on average,
    optionally shuffled within `disorder_ms`."""
    rnd = random.Random(seed)
    names = [f"u{i}" for i in range(keys)]
    out = []
    ts = 1_704_067_200_000
    for _ in range(n):
        ts += rnd.randint(0, 2 * step_ms)
        jitter = rnd.randint(0, disorder_ms) if disorder_ms else 0
        out.append((names[rnd.randrange(keys)], ts - jitter, rnd.random() * 100, TYPES[rnd.randrange(6)]))
    return out
