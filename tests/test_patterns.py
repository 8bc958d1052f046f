"""The Pattern API: immutability, conditions, and the build-time rules."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from operators.cep.nfa import NFA, compile_pattern
from operators.cep.patterns import Contiguity, IterativeCondition, Link, MalformedPatternError, Pattern, SkipStrategy


def matches(pattern: Pattern, events: list[Any]) -> list[dict[str, list[Any]]]:
    nfa = NFA(compile_pattern(pattern))
    st = None
    for i, e in enumerate(events):
        st = nfa.process(st, e, i, i)
    return nfa.matches


def test_appending_never_changes_the_receiver() -> None:
    a = Pattern.begin("a").where(lambda e: e == 1)
    b = a.next("b")
    c = a.followed_by("c").one_or_more()
    assert a.previous is None and a.quantifier.kind == "single"
    assert [p.name for p in b.sequence()] == ["a", "b"]
    assert [p.name for p in c.sequence()] == ["a", "c"]
    assert (b.link, c.link) == (Link.NEXT, Link.FOLLOWED_BY)


def test_where_ands_and_or_where_ors_everything_before() -> None:
    p = Pattern.begin("x").where(lambda e: e > 2).where(lambda e: e < 8).or_where(lambda e: e == 0)
    assert [m["x"][0] for m in matches(p, [0, 1, 2, 3, 7, 8, 9])] == [0, 3, 7]


def test_mixed_simple_and_iterative_conditions() -> None:
    rising = IterativeCondition(lambda e, ctx: all(e > prev for prev in ctx.events_for("x")))
    p = Pattern.begin("x").where(lambda e: e % 2 == 1).where(rising).one_or_more().consecutive()
    got = [m["x"] for m in matches(p, [1, 3, 5, 3])]
    assert got == [[1], [1, 3], [3], [1, 3, 5], [3, 5], [5], [3]]


def test_pattern_without_condition_accepts_every_event() -> None:
    assert len(matches(Pattern.begin("any"), ["a", None, 3])) == 3


def test_quantifier_shapes() -> None:
    q = Pattern.begin("a").times(0, 3).quantifier
    assert (q.kind, q.min_count, q.max_count, q.optional) == ("times", 1, 3, True)
    q = Pattern.begin("a").times_or_more(0).quantifier
    assert (q.kind, q.min_count, q.max_count, q.optional) == ("looping", 1, None, True)
    q = Pattern.begin("a").one_or_more().consecutive().greedy().quantifier
    assert (q.inner, q.greedy) == (Contiguity.STRICT, True)


def test_smallest_within_applies() -> None:
    p = Pattern.begin("a").within(50).next("b").within(20).followed_by("c")
    assert compile_pattern(p).window_ms == 20


def test_skip_strategy_is_given_at_begin_and_kept() -> None:
    p = Pattern.begin("a", SkipStrategy.skip_to_last("b")).next("b").one_or_more()
    assert compile_pattern(p).skip == SkipStrategy.skip_to_last("b")


A = Pattern.begin("a")

CALL_TIME_ERRORS: list[tuple[str, Callable[[], Any], str]] = [
    ("times zero", lambda: A.times(0), "n >= 1"),
    ("times reversed", lambda: A.times(3, 2), "m >= n"),
    ("two quantifiers", lambda: A.times(2).one_or_more(), "already applied"),
    ("quantifier after optional", lambda: A.optional().times(2), "already applied"),
    ("optional twice", lambda: A.optional().optional(), "optional already"),
    ("greedy singleton", lambda: A.greedy(), "singleton"),
    ("greedy with combinations", lambda: A.one_or_more().allow_combinations().greedy(), "allow_combinations"),
    ("consecutive singleton", lambda: A.consecutive(), "needs times"),
    ("consecutive and combinations", lambda: A.times(2).consecutive().allow_combinations(), "either"),
    ("until on times", lambda: A.times(2).until(lambda e: True), "looping"),
    ("until twice", lambda: A.one_or_more().until(lambda e: True).until(lambda e: True), "once"),
    ("optional NOT", lambda: A.not_next("n").optional(), "NOT pattern"),
    ("quantified NOT", lambda: A.not_followed_by("n").one_or_more(), "NOT pattern"),
    ("NOT after optional", lambda: A.next("b").optional().not_next("n"), "cannot follow the optional"),
    ("within zero", lambda: A.within(0), "positive"),
    ("condition not callable", lambda: A.where(42), "callable"),  # type: ignore[arg-type]
    ("or_where first", lambda: A.or_where(lambda e: True), "call where first"),
    ("empty name", lambda: Pattern.begin(""), "non-empty"),
    ("bad skip", lambda: Pattern.begin("a", "skip"), "SkipStrategy"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("what, build, message", CALL_TIME_ERRORS, ids=[c[0] for c in CALL_TIME_ERRORS])
def test_call_time_errors(what: str, build: Callable[[], Any], message: str) -> None:
    with pytest.raises(MalformedPatternError, match=message):
        build()


COMPILE_ERRORS: list[tuple[str, Pattern, str]] = [
    ("duplicate names", A.next("b").followed_by("a"), "unique"),
    ("not_followed_by last without within", A.not_followed_by("n"), "within"),
    ("all optional", Pattern.begin("a").optional().next("b").optional(), "not optional"),
    ("NOT before optional", A.not_next("n").next("b").optional(), "mandatory pattern"),
    ("greedy last", A.next("b").one_or_more().greedy(), "greedy"),
    ("greedy before optional", A.one_or_more().greedy().next("b").optional().next("c"), "greedy"),
    ("greedy before NOT", A.one_or_more().greedy().not_next("n").next("c"), "greedy"),
    ("skip to unknown", Pattern.begin("a", SkipStrategy.skip_to_first("zz")).next("b"), "not a pattern"),
]


@pytest.mark.parametrize("what, pattern, message", COMPILE_ERRORS, ids=[c[0] for c in COMPILE_ERRORS])
def test_compile_time_errors(what: str, pattern: Pattern, message: str) -> None:
    with pytest.raises(MalformedPatternError, match=message):
        compile_pattern(pattern)


def test_valid_sequences_with_not_patterns_compile() -> None:
    compile_pattern(A.not_next("n"))
    compile_pattern(A.not_followed_by("n").within(10))
    compile_pattern(A.not_followed_by("n").next("b").followed_by("c").optional())
    compile_pattern(A.one_or_more().greedy().followed_by("b"))
    compile_pattern(A.times(2, 4).optional().greedy().next("b"))
