"""Property tests: the window operator core against the brute-force reference
(`tests/windowing_reference.py`) on random keyed streams with disorder and
very late events, random assigners, allowed lateness, triggers, window
functions and engines, optionally snapshotted and restored mid-stream; and
a consumer applying `supersedes` to a table ends up with the reference's
final results."""

from __future__ import annotations

import pickle
from collections import Counter
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.time.eventtime import MAX_WATERMARK, MIN_WATERMARK
from operators.windows.assigners import (
    EventTimeSessionWindows,
    SlidingEventTimeWindows,
    TumblingEventTimeWindows,
    WindowAssigner,
)
from operators.windows.functions import Aggregate
from operators.windows.operator import WindowOperator
from operators.windows.triggers import CountOrTimeoutTrigger, CountTrigger, EventTimeTrigger, PurgingTrigger, Trigger
from tests.windowing_reference import Reference, Spec

PROPERTY = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Event = tuple[str, int, int, int]


class GeneralEventTimeTrigger(EventTimeTrigger):
    """The default trigger under another type: runs the general engine."""


def dynamic_gap(value: int) -> int:
    return 1 + (value * 7) % 9


def sorted_tuple(elements: list[int]) -> tuple[int, ...]:
    return tuple(sorted(elements))


@st.composite
def events(draw: st.DrawFn) -> list[Event]:
    cursor = draw(st.integers(-40, 40))
    out: list[Event] = []
    for i in range(draw(st.integers(0, 40))):
        cursor += draw(st.integers(0, 6))
        jitter = draw(st.integers(0, 8))
        very_late = draw(st.integers(0, 4)) == 0
        ts = cursor - jitter - (draw(st.integers(5, 40)) if very_late else 0)
        out.append((draw(st.sampled_from("aab")), ts, i, draw(st.sampled_from([0, 0, 0, 1, 2, 5]))))
    return out


TRIGGERS = ["event", "purging_event", "count", "purging_count", "count_timeout"]
EVENT_TIME_TRIGGERS = TRIGGERS[:-1]


@st.composite
def specs(draw: st.DrawFn, trigger: Optional[str] = None, family: Optional[str] = None) -> Spec:
    kinds = {"fixed": ["tumbling", "sliding"], "sessions": ["session", "dynamic"]}
    kind = draw(st.sampled_from(kinds.get(family or "", ["tumbling", "sliding", "session", "dynamic"])))
    spec = Spec(kind=kind, evaluate=sorted_tuple)
    if kind == "tumbling":
        spec.size = draw(st.integers(1, 15))
        spec.offset = draw(st.integers(-spec.size + 1, spec.size - 1))
    elif kind == "sliding":
        spec.size = draw(st.integers(1, 20))
        spec.slide = draw(st.integers(1, 10))
        spec.offset = draw(st.integers(-spec.slide + 1, spec.slide - 1))
    elif kind == "session":
        spec.gap = draw(st.integers(1, 10))
    else:
        spec.gap_of = dynamic_gap
    spec.lateness = draw(st.sampled_from([0, 0, 3, 10, 30]))
    spec.trigger = trigger or draw(st.sampled_from(TRIGGERS))
    spec.count = draw(st.integers(1, 6))
    spec.timeout = draw(st.integers(1, 40))
    spec.bound = draw(st.integers(0, 10))
    return spec


def assigner_for(spec: Spec) -> WindowAssigner:
    if spec.kind == "tumbling":
        return TumblingEventTimeWindows(spec.size, spec.offset)
    if spec.kind == "sliding":
        return SlidingEventTimeWindows(spec.size, spec.slide, spec.offset)
    if spec.kind == "session":
        return EventTimeSessionWindows.with_gap(spec.gap)
    return EventTimeSessionWindows.with_dynamic_gap(dynamic_gap)


def trigger_for(spec: Spec, general: bool) -> Optional[Trigger]:
    return {
        "event": GeneralEventTimeTrigger() if general else None,
        "purging_event": PurgingTrigger(EventTimeTrigger()),
        "count": CountTrigger(spec.count),
        "purging_count": PurgingTrigger(CountTrigger(spec.count)),
        "count_timeout": CountOrTimeoutTrigger(spec.count, spec.timeout),
    }[spec.trigger]


