"""Broadcast state core: rules applied in order against enumeration, identical
broadcast state across shards, keyed state visits, snapshot/restore."""

from __future__ import annotations

import pickle
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.process.broadcast_state import (
    BroadcastContext,
    KeyedBroadcastContext,
    KeyedBroadcastProcess,
    KeyedBroadcastProcessFunction,
)
from operators.process.co_process import Collector

settings.register_profile("broadcast", max_examples=200, deadline=None)
settings.load_profile("broadcast")

KEYS = ("a", "b", "c", "d", "e")


def clock() -> int:
    return 0


class Thresholds(KeyedBroadcastProcessFunction[int, tuple[Any, ...]]):
    """Rules are `("set", rule, threshold)`, `("drop", rule)` or `("reset",)`
    (zero every key's counter). Each event counts towards its key and emits
    `(count, [rules whose threshold the value reaches])`."""

    def process_broadcast_element(self, value: tuple[Any, ...], ctx: BroadcastContext) -> None:
        if value[0] == "set":
            ctx.broadcast_state[value[1]] = value[2]
        elif value[0] == "drop":
            ctx.broadcast_state.pop(value[1], None)
        else:
            ctx.apply_to_keyed_state(lambda key, state: state.clear())

    def process_element(self, value: int, ctx: KeyedBroadcastContext, out: Collector) -> None:
        ctx.state["count"] = ctx.state.get("count", 0) + 1
        hits = sorted(rule for rule, threshold in ctx.broadcast_state.items() if value >= threshold)
        out.collect((ctx.state["count"], hits))


rule_update = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(["r1", "r2", "r3"]), st.integers(0, 9)),
    st.tuples(st.just("drop"), st.sampled_from(["r1", "r2", "r3"])),
    st.just(("reset",)),
)
stream = st.lists(
    st.one_of(
        st.tuples(st.just("rule"), rule_update),
        st.tuples(st.just("event"), st.sampled_from(KEYS), st.integers(0, 9)),
    ),
    max_size=60,
)


def enumerate_expected(items: list[tuple[Any, ...]]) -> tuple[list[tuple[str, Any]], dict[str, int]]:
    """Apply every rule update in order; each event sees the rules so far and
    counts the events of its key since the last reset."""
    rules: dict[str, int] = {}
    out = []
    for i, item in enumerate(items):
        if item[0] == "rule":
            update = item[1]
            if update[0] == "set":
                rules[update[1]] = update[2]
            elif update[0] == "drop":
                rules.pop(update[1], None)
            continue
        _, key, value = item
        last_reset = max(
            (j for j, it in enumerate(items[:i]) if it[0] == "rule" and it[1] == ("reset",)),
            default=-1,
        )
        count = sum(1 for it in items[last_reset + 1 : i + 1] if it[0] == "event" and it[1] == key)
        out.append(("down", (key, (count, sorted(r for r, t in rules.items() if value >= t)))))
    return out, rules


def feed(shards: list[KeyedBroadcastProcess], items: list[tuple[Any, ...]]) -> list[tuple[str, Any]]:
    """Route events to their key's shard and rules to every shard."""
    emitted = []
    for item in items:
        if item[0] == "rule":
            for shard in shards:
                shard.on_broadcast(item[1])
        else:
            _, key, value = item
            shard = shards[zlib.crc32(key.encode()) % len(shards)]
            shard.on_element(key, 0, value)
            emitted.extend(shard.emitted)
            shard.emitted = []
    return emitted


@given(items=stream, count=st.integers(1, 4))
def test_rules_apply_in_order_and_every_shard_holds_the_same_broadcast_state(
    items: list[tuple[Any, ...]], count: int
) -> None:
    shards = [KeyedBroadcastProcess(Thresholds(), clock=clock) for _ in range(count)]
    emitted = feed(shards, items)
    expected, rules = enumerate_expected(items)
    assert emitted == expected
    assert all(shard.broadcast_state == rules for shard in shards)


@given(items=stream, cut=st.integers(0, 60))
def test_snapshot_and_restore_mid_stream_keeps_broadcast_and_keyed_state(
    items: list[tuple[Any, ...]], cut: int
) -> None:
    first = KeyedBroadcastProcess(Thresholds(), clock=clock)
    before = feed([first], items[:cut])
    resumed = KeyedBroadcastProcess(Thresholds(), clock=clock)
    resumed.restore(pickle.loads(pickle.dumps(first.snapshot())))
    after = feed([resumed], items[cut:])
    assert before + after == enumerate_expected(items)[0]


def test_broadcast_state_is_read_only_for_keyed_elements() -> None:
    class Meddler(Thresholds):
        def process_element(self, value: int, ctx: KeyedBroadcastContext, out: Collector) -> None:
            ctx.broadcast_state["r1"] = value  # type: ignore[index]

    core = KeyedBroadcastProcess(Meddler(), clock=clock)
    with pytest.raises(TypeError):
        core.on_element("a", 0, 1)


def test_reset_frees_keyed_state_and_sizes_count_rules() -> None:
    core = KeyedBroadcastProcess(Thresholds(), clock=clock)
    core.on_broadcast(("set", "r1", 5))
    core.on_element("a", 0, 7)
    core.on_element("b", 0, 1)
    assert core.state_size() == 3  # two keys with state and one rule
    core.on_broadcast(("reset",))
    assert core.state_size() == 1
    assert core.emitted == [("down", ("a", (1, ["r1"]))), ("down", ("b", (1, [])))]


def test_timers_and_side_outputs_work_as_in_co_process() -> None:
    class Alarm(KeyedBroadcastProcessFunction[int, int]):
        def process_broadcast_element(self, value: int, ctx: BroadcastContext) -> None:
            ctx.broadcast_state["delay"] = value

        def process_element(self, value: int, ctx: KeyedBroadcastContext, out: Collector) -> None:
            ctx.timer_service.register_event_time_timer(ctx.timestamp + ctx.broadcast_state["delay"])

        def on_timer(self, timestamp: int, ctx: KeyedBroadcastContext, out: Collector) -> None:
            ctx.output("alarms", (timestamp, ctx.broadcast_state["delay"]))

    core = KeyedBroadcastProcess(Alarm(), clock=clock, side_outputs=["alarms"])
    core.on_broadcast(30)
    core.on_element("a", 100, 0)
    core.on_watermark(129)
    assert core.emitted == []
    core.on_watermark(130)
    assert core.emitted == [("alarms", ("a", (130, 30)))]
