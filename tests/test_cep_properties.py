"""The CEP operator core: event-time buffering, lateness, timeouts, recovery.

Random keyed streams arrive out of order within a bound, with the watermark
the wiring would compute (max timestamp - bound - 1) before each element.
Per key, the operator's matches and timed-out partial matches must equal the
reference's over that key's events in timestamp order (ties in arrival
order); out-of-order arrival must give the same result as in-order arrival;
a snapshot/restore at any point must not change the output. Example tests
cover the fraud pattern, late elements, processing time and failing
conditions.
"""

from __future__ import annotations

import pickle
from collections import defaultdict
from typing import Any, Callable, Optional

from hypothesis import example, given, note, settings
from hypothesis import strategies as st

from operators.cep.operator import CepOperator
from operators.cep.patterns import IterativeCondition, Pattern, SkipStrategy
from operators.time.eventtime import MAX_WATERMARK, MIN_WATERMARK
from tests.cep_recipes import TYPES, CondSpec, Recipe, StageSpec, canonical, describe, positive_names, recipes, to_pattern, to_spec
from tests.cep_reference import reference_matches, reference_timeouts

BOUND = 3
Arrival = tuple[str, int, Any]  # (key, ts, value)
Outputs = dict[str, list[Any]]


@st.composite
def keyed_streams(draw: Any, distinct_ts: bool = False) -> list[Arrival]:
    """Arrivals over keys x and y of (index, type, value) events: timestamps
    rise (strictly if `distinct_ts`), arrival order is shuffled by up to
    BOUND ms of jitter, so no element is late."""
    n = draw(st.integers(2, 12))
    ts = 0
    items = []
    for i in range(n):
        ts += draw(st.integers(1 if distinct_ts else 0, 3))
        event = (i, draw(st.sampled_from(TYPES)), draw(st.integers(0, 2)))
        items.append((ts + draw(st.integers(0, BOUND)), i, (draw(st.sampled_from("xy")), ts, event)))
    items.sort()
    return [item for _, _, item in items]


def drive(
    make: Callable[[], CepOperator], arrivals: list[Arrival], restore_at: Optional[int] = None
) -> tuple[CepOperator, Outputs]:
    """Feed arrivals with the wiring's watermark, advanced after every
    element as Flink's per-event watermark is, then MAX_WATERMARK. At
    `restore_at`, the state is snapshotted, pickled and restored into a new
    operator, as after a failure."""
    op = make()
    out: Outputs = defaultdict(list)
    max_ts: Optional[int] = None

    def drain() -> None:
        for port, item in op.emitted:
            out[port].append(item)
        op.emitted.clear()

    for i, (key, ts, value) in enumerate(arrivals):
        if i == restore_at:
            state = pickle.loads(pickle.dumps(op.snapshot()))
            op = make()
            op.restore(state)
        if max_ts is not None and max_ts - BOUND - 1 > op.watermark:
            op.on_watermark(max_ts - BOUND - 1)
        op.on_element(key, ts, value)
        max_ts = ts if max_ts is None else max(max_ts, ts)
        drain()
    if max_ts is not None and max_ts - BOUND - 1 > op.watermark:
        op.on_watermark(max_ts - BOUND - 1)
    op.on_watermark(MAX_WATERMARK)
    drain()
    return op, out


def per_key(arrivals: list[Arrival]) -> dict[str, list[tuple[int, Any]]]:
    """Each key's (ts, event) in processing order: timestamp, then arrival."""
    by_key: dict[str, list[tuple[int, int, Any]]] = defaultdict(list)
    for n, (key, ts, value) in enumerate(arrivals):
        by_key[key].append((ts, n, value))
    return {k: [(ts, v) for ts, _, v in sorted(evs)] for k, evs in by_key.items()}


def positions(items: list[tuple[str, dict[str, list[Any]]]], key: str, order: dict[int, int], names: list[str]) -> list[tuple[tuple[int, int], ...]]:
    """A key's matches as reference assignments (event position in key order)."""
    out = []
    for k, m in items:
        if k == key:
            out.append(tuple(sorted((order[i], s) for i, s in canonical(m, names))))
    return out


