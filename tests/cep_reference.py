"""Brute-force reference for CEP matching on one key's ordered events.

Written from Flink CEP's documented semantics, independently of
`operators/cep/nfa.py` (no shared code, its own pattern description): it
enumerates every candidate assignment of events to patterns and keeps those
that satisfy the rules below, then applies the after-match skip strategy.

The rules (events are numbered 0..n-1 in processing order; a match assigns an
increasing subsequence of them to the positive patterns in order; "ctx" of an
event is the match's events before it):

1. Quantifiers: a pattern gets 0 events only if optional, else lo..hi events.
2. Conditions: every assigned event satisfies its pattern's condition (ctx).
3. Contiguity between consecutive assigned events p < q, q in pattern P: the
   pattern's link contiguity if q is P's first event, else P's inner
   contiguity. Strict: q = p + 1. Relaxed: no event strictly between satisfies
   P's condition ("skip non-matching events"). Non-deterministic: anything.
4. `until` U of a looping pattern: no event of the pattern satisfies U, its
   first included (Flink takes an event into the loop only under `condition
   AND NOT U`), and no event between two of its events does (U ends the
   loop). Events before its first event are skipped by rule 3 alone.
5. Greedy pattern G followed by pattern P: with p the match's event before P's
   first event f (or none, when the match starts at f), no event in (p, f]
   satisfies G's condition, unless the first of those events satisfies G's
   until condition (an event the loop could take is never left to P).
6. NOT patterns after pattern P (P's last event l, next matched event f):
   `not_next` N: event l + 1 does not satisfy N; `not_followed_by` N: no event
   strictly between l and f satisfies N.
7. `within` W: the match completes before its first event's timestamp + W.
   Completion: at its last event; with trailing `not_next`, at the event after
   the last one, which must exist and pass; with trailing `not_followed_by`,
   when time reaches first + W (an event at that timestamp or the end of
   input), no event before that time having matched a NOT condition.
8. Skip strategies (Flink's order): matches sorted by (first event,
   completion, events); each match is emitted unless an earlier emitted match
   discards it: skip_to_next discards those starting at or before its first
   event, skip_past_last_event at or before its last event, skip_to_first(n) /
   skip_to_last(n) those starting before its first / last event of n.
9. Timeouts (with `within`): at the first event whose timestamp reaches
   first + W, or at the end of input, every partial match still able to grow
   is reported once: a valid prefix whose gap since its last event does not
   rule out every way to continue (rules 3-6 applied to the gap events).

Deliberate choices where Flink's documentation is silent are the ones listed
in the CEP section of the README; the engine follows the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Callable, Optional

RefCond = Callable[[Any, dict[str, list[Any]]], bool]  # (payload, ctx) -> bool


@dataclass(frozen=True)
class RefPattern:
    """One pattern: `link` is begin/next/followed_by/followed_by_any/not_next/not_followed_by;
    `inner` is strict/relaxed/any; `hi` None means unbounded."""

    name: str
    link: str
    cond: RefCond
    lo: int = 1
    hi: Optional[int] = 1
    optional: bool = False
    greedy: bool = False
    inner: str = "relaxed"
    until: Optional[RefCond] = None


@dataclass(frozen=True)
class RefSpec:
    patterns: tuple[RefPattern, ...]
    within: Optional[int] = None
    skip: str = "no_skip"
    skip_name: Optional[str] = None


Assignment = tuple[tuple[int, int], ...]  # ((event index, positive pattern index), ...)


@dataclass
class _Seq:
    positives: list[RefPattern]
    nexts: list[list[RefCond]] = field(default_factory=list)  # not_next after each positive
    follows: list[list[RefCond]] = field(default_factory=list)  # not_followed_by after each


def _split(spec: RefSpec) -> _Seq:
    seq = _Seq([])
    for p in spec.patterns:
        if p.link in ("not_next", "not_followed_by"):
            (seq.nexts if p.link == "not_next" else seq.follows)[-1].append(p.cond)
        else:
            seq.positives.append(p)
            seq.nexts.append([])
            seq.follows.append([])
    return seq


def _ctx(events: list[tuple[int, Any]], assignment: Assignment, before: int, seq: _Seq) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for idx, stage in assignment:
        if idx < before:
            out.setdefault(seq.positives[stage].name, []).append(events[idx][1])
    return out


def _contiguity(p: RefPattern, first: bool) -> str:
    if not first:
        return p.inner
    return {"begin": "relaxed", "next": "strict", "followed_by": "relaxed", "followed_by_any": "any"}[p.link]


def _effective_greedy(p: RefPattern) -> bool:
    return p.greedy and (p.hi is None or p.hi != p.lo)


def _candidates(n: int, seq: _Seq, complete: bool) -> list[Assignment]:
    """Every increasing assignment respecting the counts (prefixes if not complete)."""
    k = len(seq.positives)
    out: list[Assignment] = []
    for size in range(1, n + 1):
        for idxs in combinations(range(n), size):
            labels: list[list[int]] = [[]]
            for _ in idxs:
                labels = [l + [s] for l in labels for s in range(l[-1] if l else 0, k)]
            for lab in labels:
                counts = [lab.count(s) for s in range(k)]
                last = lab[-1]
                ok = True
                for s, p in enumerate(seq.positives):
                    c = counts[s]
                    if p.hi is not None and c > p.hi:
                        ok = False
                    elif complete or s < last:
                        if (c == 0 and not p.optional) or (0 < c < p.lo):
                            ok = False
                    if not ok:
                        break
                if ok:
                    out.append(tuple(zip(idxs, lab, strict=True)))
    return out


def _valid(events: list[tuple[int, Any]], a: Assignment, seq: _Seq) -> bool:
    """Rules 2-6 among the assignment's own events."""
    pos = seq.positives
    for i, (idx, stage) in enumerate(a):
        p = pos[stage]
        ctx = _ctx(events, a, idx, seq)
        if not p.cond(events[idx][1], ctx):
            return False
        first_of_stage = i == 0 or a[i - 1][1] != stage
        prev = a[i - 1][0] if i > 0 else None
        if prev is not None:
            kind = _contiguity(p, first_of_stage)
            if kind == "strict" and idx != prev + 1:
                return False
            if kind == "relaxed" and any(p.cond(events[y][1], ctx) for y in range(prev + 1, idx)):
                return False
            if not first_of_stage and p.until is not None:
                if any(p.until(events[y][1], ctx) for y in range(prev + 1, idx + 1)):
                    return False
        if first_of_stage and p.until is not None and p.until(events[idx][1], ctx):
            return False
        if first_of_stage and stage > 0 and _effective_greedy(pos[stage - 1]):
            g = pos[stage - 1]
            gap = range(prev + 1, idx + 1) if prev is not None else range(idx, idx + 1)
            exempt = g.until is not None and g.until(events[gap[0]][1], ctx)
            if not exempt and any(g.cond(events[y][1], ctx) for y in gap):
                return False
        if first_of_stage and prev is not None:
            left = a[i - 1][1]
            nctx = _ctx(events, a, prev + 1, seq)
            if any(n(events[prev + 1][1], nctx) for n in seq.nexts[left]):
                return False
            if any(n(events[y][1], nctx) for n in seq.follows[left] for y in range(prev + 1, idx)):
                return False
    return True