def window_function(style: str) -> dict[str, Any]:
    if style == "aggregate":
        return {"aggregate": Aggregate(list, lambda acc, v: acc + [v], lambda a, b: a + b, sorted_tuple)}
    if style == "process":
        return {"process": lambda key, window, elements, wm: [sorted_tuple(elements)]}
    return {
        "aggregate": Aggregate.collect(),
        "process": lambda key, window, elements, wm: [sorted_tuple(elements[0])],
    }


class Harness:
    """Drives an operator core by the reference's protocol with a fake clock."""

    def __init__(self, spec: Spec, general: bool, style: str) -> None:
        self.spec = spec
        self.now = 0
        self.make = lambda: WindowOperator(
            assigner_for(spec),
            trigger=trigger_for(spec, general),
            allowed_lateness_ms=spec.lateness,
            clock=lambda: self.now,
            **window_function(style),
        )
        self.core = self.make()
        self.firings: list[tuple[Any, ...]] = []
        self.late: list[tuple[str, Any]] = []

    def drain(self) -> None:
        for port, item in self.core.emitted:
            if port == "down":
                key, r = item
                assert r.key == key
                assert r.is_late_update == bool(r.supersedes)
                self.firings.append((key, r.window_start, r.window_end, r.value, r.supersedes, r.watermark))
            else:
                assert port == "late", (port, item)
                self.late.append(item)
        self.core.emitted = []

    def restart(self) -> None:
        """Snapshot, pickle, restore into a fresh core, as a resume does."""
        self.drain()
        state = pickle.dumps(self.core.snapshot())
        fresh = self.make()
        fresh.restore(pickle.loads(state))
        fresh.watermark = self.core.watermark
        self.core = fresh

    def run(self, stream: list[Event], restart_at: Optional[int] = None) -> None:
        max_seen: Optional[int] = None
        for i, (key, ts, value, advance) in enumerate(stream):
            if i == restart_at:
                self.restart()
            self.now += advance
            due = self.core.next_processing_time()
            if due is not None and due <= self.now:
                self.core.on_processing_time(self.now)
            self.core.on_element(key, ts, value)
            max_seen = ts if max_seen is None else max(max_seen, ts)
            wm = max_seen - self.spec.bound - 1
            if wm > self.core.watermark:
                self.core.on_watermark(wm)
        self.core.on_watermark(MAX_WATERMARK)
        self.drain()


def check(spec: Spec, stream: list[Event], general: bool, style: str, restart_at: Optional[int]) -> None:
    expected_firings, expected_late = Reference(spec).run(stream)
    harness = Harness(spec, general, style)
    harness.run(stream, restart_at)
    assert Counter(harness.late) == Counter(expected_late)
    assert Counter(harness.firings) == Counter(expected_firings)
    assert harness.core.state_size() == 0 or spec.trigger not in ("event", "purging_event")


@pytest.mark.parametrize("family", ["fixed", "sessions"])
@pytest.mark.parametrize("trigger", TRIGGERS)
@PROPERTY
@given(
    data=st.data(),
    stream=events(),
    general=st.booleans(),
    style=st.sampled_from(["aggregate", "process", "both"]),
)
def test_operator_matches_reference(
    trigger: str, family: str, data: st.DataObject, stream: list[Event], general: bool, style: str
) -> None:
    spec = data.draw(specs(trigger, family))
    check(spec, stream, general, style, None)


@PROPERTY
@given(spec=specs(), stream=events(), general=st.booleans(), data=st.data())
def test_snapshot_restore_mid_stream_matches_reference(
    spec: Spec, stream: list[Event], general: bool, data: st.DataObject
) -> None:
    restart_at = data.draw(st.integers(0, max(0, len(stream) - 1)))
    check(spec, stream, general, "aggregate", restart_at)