def check_against_reference(recipe: Recipe, arrivals: list[Arrival], out: Outputs) -> None:
    names = positive_names(recipe)
    spec = to_spec(recipe)
    assert out["late"] == [] and out["errors"] == []
    keys = per_key(arrivals)
    for key, events in keys.items():
        order = {ev[0]: pos for pos, (_, ev) in enumerate(events)}
        got = positions(out["down"], key, order, names)
        want = reference_matches(spec, events)
        if recipe.skip == "no_skip":
            assert sorted(got) == sorted(m for _, m in want)
            point = {m: p for p, m in want}
            assert [point[m] for m in got] == sorted(point[m] for m in got), "emitted out of completion order"
            timed = positions(out["timed_out"], key, order, names)
            assert sorted(timed) == sorted(m for _, m in reference_timeouts(spec, events))
        else:
            assert got == [m for _, m in want]
    assert not set(k for k, _ in out["down"]) - set(keys)


@settings(max_examples=600)
@given(recipes(), keyed_streams())
def test_operator_equals_reference_per_key(recipe: Recipe, arrivals: list[Arrival]) -> None:
    note(describe(recipe))
    _, out = drive(lambda: CepOperator(to_pattern(recipe)), arrivals)
    check_against_reference(recipe, arrivals, out)


@settings(max_examples=300)
@given(recipes(), keyed_streams(distinct_ts=True))
def test_out_of_order_arrival_matches_in_order(recipe: Recipe, arrivals: list[Arrival]) -> None:
    make = lambda: CepOperator(to_pattern(recipe))  # noqa: E731
    _, shuffled = drive(make, arrivals)
    _, ordered = drive(make, sorted(arrivals, key=lambda a: a[1]))
    for port in ("down", "timed_out"):
        for key in "xy":
            got = [m for k, m in shuffled[port] if k == key]
            want = [m for k, m in ordered[port] if k == key]
            assert sorted(map(repr, got)) == sorted(map(repr, want))
            if recipe.skip != "no_skip" and port == "down":
                assert got == want


@settings(max_examples=300)
@given(recipes(max_positive=2), keyed_streams(), st.data())
def test_snapshot_restore_anywhere_changes_nothing(recipe: Recipe, arrivals: list[Arrival], data: Any) -> None:
    make = lambda: CepOperator(to_pattern(recipe))  # noqa: E731
    cut = data.draw(st.integers(0, len(arrivals)))
    _, straight = drive(make, arrivals)
    _, resumed = drive(make, arrivals, restore_at=cut)
    assert {p: list(map(repr, v)) for p, v in resumed.items()} == {p: list(map(repr, v)) for p, v in straight.items()}


def drive_sharded(
    make: Callable[[], CepOperator], arrivals: list[Arrival], batch: int, stepped: bool = True
) -> dict[str, list[str]]:
    """As `drive`, but keys x and y in operators of their own, as two shards
    fed as `operators.runtime.keyed` feeds them: each advances to the watermark
    before its own elements and hears the latest watermark every `batch`
    arrivals, passing the values the batch went through (`advance`), or
    jumping over them unless `stepped`."""
    ops = {"x": make(), "y": make()}
    wm = MIN_WATERMARK
    steps = [wm]
    max_ts: Optional[int] = None

    def move(op: CepOperator) -> None:
        if wm > op.watermark:
            if stepped:
                op.advance(wm, steps)
            else:
                op.on_watermark(wm)

    for i, (key, ts, value) in enumerate(arrivals):
        move(ops[key])
        ops[key].on_element(key, ts, value)
        max_ts = ts if max_ts is None else max(max_ts, ts)
        if max_ts - BOUND - 1 > wm:
            wm = max_ts - BOUND - 1
            steps.append(wm)
        if (i + 1) % batch == 0 or i + 1 == len(arrivals):
            for other in ops.values():
                move(other)
            steps = [wm]
    out: dict[str, list[str]] = defaultdict(list)
    for op in ops.values():
        op.on_watermark(MAX_WATERMARK)
        for port, item in op.emitted:
            out[port].append(repr(item))
    return {port: sorted(items) for port, items in out.items()}


