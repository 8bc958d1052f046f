"""Token bucket against a millisecond-by-millisecond simulation."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.process.token_bucket import TokenBucket


def simulate(rate_milli: int, burst: int, moves: list[int]) -> list[bool]:
    """Brute force: a bucket of micro-tokens that gains `rate_milli` micro-tokens
    every millisecond, one millisecond at a time, never above `burst` tokens;
    one event per move of the clock, after the move."""
    cap = burst * 1_000_000
    held = cap
    passed = []
    for moved in moves:
        for _ in range(moved):
            if held == cap:
                break
            held = min(cap, held + rate_milli)
        passed.append(held >= 1_000_000)
        if held >= 1_000_000:
            held -= 1_000_000
    return passed


def drive(bucket: TokenBucket, start: int, moves: list[int]) -> list[bool]:
    state = None
    now = start
    out = []
    for moved in moves:
        now += moved
        passed, state = bucket.try_take(state, now)
        out.append(passed)
    return out


@settings(max_examples=150, deadline=None)
@given(
    rate_milli=st.integers(0, 60_000),
    burst=st.integers(1, 5),
    start=st.integers(0, 10**12),
    moves=st.lists(st.integers(0, 1500), min_size=1, max_size=40),
)
def test_forward_clock_matches_the_millisecond_simulation(
    rate_milli: int, burst: int, start: int, moves: list[int]
) -> None:
    bucket = TokenBucket(rate_milli / 1000, burst)
    assert drive(bucket, start, [0] + moves) == simulate(rate_milli, burst, [0] + moves)


@settings(max_examples=100, deadline=None)
@given(
    rate_milli=st.integers(1, 20_000),
    burst=st.integers(1, 4),
    moves=st.lists(st.integers(-800, 1500), min_size=1, max_size=40),
)
def test_a_clock_going_backwards_refills_nothing(rate_milli: int, burst: int, moves: list[int]) -> None:
    """Processing time may step back (clock adjustments): the bucket keeps the
    latest time it refilled to and refills only past it."""
    bucket = TokenBucket(rate_milli / 1000, burst)
    state = None
    now = 0
    held_to = 0
    expected = []
    cap = burst * 1_000_000
    held = cap
    got = []
    for m in [0] + moves:
        now += m
        if now > held_to:
            held = min(cap, held + (now - held_to) * rate_milli)
            held_to = now
        expected.append(held >= 1_000_000)
        if held >= 1_000_000:
            held -= 1_000_000
        passed, state = bucket.try_take(state, now)
        got.append(passed)
    assert got == expected


def test_a_steady_flood_passes_burst_plus_rate_times_duration() -> None:
    bucket = TokenBucket(10, 20)
    state = None
    passed = 0
    for ms in range(0, 60_000, 5):  # 200 events per second for a minute
        ok, state = bucket.try_take(state, ms)
        passed += ok
    # 20 at once, then one every 100 ms: at 100, 200, ..., 59_900.
    assert passed == 20 + 599


def test_fractional_rates_keep_exact_time() -> None:
    """0.5 tokens per second: one token every 2 s, no drift after an hour."""
    bucket = TokenBucket(0.5, 1)
    ok, state = bucket.try_take(None, 0)
    assert ok
    passes = 0
    for ms in range(250, 3_600_001, 250):
        ok, state = bucket.try_take(state, ms)
        passes += ok
    assert passes == 1800  # at 2 s, 4 s, ..., 3600 s


def test_lowering_the_burst_caps_what_a_bucket_holds() -> None:
    _, state = TokenBucket(1, 10).try_take(None, 0)
    small = TokenBucket(1, 2)
    assert small.tokens(state, 0) == 2.0
    taken = []
    for _ in range(3):
        ok, state = small.try_take(state, 0)
        taken.append(ok)
    assert taken == [True, True, False]


def test_state_and_policy_pickle() -> None:
    bucket = TokenBucket(2.5, 3)
    _, state = bucket.try_take(None, 100)
    again = pickle.loads(pickle.dumps(bucket))
    assert again == bucket and again.try_take(state, 500) == bucket.try_take(state, 500)


@pytest.mark.parametrize(
    ("rate", "burst"), [(-1, 1), (float("nan"), 1), (float("inf"), 1), (True, 1), (1, 0), (1, 1.5), ("1", 1)]
)
def test_bad_limits_are_refused(rate: object, burst: object) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)  # type: ignore[arg-type]
