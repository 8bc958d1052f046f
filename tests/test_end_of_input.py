"""FireAtEndOfInput around count-or-timeout micro-batches, against a plain
per-key simulation of the documented rules."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.time.eventtime import MAX_WATERMARK
from operators.windows.assigners import GlobalWindows, TumblingEventTimeWindows
from operators.windows.end_of_input import FireAtEndOfInput
from operators.windows.functions import Aggregate
from operators.windows.operator import WindowOperator
from operators.windows.triggers import CountOrTimeoutTrigger, CountTrigger, EventTimeTrigger

Op = tuple[str, int, int]
"""(key, processing-time advance in ms, value)."""


def simulate(ops: list[Op], count: int, timeout: int) -> dict[str, list[tuple[str, list[int]]]]:
    """Per key, the batches in emission order with why they were emitted:
    `count` at the count-th element, `timeout` once processing time reaches
    `timeout` after the batch's first element (checked before each element),
    `end` for what is left at the end of input."""
    now = 0
    batches: dict[str, list[int]] = {}
    opened: dict[str, int] = {}
    out: dict[str, list[tuple[str, list[int]]]] = {}
    for key, advance, value in ops:
        now += advance
        for k in sorted(opened, key=lambda k: opened[k]):
            if opened[k] + timeout <= now:
                out.setdefault(k, []).append(("timeout", batches.pop(k)))
                del opened[k]
        if key not in batches:
            batches[key] = []
            opened[key] = now
        batches[key].append(value)
        if len(batches[key]) == count:
            out.setdefault(key, []).append(("count", batches.pop(key)))
            del opened[key]
    for k, batch in batches.items():
        out.setdefault(k, []).append(("end", batch))
    return out


def drive(ops: list[Op], count: int, timeout: int, cut: int = -1) -> dict[str, list[tuple[str, list[int]]]]:
    """Feed the operator as the wiring does (due processing time first, then
    the element); at `cut`, snapshot and continue in a fresh operator."""
    now = [0]

    def make() -> WindowOperator[Any]:
        return WindowOperator(
            GlobalWindows(), trigger=FireAtEndOfInput(CountOrTimeoutTrigger(count, timeout)),
            aggregate=Aggregate.collect(), clock=lambda: now[0],
        )

    core = make()
    emitted: list[tuple[str, Any]] = []
    for i, (key, advance, value) in enumerate(ops):
        if i == cut:
            state = pickle.dumps(core.snapshot())
            emitted += core.emitted
            core = make()
            core.restore(pickle.loads(state))
        now[0] += advance
        due = core.next_processing_time()
        if due is not None and due <= now[0]:
            core.on_processing_time(now[0])
        core.on_element(key, 0, value)
    core.on_watermark(MAX_WATERMARK)
    emitted += core.emitted
    out: dict[str, list[tuple[str, list[int]]]] = {}
    for port, (key, result) in emitted:
        assert port == "down"
        reason = "count" if len(result.value) == count else "end" if result.watermark == MAX_WATERMARK else "timeout"
        out.setdefault(key, []).append((reason, result.value))
    return out


ops_strategy = st.lists(
    st.tuples(st.sampled_from("abc"), st.integers(0, 400), st.integers(0, 10**6)), max_size=80
)


@settings(max_examples=200, deadline=None)
@given(ops=ops_strategy, count=st.integers(1, 6), timeout=st.integers(1, 1000))
def test_batches_by_count_timeout_and_end_of_input(ops: list[Op], count: int, timeout: int) -> None:
    assert drive(ops, count, timeout) == simulate(ops, count, timeout)


@settings(max_examples=100, deadline=None)
@given(ops=ops_strategy, count=st.integers(1, 6), timeout=st.integers(1, 1000), cut=st.integers(0, 80))
def test_a_snapshot_mid_stream_changes_nothing(ops: list[Op], count: int, timeout: int, cut: int) -> None:
    assert drive(ops, count, timeout, cut) == simulate(ops, count, timeout)


def test_without_the_wrapper_the_last_partial_batch_stays_buffered() -> None:
    core = WindowOperator(GlobalWindows(), trigger=CountOrTimeoutTrigger(3, 1000),
                          aggregate=Aggregate.collect(), clock=lambda: 0)
    for v in range(4):
        core.on_element("k", 0, v)
    core.on_watermark(MAX_WATERMARK)
    assert [r.value for _, (_, r) in core.emitted] == [[0, 1, 2]]


def test_a_purging_count_trigger_flushes_its_remainder() -> None:
    core = WindowOperator(GlobalWindows(), trigger=FireAtEndOfInput(CountTrigger(2)),
                          aggregate=Aggregate.count(), clock=lambda: 0)
    for v in range(5):
        core.on_element("k", 0, v)
    core.on_watermark(MAX_WATERMARK)
    # CountTrigger fires without purging: 2, 4, then the end-of-input firing of all 5.
    assert [r.value for _, (_, r) in core.emitted] == [2, 4, 5]


def test_event_time_windows_keep_their_own_firings() -> None:
    core = WindowOperator(TumblingEventTimeWindows(10), trigger=FireAtEndOfInput(EventTimeTrigger()),
                          aggregate=Aggregate.count())
    for ts in (1, 2, 15):
        core.on_element("k", ts, ts)
    core.on_watermark(9)
    core.on_watermark(MAX_WATERMARK)
    assert [(r.window_start, r.value) for _, (_, r) in core.emitted] == [(0, 2), (10, 1)]


def test_only_triggers_are_accepted() -> None:
    with pytest.raises(TypeError):
        FireAtEndOfInput("count")  # type: ignore[arg-type]


def test_a_processing_time_trigger_inside_still_needs_a_clock() -> None:
    with pytest.raises(ValueError, match="give a clock"):
        WindowOperator(GlobalWindows(), trigger=FireAtEndOfInput(CountOrTimeoutTrigger(3, 1000)),
                       aggregate=Aggregate.count(), clock=None)