_A = CondSpec(frozenset({"a"}))
TRAILING_NOT_FOLLOWED_BY = Recipe(
    stages=(
        StageSpec("p0", "begin", _A, optional=True),
        StageSpec("p1", "next", _A),
        StageSpec("p2", "next", _A),
        StageSpec("n2", "not_followed_by", _A),
    ),
    within=3,
    skip="skip_past_last_event",
    skip_name=None,
)
"""Its match {p0, p1, p2} completes when the watermark reaches its window's
end and prunes partial matches that a watermark jumping past that end would
time out first."""
PATH_DEPENDENT = [("x", 0, (0, "a", 0)), ("x", 2, (1, "a", 0)), ("x", 2, (2, "a", 0)), ("y", 2, (3, "a", 0)),
                  ("y", 2, (4, "a", 0)), ("x", 5, (5, "a", 0)), ("x", 5, (6, "a", 0)), ("x", 7, (7, "a", 0)),
                  ("y", 10, (8, "a", 0))]


@settings(max_examples=300)
@given(recipes(), keyed_streams(), st.sampled_from([1, 2, 5, 100]))
@example(TRAILING_NOT_FOLLOWED_BY, PATH_DEPENDENT, 100)
def test_shards_stepped_along_the_batch_give_per_event_results(
    recipe: Recipe, arrivals: list[Arrival], batch: int
) -> None:
    """Matches and timeouts, with their timeout times, are those of a
    watermark after every element, however the keys are sharded and batched
    (the wiring steps CEP along the batch's watermark values)."""
    make = lambda: CepOperator(to_pattern(recipe), select_timed_out=lambda k, m, t: (m, t))  # noqa: E731
    _, per_event = drive(make, arrivals)
    want = {port: sorted(map(repr, items)) for port, items in per_event.items() if items}
    assert drive_sharded(make, arrivals, batch) == want


def test_a_watermark_jumping_past_a_pending_match_changes_what_times_out() -> None:
    """Why CEP cannot jump: at the end of the example's one batch the x
    shard stands at watermark 1 and the watermark at 6; stepping through 3
    completes {0, 1, 2} first and its skip strategy prunes the partial
    matches started at ts 2, while a jump straight to 6 times them out."""
    make = lambda: CepOperator(to_pattern(TRAILING_NOT_FOLLOWED_BY), select_timed_out=lambda k, m, t: (m, t))  # noqa: E731
    stepped = drive_sharded(make, PATH_DEPENDENT, 100)
    jumped = drive_sharded(make, PATH_DEPENDENT, 100, stepped=False)
    pruned = "('x', ({'p0': [(2, 'a', 0)]}, 5))"
    assert pruned not in stepped["timed_out"]
    assert pruned in jumped["timed_out"]


# ---- example tests ---------------------------------------------------------------

MIN = 60_000


class Ev:
    """A small event for the fraud example, enriched with `new_location`."""

    __slots__ = ("id", "user", "kind", "ts", "location", "failed", "amount", "new_location")

    def __init__(self, id: str, user: str, kind: str, ts: int, location: str = "home", failed: int = 0, amount: float = 0.0) -> None:
        self.id, self.user, self.kind, self.ts = id, user, kind, ts
        self.location, self.failed, self.amount = location, failed, amount
        self.new_location = False

    def __repr__(self) -> str:
        return self.id


def mark_new_locations(events: list[Ev]) -> list[Ev]:
    """Flag events whose location the user never had in an earlier event.
    The CEP condition only sees the partial match, so history beyond it is
    computed upstream, as one would with a keyed process function in Flink."""
    seen: dict[str, set[str]] = defaultdict(set)
    for e in sorted(events, key=lambda e: e.ts):
        e.new_location = bool(seen[e.user]) and e.location not in seen[e.user]
        seen[e.user].add(e.location)
    return events


