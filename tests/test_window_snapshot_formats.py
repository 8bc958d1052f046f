"""Window snapshots written before results carried `supersedes` (format 1)
still restore.

`tests/snapshots/<engine>.c849cd2.pickle` were written by the window
operator of commit c849cd2 (main before issue 24): `make(name)` fed `BEFORE`
by `drive`, then `pickle.dumps((core.watermark, core.snapshot()))`. Resumed
from them, `AFTER` gives what an uninterrupted run of today's operator gives,
supersession included: late elements extend and merge sessions and windows
that fired before the snapshot, and sessions still open at the snapshot
re-open nothing. They name the operator's classes by their paths before
`operators/` was grouped into subpackages; they load, as a recovery store's
shards do, through `eventio.snapshots.loads`.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import pytest

from eventio import snapshots
from operators.time.eventtime import MAX_WATERMARK
from operators.windows.assigners import EventTimeSessionWindows, TumblingEventTimeWindows
from operators.windows.functions import Aggregate
from operators.windows.operator import WindowOperator
from operators.windows.triggers import EventTimeTrigger

SNAPSHOTS = Path(__file__).parent / "snapshots"
BOUND = 5
BEFORE = [
    ("a", 0, "a0"), ("b", 3, "b0"), ("a", 12, "a1"), ("c", 30, "c0"), ("b", 41, "b1"),
    ("a", 44, "a2"), ("c", 47, "c1"), ("a", 60, "a3"), ("b", 62, "b2"),
]
AFTER = [
    ("a", 20, "a4"), ("c", 38, "c2"), ("b", 50, "b3"), ("a", 66, "a5"), ("d", 40, "d0"),
    ("b", 75, "b4"), ("a", 10, "a6"), ("c", 5, "c-too-late"), ("b", 45, "b5"), ("a", 90, "a7"),
]


class GeneralEventTimeTrigger(EventTimeTrigger):
    """The default trigger under another type: runs the general engine."""


def make(name: str) -> WindowOperator[Any]:
    lateness = {"allowed_lateness_ms": 40, "aggregate": Aggregate.collect()}
    if name == "sessions":
        return WindowOperator(EventTimeSessionWindows.with_gap(10), **lateness)
    if name == "tumbling":
        return WindowOperator(TumblingEventTimeWindows(10), **lateness)
    return WindowOperator(EventTimeSessionWindows.with_gap(10), trigger=GeneralEventTimeTrigger(), **lateness)


def drive(core: WindowOperator[Any], events: list[tuple[str, int, str]]) -> list[tuple[Any, ...]]:
    """Feed events, the watermark `BOUND` behind the largest timestamp; the
    results and late elements emitted meanwhile."""
    for key, ts, value in events:
        core.on_element(key, ts, value)
        if ts - BOUND - 1 > core.watermark:
            core.on_watermark(ts - BOUND - 1)
    out = [(port, item[1]) for port, item in core.emitted]
    core.emitted = []
    return out


def resumed(name: str, saved: bytes) -> list[tuple[Any, ...]]:
    watermark, state = snapshots.loads(saved)
    core = make(name)
    core.restore(state)
    core.watermark = watermark
    out = drive(core, AFTER)
    core.on_watermark(MAX_WATERMARK)
    return out + [(port, item[1]) for port, item in core.emitted]


@pytest.mark.parametrize("name", ["sessions", "tumbling", "general-sessions"])
def test_a_format_1_snapshot_resumes_as_an_uninterrupted_run(name: str) -> None:
    old = (SNAPSHOTS / f"{name}.c849cd2.pickle").read_bytes()
    assert len(snapshots.loads(old)[1]) == 2  # (engine, state): format 1
    uninterrupted = make(name)
    drive(uninterrupted, BEFORE)
    expected = resumed(name, pickle.dumps((uninterrupted.watermark, uninterrupted.snapshot())))
    assert resumed(name, old) == expected
    assert any(port == "down" and r.is_late_update for port, r in expected)


@pytest.mark.parametrize("name", ["sessions", "general-sessions"])
def test_resumed_sessions_supersede_what_fired_before_the_snapshot(name: str) -> None:
    fired = [
        (r.key, tuple(r.window), r.supersedes)
        for port, r in resumed(name, (SNAPSHOTS / f"{name}.c849cd2.pickle").read_bytes())
        if port == "down"
    ]
    assert fired[:2] == [
        ("a", (12, 30), ((12, 22),)),  # a4 extends the fired [12, 22): fires at once
        ("c", (30, 57), ((30, 40), (47, 57))),  # c2 bridges two fired sessions
    ]
    assert ("d", (40, 50), ()) in fired  # a late first result replaces nothing
    assert ("b", (41, 60), ((41, 51),)) in fired  # b3 extends a fired session past the watermark


def test_every_moved_class_path_leads_somewhere() -> None:
    """Each earlier module path a snapshot may name maps to a module that
    exists, and each split-off name to a name its new module defines."""
    for new in snapshots.MOVED_MODULES.values():
        importlib.import_module(new)
    for module, name in snapshots.MOVED_NAMES.values():
        assert hasattr(importlib.import_module(module), name), (module, name)