def _completion(events: list[tuple[int, Any]], a: Assignment, seq: _Seq, within: Optional[int]) -> Optional[int]:
    """Rule 7: the completion point (2*i+1 at event i, 2*i just before event
    i, 2*n at the end of input), or None if the match never completes."""
    n = len(events)
    first, last = a[0][0], a[-1][0]
    ts0 = events[first][0]
    if within is not None and events[last][0] - ts0 >= within:
        return None
    stage = a[-1][1]
    nexts, follows = seq.nexts[stage], seq.follows[stage]
    ctx = _ctx(events, a, n, seq)
    if follows:
        assert within is not None
        deadline = ts0 + within
        after = [y for y in range(last + 1, n) if events[y][0] < deadline]
        if after and any(nc(events[after[0]][1], ctx) for nc in nexts):
            return None
        if any(f(events[y][1], ctx) for f in follows for y in after):
            return None
        end = next((y for y in range(last + 1, n) if events[y][0] >= deadline), n)
        return 2 * end
    if nexts:
        x = last + 1
        if x >= n or (within is not None and events[x][0] - ts0 >= within):
            return None
        if any(nc(events[x][1], ctx) for nc in nexts):
            return None
        return 2 * x + 1
    return 2 * last + 1


def reference_matches(spec: RefSpec, events: list[tuple[int, Any]]) -> list[tuple[int, Assignment]]:
    """All matches as (completion point, assignment), in emission order for
    the spec's skip strategy (for no_skip: completion order, ties by events)."""
    seq = _split(spec)
    found = []
    for a in _candidates(len(events), seq, complete=True):
        if _valid(events, a, seq):
            point = _completion(events, a, seq, spec.within)
            if point is not None:
                found.append((point, a))
    if spec.skip == "no_skip":
        return sorted(found)
    found.sort(key=lambda pa: (pa[1][0][0], pa[0], pa[1]))
    names = [p.name for p in seq.positives]
    emitted: list[tuple[int, Assignment]] = []
    for point, a in found:
        start = a[0][0]
        if any(_discards(spec, names, prev, start) for _, prev in emitted):
            continue
        emitted.append((point, a))
    return emitted