FRAUD = (
    Pattern.begin("login").where(lambda e: e.kind == "login" and (e.new_location or e.failed > 0))
    .next("tx").where(lambda e: e.kind == "transaction" and e.amount > 10_000)
    .within(10 * MIN)
)


def test_fraud_pattern_raises_exactly_the_planted_alerts() -> None:
    t = 1_000_000
    stream = mark_new_locations([
        Ev("u1-home", "u1", "login", t),
        Ev("u1-small", "u1", "transaction", t + 1 * MIN, amount=50),
        Ev("u1-paris", "u1", "login", t + 2 * MIN, location="paris"),
        Ev("u1-big", "u1", "transaction", t + 5 * MIN, location="paris", amount=12_000),  # alert 1
        Ev("u2-home", "u2", "login", t),
        Ev("u2-failed", "u2", "login", t + 1 * MIN, failed=3),
        Ev("u2-view", "u2", "page_view", t + 2 * MIN),  # breaks strict contiguity
        Ev("u2-big", "u2", "transaction", t + 3 * MIN, amount=20_000),
        Ev("u3-home", "u3", "login", t),
        Ev("u3-tokyo", "u3", "login", t + 1 * MIN, location="tokyo"),
        Ev("u3-late-big", "u3", "transaction", t + 11 * MIN, location="tokyo", amount=30_000),  # too late
        Ev("u4-home", "u4", "login", t),
        Ev("u4-failed", "u4", "login", t + 20 * MIN, failed=1),
        Ev("u4-big", "u4", "transaction", t + 29 * MIN, amount=10_001),  # alert 2
        Ev("u5-home", "u5", "login", t),
        Ev("u5-failed", "u5", "login", t + 1 * MIN, failed=2),
        Ev("u5-exact", "u5", "transaction", t + 2 * MIN, amount=10_000),  # not over 10,000
    ])
    arrivals = [(e.user, e.ts, e) for e in sorted(stream, key=lambda e: (e.ts, e.id))]
    _, out = drive(lambda: CepOperator(FRAUD, select=lambda k, m: (m["login"][0].id, m["tx"][0].id)), arrivals)
    assert sorted(out["down"]) == [("u1", ("u1-paris", "u1-big")), ("u4", ("u4-failed", "u4-big"))]
    assert sorted((k, m["login"][0].id) for k, m in out["timed_out"]) == [("u3", "u3-tokyo")]
    assert out["late"] == [] and out["errors"] == []


def test_fraud_state_stays_bounded_on_a_long_stream() -> None:
    """Partial matches die at the next event or time out: state is bounded
    by the keys with a suspicious login pending, not by the stream length."""
    op = CepOperator(FRAUD)
    sizes = []
    for i in range(20_000):
        user = f"u{i % 500}"
        ts = i * 1_000
        e = Ev(str(i), user, "login" if i % 3 else "transaction", ts, failed=int(i % 7 == 0), amount=float(i % 20_000))
        op.on_element(user, ts, e)
        op.on_watermark(ts - 1)
        op.emitted.clear()
        if i % 2_000 == 0:
            sizes.append(op.state_size())
    assert max(sizes) < 600, sizes
    assert len(op.timers) < 1_500


def test_late_elements_go_to_the_late_port_and_never_match() -> None:
    op = CepOperator(Pattern.begin("a").where(lambda e: e == "a").next("b").where(lambda e: e == "b"))
    op.on_element("k", 10, "a")
    op.on_watermark(10)
    op.on_element("k", 10, "b")  # ts <= watermark: late, as in Flink
    op.on_element("k", 11, "b")
    op.on_watermark(MAX_WATERMARK)
    assert op.emitted == [("late", ("k", "b")), ("down", ("k", {"a": ["a"], "b": ["b"]}))]


def test_equal_timestamps_keep_arrival_order() -> None:
    op = CepOperator(Pattern.begin("a").where(lambda e: e == "a").next("b").where(lambda e: e == "b"))
    for v in ["b", "a", "b"]:
        op.on_element("k", 5, v)
    op.on_watermark(MAX_WATERMARK)
    assert op.emitted == [("down", ("k", {"a": ["a"], "b": ["b"]}))]