def run_sharded(
    spec: Spec, stream: list[Event], general: bool, shards: int, batch: int, deferred: bool = False
) -> list[Harness]:
    """Drive one core per shard as `operators.runtime.keyed` does: each element is
    stamped with the watermark before it and its shard advances to the stamp
    just before it (`advance_deferred` when `deferred`); every shard hears
    the batch's last watermark at the end of the batch, then flushes; both
    advances pass the batch's watermark values as steps. Event time only:
    the wiring runs processing-time timers between batches."""
    harnesses = [Harness(spec, general, "aggregate") for _ in range(shards)]
    wm = MIN_WATERMARK
    max_seen: Optional[int] = None
    steps = [wm]
    for i, (key, ts, value, _) in enumerate(stream):
        core = harnesses[ord(key) % shards].core
        if wm > core.watermark:
            (core.advance_deferred if deferred else core.advance)(wm, steps)
        core.on_element(key, ts, value)
        max_seen = ts if max_seen is None else max(max_seen, ts)
        if max_seen - spec.bound - 1 > wm:
            wm = max_seen - spec.bound - 1
            steps.append(wm)
        if (i + 1) % batch == 0 or i + 1 == len(stream):
            for h in harnesses:
                if wm > h.core.watermark:
                    h.core.advance(wm, steps)
                h.core.flush()
            steps = [wm]
    for h in harnesses:
        h.core.on_watermark(MAX_WATERMARK)
        h.drain()
    return harnesses


@pytest.mark.parametrize("family", ["fixed", "sessions"])
@PROPERTY
@given(data=st.data(), stream=events(), general=st.booleans(),
       shards=st.integers(1, 3), batch=st.sampled_from([1, 3, 10, 1000]), deferred=st.booleans())
def test_shards_fed_in_batches_report_flinks_watermark(
    family: str, data: st.DataObject, stream: list[Event], general: bool, shards: int, batch: int, deferred: bool
) -> None:
    """Firings, including the watermark they report, are the per-event
    reference's whatever the sharding and batching, with firings made at
    once or deferred to the end of the batch (`EventTimeLogic.advance`,
    `advance_deferred`)."""
    spec = data.draw(specs(data.draw(st.sampled_from(EVENT_TIME_TRIGGERS)), family))
    expected_firings, expected_late = Reference(spec).run(stream)
    harnesses = run_sharded(spec, stream, general, shards, batch, deferred)
    assert Counter(f for h in harnesses for f in h.firings) == Counter(expected_firings)
    assert Counter(x for h in harnesses for x in h.late) == Counter(expected_late)


def consumer_table(firings: list[tuple[Any, ...]]) -> list[tuple[str, int, int, Any]]:
    """What a consumer holds after applying every result in order: delete
    the latest row of each window in `supersedes` (it must exist), then write
    the result as a new row."""
    table: list[tuple[str, int, int, Any]] = []
    for key, start, end, value, supersedes, _ in firings:
        for s, e in supersedes:
            latest = max(i for i, row in enumerate(table) if row[:3] == (key, s, e))
            del table[latest]
        table.append((key, start, end, value))
    return table


@pytest.mark.parametrize("trigger", TRIGGERS)
@PROPERTY
@given(data=st.data(), stream=events(), general=st.booleans(), restart=st.booleans())
def test_a_consumer_applying_supersedes_holds_exactly_the_final_results(
    trigger: str, data: st.DataObject, stream: list[Event], general: bool, restart: bool
) -> None:
    """Deleting the superseded rows and writing each result leaves the final
    results: for every window the results of its contents since its last
    purge, merged sessions' results replaced by the merged one's. A result is
    a late update exactly when it replaces an earlier result of its key for a
    window inside its own, whose elements it holds."""
    spec = data.draw(specs(trigger))
    reference = Reference(spec)
    reference.run(stream)
    harness = Harness(spec, general, "aggregate")
    harness.run(stream, data.draw(st.integers(0, max(0, len(stream) - 1))) if restart else None)
    assert Counter(consumer_table(harness.firings)) == Counter(reference.final)
    for i, (key, start, end, value, supersedes, _) in enumerate(harness.firings):
        earlier_inside = [
            f for f in harness.firings[:i]
            if f[0] == key and start <= f[1] and f[2] <= end and set(f[3]) <= set(value)
        ]
        assert bool(supersedes) == bool(earlier_inside)
        assert all((s, e) in {(f[1], f[2]) for f in earlier_inside} for s, e in supersedes)
