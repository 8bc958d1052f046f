"""Brute-force reference for the interval join, written from the documented
rules alone (no code shared with `operators/joins/interval_join.py`).

Events are `(side, key, ts, value)` in arrival order, side 0 = left, 1 = right.
The watermark is simulated as a bounded-out-of-orderness source would produce
it for each input and combined as a two-input operator does: the minimum over
the two inputs of (max timestamp seen on that input − bound − 1), nothing
(the minimum possible value) until both inputs have shown an element.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

NO_WATERMARK = -(2**63)

Event = tuple[int, str, int, Any]


def watermarks_before(events: list[Event], bound_ms: int) -> list[int]:
    """The operator watermark in force before each event."""
    highest: dict[int, int] = {}
    current = NO_WATERMARK
    result = []
    for side, _key, ts, _value in events:
        result.append(current)
        highest[side] = max(highest.get(side, ts), ts)
        if len(highest) == 2:
            current = max(current, min(highest.values()) - bound_ms - 1)
    return result


def joins(gap: int, lower: int, upper: int, lower_inclusive: bool, upper_inclusive: bool) -> bool:
    """Whether right.ts − left.ts = `gap` lies in the interval."""
    above = gap >= lower if lower_inclusive else gap > lower
    below = gap <= upper if upper_inclusive else gap < upper
    return above and below


def expected_outputs(
    events: list[Event],
    watermarks: list[int],
    lower: int,
    upper: int,
    lower_inclusive: bool = True,
    upper_inclusive: bool = True,
) -> list[list[tuple[str, Any]]]:
    """For each event, what the join must emit when it arrives: the event on
    `late` if its timestamp is behind the watermark, otherwise one `down` pair
    with every earlier on-time element of the other side and same key whose
    timestamps fit the interval."""
    outputs: list[list[tuple[str, Any]]] = []
    on_time: list[Event] = []
    for (side, key, ts, value), wm in zip(events, watermarks):
        if ts < wm:
            outputs.append([("late", (key, (side, value)))])
            continue
        emitted = []
        for other_side, other_key, other_ts, other_value in on_time:
            if other_side == side or other_key != key:
                continue
            if side == 0:
                pair_gap, pair = other_ts - ts, (value, other_value)
            else:
                pair_gap, pair = ts - other_ts, (other_value, value)
            if joins(pair_gap, lower, upper, lower_inclusive, upper_inclusive):
                emitted.append(("down", (key, pair)))
        outputs.append(emitted)
        on_time.append((side, key, ts, value))
    return outputs


def all_pairs(
    events: list[Event],
    lower: int,
    upper: int,
    lower_inclusive: bool = True,
    upper_inclusive: bool = True,
) -> Counter[tuple[str, Any]]:
    """Every same-key (left, right) pair fitting the interval, as a multiset
    of `(key, (left, right))`, ignoring lateness."""
    pairs: Counter[tuple[str, Any]] = Counter()
    for left_side, key, left_ts, left in events:
        if left_side != 0:
            continue
        for right_side, right_key, right_ts, right in events:
            if right_side == 1 and right_key == key:
                if joins(right_ts - left_ts, lower, upper, lower_inclusive, upper_inclusive):
                    pairs[(key, (left, right))] += 1
    return pairs


def still_needed(
    events: list[Event],
    watermarks: list[int],
    now: int,
    lower: int,
    upper: int,
    lower_inclusive: bool = True,
    upper_inclusive: bool = True,
) -> int:
    """How many on-time elements Flink's cleanup rule keeps at watermark
    `now`: a left element until the watermark passes ts + max(upper, 0), a
    right element until it passes ts + max(−lower, 0), with exclusive bounds
    first tightened by one millisecond."""
    tight_lower = lower if lower_inclusive else lower + 1
    tight_upper = upper if upper_inclusive else upper - 1
    kept = 0
    for (side, _key, ts, _value), wm in zip(events, watermarks):
        if ts < wm:
            continue
        keep_until = ts + (max(tight_upper, 0) if side == 0 else max(-tight_lower, 0))
        if now <= keep_until:
            kept += 1
    return kept


def window_join_pairs(
    events: list[Event], watermarks: list[int], size: int, slide: int, offset: int = 0
) -> tuple[Counter[tuple[str, int, Any, Any]], list[tuple[str, tuple[int, Any]]]]:
    """Fixed-size event-time window join without allowed lateness (`slide <=
    size`): windows `[s, s + size)` start at every `s = offset (mod slide)`;
    an element joins the windows containing it that the watermark has not
    reached (`s + size − 1 > watermark`) and is late when there are none.
    Returns every `(key, window start, left, right)` sharing a window, and the
    late elements as `(key, (side, element))`."""
    contents: dict[tuple[str, int], tuple[list[Any], list[Any]]] = {}
    late = []
    for (side, key, ts, value), wm in zip(events, watermarks):
        starts = [s for s in range(ts - size + 1, ts + 1) if (s - offset) % slide == 0]
        open_starts = [s for s in starts if s + size - 1 > wm]
        if not open_starts:
            late.append((key, (side, value)))
        for s in open_starts:
            contents.setdefault((key, s), ([], []))[side].append(value)
    pairs: Counter[tuple[str, int, Any, Any]] = Counter(
        (key, s, left, right)
        for (key, s), (lefts, rights) in contents.items()
        for left in lefts
        for right in rights
    )
    return pairs, late