def _discards(spec: RefSpec, names: list[str], m: Assignment, start: int) -> bool:
    if spec.skip == "skip_to_next":
        return start <= m[0][0]
    if spec.skip == "skip_past_last_event":
        return start <= m[-1][0]
    named = [idx for idx, s in m if names[s] == spec.skip_name]
    if not named:
        return False
    return start < (named[0] if spec.skip == "skip_to_first" else named[-1])


def reference_timeouts(spec: RefSpec, events: list[tuple[int, Any]]) -> list[tuple[int, Assignment]]:
    """Rule 9 (no_skip): (timeout point, partial assignment), sorted."""
    if spec.within is None:
        return []
    seq = _split(spec)
    n = len(events)
    out = []
    for a in _candidates(n, seq, complete=False):
        first, last = a[0][0], a[-1][0]
        deadline = events[first][0] + spec.within
        if events[last][0] >= deadline or not _valid(events, a, seq):
            continue
        end = next((y for y in range(last + 1, n) if events[y][0] >= deadline), n)
        gap = [events[y][1] for y in range(last + 1, end)]
        if _can_continue(a, gap, seq, _ctx(events, a, n, seq)):
            out.append((2 * end, a))
    return sorted(out)


def _can_continue(a: Assignment, gap: list[Any], seq: _Seq, ctx: dict[str, list[Any]]) -> bool:
    pos = seq.positives
    j = a[-1][1]
    p = pos[j]
    c = sum(1 for _, s in a if s == j)
    if p.hi is None or c < p.hi:
        blocked = p.until is not None and any(p.until(e, ctx) for e in gap)
        if not blocked and _gap_allows(p.inner, p.cond, gap, ctx):
            return True
    if c < p.lo:
        return False
    if j == len(pos) - 1:
        return bool(seq.nexts[j]) and not seq.follows[j] and not gap
    k = j + 1
    while k < len(pos):
        target = pos[k]
        ok = _gap_allows(_contiguity(target, True), target.cond, gap, ctx)
        if ok and gap and any(nc(gap[0], ctx) for nc in seq.nexts[j]):
            ok = False
        if ok and any(f(e, ctx) for f in seq.follows[j] for e in gap):
            ok = False
        g = pos[k - 1]
        if ok and gap and _effective_greedy(g):
            exempt = g.until is not None and g.until(gap[0], ctx)
            if not exempt and any(g.cond(e, ctx) for e in gap):
                ok = False
        if ok:
            return True
        if not target.optional:
            break
        k += 1
    return False


def _gap_allows(kind: str, cond: RefCond, gap: list[Any], ctx: dict[str, list[Any]]) -> bool:
    if kind == "strict":
        return not gap
    if kind == "relaxed":
        return not any(cond(e, ctx) for e in gap)
    return True