def test_failing_condition_goes_to_errors_and_leaves_state_intact() -> None:
    p = Pattern.begin("a").where(lambda e: e["t"] == "a").followed_by("b").where(lambda e: e["t"] == "b")
    op = CepOperator(p)
    for ts, v in [(1, {"t": "a"}), (2, "not a dict"), (3, {"t": "b"})]:
        op.on_element("k", ts, v)
    op.on_watermark(MAX_WATERMARK)
    ports = [port for port, _ in op.emitted]
    assert ports == ["errors", "down"]
    assert op.emitted[1][1] == ("k", {"a": [{"t": "a"}], "b": [{"t": "b"}]})


def test_failing_condition_after_a_timeout_drops_the_emptied_key() -> None:
    """The timeout before the element empties the key; the start condition
    then raises: the timeout is still reported and the key is gone."""
    start = IterativeCondition(lambda e, ctx: e["t"] == "a")
    p = Pattern.begin("a").where(start).followed_by("b").where(lambda e: e["t"] == "b").within(5)
    op = CepOperator(p)
    op.on_element("k", 1, {"t": "a"})
    op.on_element("k", 10, "not a dict")
    op.on_watermark(MAX_WATERMARK)
    assert sorted(port for port, _ in op.emitted) == ["errors", "timed_out"]
    assert op.states == {}


def test_failing_select_goes_to_errors() -> None:
    op = CepOperator(Pattern.begin("a"), select=lambda k, m: 1 / 0)
    op.on_element("k", 1, "x")
    op.on_watermark(MAX_WATERMARK)
    assert [port for port, _ in op.emitted] == ["errors"]


def test_processing_time_uses_the_clock_and_timers() -> None:
    now = [0]
    p = (
        Pattern.begin("a").where(lambda e: e == "a")
        .followed_by("b").where(lambda e: e == "b").within(100)
    )
    op = CepOperator(p, processing_time=True, clock=lambda: now[0], select_timed_out=lambda k, m, t: (m, t))
    op.on_element("k", 999_999, "a")  # event timestamps are ignored
    now[0] = 50
    op.on_element("k", 0, "a")
    now[0] = 99
    op.on_element("k", 0, "b")
    assert [port for port, _ in op.emitted] == ["down", "down"]
    op.emitted.clear()
    now[0] = 120
    op.on_element("k", 0, "a")
    assert op.next_processing_time() == 220
    op.on_processing_time(219)
    assert op.emitted == []
    op.on_processing_time(220)
    assert op.emitted == [("timed_out", ("k", ({"a": ["a"]}, 220)))]
    assert op.next_processing_time() is None and op.state_size() == 0


def test_iterative_condition_with_skip_strategy_through_the_operator() -> None:
    rising = IterativeCondition(lambda e, ctx: all(e > p for p in ctx.events_for("up")))
    p = Pattern.begin("up", SkipStrategy.skip_past_last_event()).where(rising).times(3).consecutive()
    op = CepOperator(p)
    for ts, v in enumerate([1, 2, 3, 4, 5, 6, 7, 1, 2, 9]):
        op.on_element("k", ts + 1, v)
    op.on_watermark(MAX_WATERMARK)
    assert [m["up"] for _, (_, m) in op.emitted] == [[1, 2, 3], [4, 5, 6], [1, 2, 9]]


def test_event_time_timeout_fires_when_the_watermark_reaches_the_deadline() -> None:
    p = Pattern.begin("a").where(lambda e: e == "a").followed_by("b").where(lambda e: e == "b").within(10)
    op = CepOperator(p)
    op.on_element("k", 5, "a")
    op.on_element("other", 6, "x")
    op.on_watermark(14)
    assert op.emitted == [] and op.state_size() == 1
    op.on_watermark(15)
    assert op.emitted == [("timed_out", ("k", {"a": ["a"]}))]
    assert op.state_size() == 0 and op.states == {}
