"""The Bytewax wiring of event-time operators: watermarks as Flink computes them.

A recording logic notes the watermark in force before each element; with one
input it must equal max(earlier timestamps) - bound - 1, whatever the number
of shards and the batch size, and the stream must end at MAX_WATERMARK.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.runtime.keyed import keyed_event_time
from operators.time.eventtime import BoundedOutOfOrderness, EventTimeLogic, MAX_WATERMARK, MIN_WATERMARK

BOUND = 5


class Recorder(EventTimeLogic[Any]):
    """Emits (element id, watermark before it); counts watermark advances."""

    def __init__(self) -> None:
        super().__init__()
        self.advances: list[int] = []

    def on_element(self, key: str, ts: int, value: Any, side: int = 0) -> None:
        self.emitted.append(("down", (value[1], side, self.watermark)))

    def on_watermark(self, wm: int) -> None:
        assert wm > self.watermark, "watermarks must strictly advance"
        self.watermark = wm
        if wm == MAX_WATERMARK:
            self.emitted.append(("end", wm))

    def snapshot(self) -> Any:
        return self.watermark

    def restore(self, state: Any) -> None:
        self.watermark = state


def _flow(inputs: list[list[tuple[str, int, int]]], shards: int, batch: int, **kw: Any) -> tuple[Dataflow, list[Any], list[Any]]:
    flow = Dataflow("wiring")
    streams = []
    for side, items in enumerate(inputs):
        src = op.input(f"in{side}", flow, TestingSource(items, batch_size=batch))
        streams.append(op.key_on(f"key{side}", src, lambda x: x[0]))
    outs = keyed_event_time(
        "op", streams, timestamp_of=lambda x: x[2], watermarks=lambda: BoundedOutOfOrderness(BOUND),
        logic=Recorder, ports=("down", "end"), shards=shards, **kw,
    )
    down: list[Any] = []
    ends: list[Any] = []
    op.output("down", outs["down"], TestingSink(down))
    op.output("end", outs["end"], TestingSink(ends))
    return flow, down, ends


events = st.lists(st.tuples(st.sampled_from("abcdefg"), st.integers(0, 60)), max_size=40)


@settings(max_examples=60)
@given(events, st.sampled_from([1, 3, 8]), st.sampled_from([1, 4, 100]))
def test_watermark_before_each_element_is_flinks(evs: list[tuple[str, int]], shards: int, batch: int) -> None:
    items = [(k, i, ts) for i, (k, ts) in enumerate(evs)]
    flow, down, ends = _flow([items], shards, batch)
    run_main(flow)
    expected = {}
    max_ts = None
    for key, i, ts in items:
        expected[i] = MIN_WATERMARK if max_ts is None else max_ts - BOUND - 1
        max_ts = ts if max_ts is None else max(max_ts, ts)
    assert {i: wm for i, _, wm in down} == expected
    assert len(down) == len(items)
    assert len(ends) == (shards if evs else 0)


@settings(max_examples=25)
@given(events, events)
def test_two_inputs_never_run_ahead_of_either_input(left: list[tuple[str, int]], right: list[tuple[str, int]]) -> None:
    inputs = [[(k, i, ts) for i, (k, ts) in enumerate(side)] for side in (left, right)]
    flow, down, _ = _flow(inputs, 4, 3)
    run_main(flow)
    assert len(down) == len(left) + len(right)
    for i, side, wm in down:
        own_before = [ts for _, j, ts in inputs[side] if j < i]
        if not own_before or not inputs[1 - side]:
            assert wm == MIN_WATERMARK
        else:
            assert wm <= max(own_before) - BOUND - 1


def test_partitions_hold_the_watermark_until_every_one_reports() -> None:
    """Channel 'fast' races ahead; 'slow' events must not be judged late."""
    fast = [("k", i, 1000 + i, "fast") for i in range(20)]
    slow = [("k", 100 + i, 10 + i, "slow") for i in range(5)]
    flow = Dataflow("partitions")
    src = op.input("in", flow, TestingSource(fast + slow, batch_size=2))
    keyed = op.key_on("key", src, lambda x: x[0])
    outs = keyed_event_time(
        "op", [keyed], timestamp_of=lambda x: x[2], watermarks=lambda: BoundedOutOfOrderness(0),
        logic=Recorder, ports=("down",), partition_of=lambda x: x[3], expected_channels=2,
    )
    down: list[Any] = []
    op.output("down", outs["down"], TestingSink(down))
    run_main(flow)
    seen = {i: wm for i, _, wm in down}
    assert all(seen[100 + i] < 10 + i for i in range(5))
    assert all(seen[i] == MIN_WATERMARK for i in range(20))


def test_two_workers_see_the_same_watermarks_on_in_order_input() -> None:
    items = [(f"k{i % 7}", i, i * 3) for i in range(200)]
    flow, down, _ = _flow([items], 8, 10)
    cluster_main(flow, [], 0, worker_count_per_proc=2)
    assert sorted(down) == sorted((i, 0, MIN_WATERMARK if i == 0 else (i - 1) * 3 - BOUND - 1) for _, i, _ in items)


def test_state_survives_an_abort_and_resume(tmp_path: Path) -> None:
    """Resume after a crash: every element is seen, watermarks never regress."""
    init_db_dir(tmp_path, 1)
    items: list[Any] = [(f"k{i % 5}", i, i) for i in range(100)]
    crashing = items[:60] + [TestingSource.ABORT()] + items[60:]
    recovery = RecoveryConfig(str(tmp_path))
    flow, first, _ = _flow([crashing], 4, 5)
    run_main(flow, epoch_interval=timedelta(0), recovery_config=recovery)
    flow, second, ends = _flow([crashing], 4, 5)
    run_main(flow, epoch_interval=timedelta(0), recovery_config=recovery)
    seen = {i for i, _, _ in first + second}
    assert seen == set(range(100))
    assert all(wm == (i - 1) - BOUND - 1 for i, _, wm in second if i > 0)
    assert ends
