"""The timer wheel against a sorted list: random timers after the watermark,
watermarks moving by small steps, whole slots and long jumps."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from operators.time.eventtime import MAX_WATERMARK
from operators.time.timer_wheel import SLOT_BITS, TimerWheel

SLOT = 1 << SLOT_BITS

moves = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 5 * SLOT), st.sampled_from("abc")),
        st.tuples(st.just("watermark"), st.sampled_from([0, 1, 7, SLOT - 1, SLOT, 3 * SLOT, 10**7]), st.none()),
    ),
    max_size=80,
)


@given(st.integers(-(10**6), 10**6), moves)
def test_pop_due_gives_exactly_the_timers_at_or_before_the_watermark_in_time_order(start: int, ops: list) -> None:
    wheel = TimerWheel()
    pending: list[tuple[int, str]] = []
    wm = start
    for kind, amount, key in ops:
        if kind == "add":  # timers are set after the watermark, as the session engine does
            wheel.add(wm + amount, key)
            pending.append((wm + amount, key))
        else:
            wm += amount
            assert wheel.pop_due(wm) == sorted(t for t in pending if t[0] <= wm)
            pending = [t for t in pending if t[0] > wm]
        assert wheel.earliest() == min((t for t, _ in pending), default=None)
        assert wheel.low <= min((t for t, _ in pending), default=MAX_WATERMARK)
    assert wheel.pop_due(MAX_WATERMARK) == sorted(pending)
    assert wheel.earliest() is None


def test_a_timer_in_the_watermarks_own_slot_waits_for_its_time() -> None:
    wheel = TimerWheel()
    wheel.add(5 * SLOT + 10, "a")
    wheel.add(5 * SLOT + 3, "b")
    assert wheel.pop_due(5 * SLOT + 5) == [(5 * SLOT + 3, "b")]
    assert wheel.low == 5 * SLOT + 10
    assert wheel.pop_due(5 * SLOT + 9) == []
    assert wheel.pop_due(5 * SLOT + 10) == [(5 * SLOT + 10, "a")]
