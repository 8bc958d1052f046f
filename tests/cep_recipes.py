"""Random pattern descriptions for the CEP property tests.

A `Recipe` is plain data; `to_pattern` builds the engine's `Pattern` from it
and `to_spec` the reference's `RefSpec`, so both sides see the same pattern
without sharing code. Events are `(index, type, value)` tuples over a small
alphabet, so conditions often overlap and every rule gets exercised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from hypothesis import strategies as st

from operators.cep.patterns import IterativeCondition, Pattern, SkipStrategy
from tests.cep_reference import RefCond, RefPattern, RefSpec

TYPES = "abc"
Ev = tuple[int, str, int]


@dataclass(frozen=True)
class CondSpec:
    """Event type in `types`; if `rising`, value >= the last value already
    accepted for the pattern (an iterative condition)."""

    types: frozenset[str]
    rising: bool = False


@dataclass(frozen=True)
class StageSpec:
    name: str
    link: str
    cond: CondSpec
    quant: str = "single"  # single | times | range | loop
    lo: int = 1
    hi: Optional[int] = 1
    optional: bool = False
    greedy: bool = False
    inner: str = "relaxed"
    until: Optional[CondSpec] = None


@dataclass(frozen=True)
class Recipe:
    stages: tuple[StageSpec, ...]
    within: Optional[int] = None
    skip: str = "no_skip"
    skip_name: Optional[str] = None


conds = st.builds(
    CondSpec,
    st.frozensets(st.sampled_from(TYPES), min_size=1, max_size=2),
    st.booleans(),
)
simple_conds = st.builds(CondSpec, st.frozensets(st.sampled_from(TYPES), min_size=1, max_size=2))


@st.composite
def positive_stage(draw: Any, name: str, link: str) -> StageSpec:
    quant = draw(st.sampled_from(["single", "single", "times", "range", "loop"]))
    lo, hi = 1, 1
    if quant == "times":
        lo = hi = draw(st.integers(1, 2))
    elif quant == "range":
        lo = draw(st.integers(1, 2))
        hi = lo + draw(st.integers(1, 2))
    elif quant == "loop":
        lo, hi = draw(st.integers(1, 2)), None
    inner = "relaxed" if quant == "single" else draw(st.sampled_from(["relaxed", "strict", "any"]))
    until = draw(st.one_of(st.none(), simple_conds)) if quant == "loop" else None
    return StageSpec(
        name, link, draw(conds), quant, lo, hi,
        optional=draw(st.booleans()) and draw(st.booleans()),
        greedy=quant != "single" and inner != "any" and draw(st.booleans()),
        inner=inner,
        until=until,
    )


@st.composite
def recipes(draw: Any, max_positive: int = 3, nots: bool = True) -> Recipe:
    """A valid pattern sequence: positives with NOT patterns in between or at
    the end where the rules allow them."""
    count = draw(st.integers(1, max_positive))
    stages: list[StageSpec] = []
    for i in range(count):
        link = "begin" if i == 0 else draw(st.sampled_from(["next", "followed_by", "followed_by_any"]))
        stages.append(draw(positive_stage(f"p{i}", link)))
    if all(s.optional for s in stages):
        stages[0] = _replace(stages[0], optional=False)
    out: list[StageSpec] = []
    need_within = False
    for i, s in enumerate(stages):
        following = stages[i + 1] if i + 1 < count else None
        if s.greedy and (following is None or following.optional):
            s = _replace(s, greedy=False)
        out.append(s)
        can_not = nots and not s.optional and not s.greedy and (following is None or not following.optional)
        if can_not and draw(st.integers(0, 3)) == 0:
            link = draw(st.sampled_from(["not_next", "not_followed_by"]))
            out.append(StageSpec(f"n{i}", link, draw(simple_conds)))
            need_within = need_within or (following is None and link == "not_followed_by")
    within = draw(st.one_of(st.none(), st.integers(2, 10), st.integers(3, 12)))
    if need_within and within is None:
        within = draw(st.integers(2, 8))
    skip = draw(st.sampled_from(["no_skip", "no_skip", "no_skip", "skip_to_next", "skip_past_last_event", "skip_to_first", "skip_to_last"]))
    skip_name = draw(st.sampled_from([s.name for s in stages])) if skip in ("skip_to_first", "skip_to_last") else None
    return Recipe(tuple(out), within, skip, skip_name)


def _replace(s: StageSpec, **kw: Any) -> StageSpec:
    d = dict(s.__dict__)
    d.update(kw)
    return StageSpec(**d)


@st.composite
def event_lists(draw: Any, min_size: int = 3, max_size: int = 9) -> list[tuple[int, Ev]]:
    """(timestamp, event) in processing order; timestamps non-decreasing."""
    n = draw(st.integers(min_size, max_size))
    ts = 0
    out = []
    for i in range(n):
        ts += draw(st.integers(0, 3))
        out.append((ts, (i, draw(st.sampled_from(TYPES)), draw(st.integers(0, 2)))))
    return out


def _engine_cond(c: CondSpec, name: str) -> Any:
    types = c.types
    if not c.rising:
        return lambda e: e[1] in types

    def rising(e: Ev, ctx: Any) -> bool:
        before = ctx.events_for(name)
        return e[1] in types and (not before or e[2] >= before[-1][2])

    return IterativeCondition(rising)


def _ref_cond(c: CondSpec, name: str) -> RefCond:
    types, rising = c.types, c.rising

    def cond(e: Ev, ctx: dict[str, list[Any]]) -> bool:
        before = ctx.get(name, [])
        return e[1] in types and (not rising or not before or e[2] >= before[-1][2])

    return cond


def to_pattern(r: Recipe) -> Pattern:
    skip = {
        "no_skip": SkipStrategy.no_skip,
        "skip_to_next": SkipStrategy.skip_to_next,
        "skip_past_last_event": SkipStrategy.skip_past_last_event,
    }.get(r.skip)
    strategy = skip() if skip else getattr(SkipStrategy, r.skip)(r.skip_name)
    p: Optional[Pattern] = None
    for s in r.stages:
        p = Pattern.begin(s.name, strategy) if p is None else getattr(p, s.link)(s.name)
        p = p.where(_engine_cond(s.cond, s.name))
        if s.quant == "times":
            p = p.times(s.lo)
        elif s.quant == "range":
            p = p.times(s.lo, s.hi)
        elif s.quant == "loop":
            p = p.times_or_more(s.lo)
        if s.optional:
            p = p.optional()
        if s.inner == "strict":
            p = p.consecutive()
        elif s.inner == "any":
            p = p.allow_combinations()
        if s.greedy:
            p = p.greedy()
        if s.until is not None:
            p = p.until(_engine_cond(s.until, s.name))
    assert p is not None
    return p.within(r.within) if r.within is not None else p


def to_spec(r: Recipe) -> RefSpec:
    pats = tuple(
        RefPattern(
            s.name, s.link, _ref_cond(s.cond, s.name), s.lo, s.hi, s.optional, s.greedy, s.inner,
            None if s.until is None else _ref_cond(s.until, s.name),
        )
        for s in r.stages
    )
    return RefSpec(pats, r.within, r.skip, r.skip_name)


def canonical(match: dict[str, list[Ev]], names: list[str]) -> tuple[tuple[int, int], ...]:
    """A match dict as ((event index, pattern index), ...) in event order."""
    pairs = [(e[0], names.index(name)) for name, events in match.items() for e in events]
    return tuple(sorted(pairs))


def positive_names(r: Recipe) -> list[str]:
    return [s.name for s in r.stages if not s.link.startswith("not_")]


Describe = Callable[[Recipe], str]


def describe(r: Recipe) -> str:
    """A readable one-line form of a recipe, for failure messages."""
    parts = []
    for s in r.stages:
        q = {"single": "", "times": f"{{{s.lo}}}", "range": f"{{{s.lo},{s.hi}}}", "loop": f"{{{s.lo},}}"}[s.quant]
        flags = "".join(f for f, on in (("?", s.optional), ("!greedy", s.greedy)) if on)
        inner = "" if s.quant == "single" or s.inner == "relaxed" else f"[{s.inner}]"
        until = f" until {sorted(s.until.types)}" if s.until else ""
        cond = f"{sorted(s.cond.types)}{'+rising' if s.cond.rising else ''}"
        parts.append(f"{s.link}:{s.name}{cond}{q}{inner}{flags}{until}")
    return " ".join(parts) + f" within={r.within} skip={r.skip}({r.skip_name})"
