"""Compiles a `Pattern` into a small NFA and runs it for one key at a time.

Plain Python, no Bytewax. Concepts follow Flink's `NFACompiler`/`NFA`: each
partial match waits in a *transition* that, for the next event, may TAKE it
(extending the match), IGNORE it (keep waiting) or die; PROCEED (epsilon)
edges are resolved at compile time, so a partial match is split into one
waiting copy per possible next pattern as soon as it takes an event:

- `LOOP`: the next event continues the current looping/times pattern, under
  its inner contiguity and `until` condition (an event satisfying `until`
  ends the loop: it is neither taken nor skipped);
- `ENTER`: the next event is the first of a later pattern (optional patterns
  in between skipped), under that pattern's contiguity, the NOT patterns
  right after the last accepted event and the guard of a greedy pattern; an
  event satisfying the pattern's `until` is never taken, not even as its
  first (Flink's take condition `condition AND NOT until`), while skipping
  it follows the contiguity as for any event;
- `AWAIT`: the sequence ends with `not_next`: the next event completes the
  match unless it matches a NOT condition;
- `PENDING`: the sequence ends with `not_followed_by`: the match completes
  when `within` passes without a matching NOT event.

A partial match is a tuple `(transition, count, node, start_ts, start_seq,
fresh, guard_on)`. `node` is the last accepted event in a chain of immutable
tuples `(parent, stage, event, seq)` shared between branches: taking an event
costs one tuple, whatever the match length (Flink's shared buffer, with the
garbage collector doing the reference counting). `seq` is the processing
order of events, Flink's event id. Partial matches of a key are kept sorted
by start, so the earliest start is the first one.

Semantics, rule by rule, are documented in `tests/cep_reference.py`, which
checks them independently by enumeration.
"""

from __future__ import annotations

from dataclasses import dataclass
from heapq import heapify, heappop, heappush
from typing import Any, Callable, Mapping, Optional

from operators.cep.patterns import Condition, Contiguity, Link, MalformedPatternError, Pattern, SkipKind, SkipStrategy

LOOP, ENTER, AWAIT, PENDING = 0, 1, 2, 3
STRICT, RELAXED, ANY = 0, 1, 2

_CONTIGUITY = {Contiguity.STRICT: STRICT, Contiguity.RELAXED: RELAXED, Contiguity.NON_DETERMINISTIC: ANY}
_LINK_CONTIGUITY = {
    Link.BEGIN: RELAXED,
    Link.NEXT: STRICT,
    Link.FOLLOWED_BY: RELAXED,
    Link.FOLLOWED_BY_ANY: ANY,
}

Node = tuple  # (parent: Node | None, stage: int, event: Any, seq: int)
Partial = tuple  # (tid, count, node, start_ts, start_seq, fresh, guard_on)
Check = tuple[Callable[..., bool], bool]  # (condition, iterative)
Match = dict[str, list[Any]]


@dataclass(frozen=True)
class Stage:
    """One positive pattern, with the NOT patterns that directly follow it."""

    index: int
    name: str
    take: Check
    min_count: int
    max_count: Optional[int]
    optional: bool
    greedy: bool
    inner: int
    outer: int
    until: Optional[Check]
    next_nots: tuple[Check, ...]
    followed_nots: tuple[Check, ...]


class Transition:
    """What a waiting partial match does with the next event (see module doc)."""

    take: Callable[..., bool]
    until: Optional[Callable[..., bool]]
    stop: Optional[Callable[..., bool]]
    guard: Optional[Callable[..., bool]]
    guard_until: Optional[Callable[..., bool]]

    __slots__ = (
        "kind", "stage", "contiguity", "take", "take_iter", "until", "until_iter", "stop", "stop_iter",
        "guard", "guard_iter", "guard_until", "guard_until_iter", "next_nots", "followed_nots", "needs_ctx",
    )

    def __init__(
        self,
        kind: int,
        stage: int,
        contiguity: int = STRICT,
        take: Optional[Check] = None,
        until: Optional[Check] = None,
        stop: Optional[Check] = None,
        guard: Optional[Check] = None,
        guard_until: Optional[Check] = None,
        next_nots: tuple[Check, ...] = (),
        followed_nots: tuple[Check, ...] = (),
    ) -> None:
        self.kind = kind
        self.stage = stage
        self.contiguity = contiguity
        self.take, self.take_iter = take if take is not None else (_always, False)
        self.until, self.until_iter = _split(until)
        self.stop, self.stop_iter = _split(stop)
        """`until` kills a waiting loop; `stop` only keeps a first event out."""
        self.guard, self.guard_iter = _split(guard)
        self.guard_until, self.guard_until_iter = _split(guard_until)
        self.next_nots = next_nots
        self.followed_nots = followed_nots
        checks = [c for c in (take, until, stop, guard, guard_until) if c is not None]
        self.needs_ctx = any(it for _, it in checks + list(next_nots) + list(followed_nots))


@dataclass(frozen=True)
class CompiledPattern:
    """The NFA of one pattern sequence; configuration, never state."""

    stages: tuple[Stage, ...]
    window_ms: Optional[int]
    skip: SkipStrategy
    signature: str


def _split(check: Optional[Check]) -> tuple[Optional[Callable[..., bool]], bool]:
    return (None, False) if check is None else check


def _check(cond: Optional[Condition]) -> Check:
    if cond is None:
        return (_always, False)
    return (cond.compile(), cond.iterative)


def _always(event: Any) -> bool:
    return True


def compile_pattern(pattern: Pattern) -> CompiledPattern:
    """Validate the whole sequence (Flink's rules, plus ours) and compile it."""
    if not isinstance(pattern, Pattern):
        raise MalformedPatternError(f"expected a Pattern, got {pattern!r}")
    seq = pattern.sequence()
    names = [p.name for p in seq]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise MalformedPatternError(f"pattern names must be unique; repeated: {dupes}")
    skip = seq[0].skip
    if skip.pattern_name is not None and skip.pattern_name not in names:
        raise MalformedPatternError(
            f"the skip strategy names {skip.pattern_name!r}, which is not a pattern of the sequence"
        )
    windows = [p.window_ms for p in seq if p.window_ms is not None]
    window = min(windows) if windows else None
    if seq[-1].link is Link.NOT_FOLLOWED_BY and window is None:
        raise MalformedPatternError(
            "a sequence cannot end with not_followed_by unless within is set"
        )
    positives = [p for p in seq if not p.link.negative]
    if all(p.quantifier.optional for p in positives):
        raise MalformedPatternError("a sequence needs at least one pattern that is not optional")

    stages: list[Stage] = []
    for i, p in enumerate(seq):
        if p.link.negative:
            continue
        nots: list[Pattern] = []
        j = i + 1
        while j < len(seq) and seq[j].link.negative:
            nots.append(seq[j])
            j += 1
        following = seq[j] if j < len(seq) else None
        if nots and following is not None and following.quantifier.optional:
            raise MalformedPatternError(
                f"the NOT pattern {nots[-1].name!r} must be followed by a mandatory pattern "
                f"or end the sequence; {following.name!r} is optional"
            )
        q = p.quantifier
        if q.greedy and (nots or following is None or following.quantifier.optional):
            raise MalformedPatternError(
                f"the greedy pattern {p.name!r} must be directly followed by a mandatory pattern"
            )
        variable = q.max_count is None or q.max_count != q.min_count
        stages.append(
            Stage(
                index=len(stages),
                name=p.name,
                take=_check(p.condition),
                min_count=q.min_count,
                max_count=q.max_count,
                optional=q.optional,
                greedy=q.greedy and variable,
                inner=_CONTIGUITY[q.inner],
                outer=_LINK_CONTIGUITY[p.link],
                until=None if p.until_condition is None else _check(p.until_condition),
                next_nots=tuple(_check(n.condition) for n in nots if n.link is Link.NOT_NEXT),
                followed_nots=tuple(_check(n.condition) for n in nots if n.link is Link.NOT_FOLLOWED_BY),
            )
        )
    signature = "|".join(
        f"{p.name}:{p.link.value}:{p.quantifier.kind}:{p.quantifier.min_count}:{p.quantifier.max_count}:"
        f"{int(p.quantifier.optional)}{int(p.quantifier.greedy)}:{p.quantifier.inner.value}"
        for p in seq
    )
    return CompiledPattern(tuple(stages), window, skip, signature)


class KeyState:
    """The NFA state of one key: partial matches (sorted by start) and, under a
    skip strategy, completed matches held until no earlier partial match is
    pending (as Flink does)."""

    __slots__ = ("partials", "held")

    def __init__(self, partials: list[Partial], held: Optional[list[tuple[Any, ...]]] = None) -> None:
        self.partials = partials
        self.held = held

    def size(self) -> int:
        return len(self.partials) + (len(self.held) if self.held else 0)


class _Ctx:
    """The context an iterative condition sees: the partial match so far."""

    __slots__ = ("_node", "timestamp", "_names")

    def __init__(self, node: Optional[Node], timestamp: int, names: tuple[str, ...]) -> None:
        self._node = node
        self.timestamp = timestamp
        self._names = names

    def events_for(self, name: str) -> list[Any]:
        out = []
        names = self._names
        node = self._node
        while node is not None:
            if names[node[1]] == name:
                out.append(node[2])
            node = node[0]
        out.reverse()
        return out


def _holds(check: Callable[..., bool], iterative: bool, event: Any, ctx: Optional[_Ctx]) -> bool:
    return bool(check(event, ctx)) if iterative else bool(check(event))


def _any_holds(checks: tuple[Check, ...], event: Any, ctx: Optional[_Ctx]) -> bool:
    for fn, iterative in checks:
        if (fn(event, ctx) if iterative else fn(event)):
            return True
    return False


class NFA:
    """Runs a `CompiledPattern` over the events of one key at a time.

    `process` and `advance_time` take a key's `KeyState` (or None when the key
    has none) and return the new one (or None when nothing is pending).
    Results are appended to `matches` (match dicts) and `timed_out`
    (`(partial match dict, timeout timestamp)`); the caller drains both.
    """

    def __init__(self, compiled: CompiledPattern) -> None:
        self.compiled = compiled
        self.window = compiled.window_ms
        self.names = tuple(s.name for s in compiled.stages)
        self.matches: list[Match] = []
        self.timed_out: list[tuple[Match, int]] = []
        self.started = False
        self._stages = compiled.stages
        self._trans: list[Transition] = []
        self._loop_tid: dict[int, int] = {}
        self._enter_tid: dict[tuple[int, int], int] = {}
        self._end_tid: dict[int, int] = {}
        self._build_transitions()
        self._succ: list[list[tuple[bool, tuple[tuple[int, bool], ...]]]] = [
            [self._successors(k, c) for c in range(self._cap(k) + 1)] for k in range(len(self._stages))
        ]
        self._start = self._start_transitions()
        only = self._start[0] if len(self._start) == 1 else None
        self._simple_start = (
            only.take
            if only is not None and not only.take_iter and only.guard is None and only.stop is None
            else None
        )
        self._simple_start_stage = only.stage if only is not None else -1
        self._skip = compiled.skip.kind
        skip_name = compiled.skip.pattern_name
        self._skip_stage = self.names.index(skip_name) if skip_name in self.names else -1

    # ---- compilation into transitions ---------------------------------------

    def _build_transitions(self) -> None:
        stages = self._stages
        last = len(stages) - 1
        for s in stages:
            if s.max_count is None or s.max_count > 1:
                self._loop_tid[s.index] = self._add(
                    Transition(LOOP, s.index, s.inner, s.take, until=s.until)
                )
            if s.index == last:
                if s.followed_nots:
                    self._end_tid[s.index] = self._add(
                        Transition(PENDING, s.index, next_nots=s.next_nots, followed_nots=s.followed_nots)
                    )
                elif s.next_nots:
                    self._end_tid[s.index] = self._add(Transition(AWAIT, s.index, next_nots=s.next_nots))
                continue
            for m in self._reachable(s.index + 1):
                nots = s.next_nots, s.followed_nots
                self._enter_tid[(s.index, m)] = self._add(self._enter(m, *nots))

    def _enter(self, m: int, next_nots: tuple[Check, ...] = (), followed_nots: tuple[Check, ...] = ()) -> Transition:
        target = self._stages[m]
        guard_stage = self._stages[m - 1] if m > 0 and self._stages[m - 1].greedy else None
        return Transition(
            ENTER,
            m,
            target.outer,
            target.take,
            stop=target.until,
            guard=None if guard_stage is None else guard_stage.take,
            guard_until=None if guard_stage is None else guard_stage.until,
            next_nots=next_nots,
            followed_nots=followed_nots,
        )

    def _add(self, t: Transition) -> int:
        self._trans.append(t)
        return len(self._trans) - 1

    def _reachable(self, first: int) -> list[int]:
        """Stages whose first event may come next: `first` and, while they are
        optional, the ones after it."""
        out = []
        for m in range(first, len(self._stages)):
            out.append(m)
            if not self._stages[m].optional:
                break
        return out

    def _cap(self, k: int) -> int:
        s = self._stages[k]
        return s.max_count if s.max_count is not None else s.min_count

    def _successors(self, k: int, c: int) -> tuple[bool, tuple[tuple[int, bool], ...]]:
        """After stage `k` took its `c`-th event: (completes now?, waiting
        transitions with their initial guard flag)."""
        s = self._stages[k]
        out: list[tuple[int, bool]] = []
        final = False
        if c == 0:
            return False, ()
        if k in self._loop_tid and (s.max_count is None or c < s.max_count):
            out.append((self._loop_tid[k], False))
        if c >= s.min_count:
            if k in self._end_tid:
                out.append((self._end_tid[k], False))
            elif k == len(self._stages) - 1:
                final = True
            else:
                reach = self._reachable(k + 1)
                for m in reach:
                    tid = self._enter_tid[(k, m)]
                    out.append((tid, self._trans[tid].guard is not None))
                final = self._stages[reach[-1]].optional
        return final, tuple(out)

    def _start_transitions(self) -> list[Transition]:
        return [self._enter(m) for m in self._reachable(0)]

    # ---- running --------------------------------------------------------------

    def process(self, st: Optional[KeyState], event: Any, ts: int, seq: int) -> Optional[KeyState]:
        """Feed one event of the key (timestamp `ts`, processing order `seq`)."""
        simple = self._simple_start
        hit = simple is not None and simple(event)
        if st is None and simple is not None and not hit:
            self.started = False  # the common case: nothing pending, nothing starts
            return None
        window = self.window
        if st is not None and window is not None and st.partials and ts - st.partials[0][3] >= window:
            st = self.advance_time(st, ts, 2 * seq)
        new: list[Partial] = []
        done: list[Node] = []
        take = self._take
        if st is not None:
            trans = self._trans
            names = self.names
            for p in st.partials:
                tid, count, node, sts, sseq, fresh, guard_on = p
                t = trans[tid]
                kind = t.kind
                ctx = _Ctx(node, ts, names) if t.needs_ctx else None
                if kind == AWAIT:
                    if not _any_holds(t.next_nots, event, ctx):
                        done.append(node)
                    continue
                if kind == PENDING:
                    if fresh and t.next_nots and _any_holds(t.next_nots, event, ctx):
                        continue
                    if t.followed_nots and _any_holds(t.followed_nots, event, ctx):
                        continue
                    new.append((tid, count, node, sts, sseq, False, guard_on) if fresh else p)
                    continue
                if t.until is not None and _holds(t.until, t.until_iter, event, ctx):
                    continue
                if guard_on:
                    if fresh and t.guard_until is not None and _holds(t.guard_until, t.guard_until_iter, event, ctx):
                        guard_on = False
                    elif t.guard is not None and (t.guard(event, ctx) if t.guard_iter else t.guard(event)):
                        continue
                if fresh and t.next_nots and _any_holds(t.next_nots, event, ctx):
                    continue
                taken = t.take(event, ctx) if t.take_iter else t.take(event)
                if taken and (t.stop is None or not _holds(t.stop, t.stop_iter, event, ctx)):
                    take(t.stage, count + 1 if kind == LOOP else 1, node, event, seq, sts, sseq, new, done)
                contiguity = t.contiguity
                if contiguity == STRICT or (taken and contiguity == RELAXED):
                    continue
                if t.followed_nots and _any_holds(t.followed_nots, event, ctx):
                    continue
                if fresh or guard_on != p[6]:
                    p = (tid, count, node, sts, sseq, False, guard_on)
                new.append(p)
        self.started = hit
        if hit:
            take(self._simple_start_stage, 1, None, event, seq, ts, seq, new, done)
        elif simple is None:
            self._start_general(event, ts, seq, new, done)
        if done:
            if st is None:
                st = KeyState(new)
            else:
                st.partials = new
            self._complete(st, done, 2 * seq + 1)
            new = st.partials
        if st is None:
            return KeyState(new) if new else None
        st.partials = new
        if st.held:
            self._drain(st, False)
        return st if st.partials or st.held else None

    def _start_general(self, event: Any, ts: int, seq: int, new: list[Partial], done: list[Node]) -> None:
        ctx = _Ctx(None, ts, self.names)
        for t in self._start:
            if t.guard is not None:
                exempt = t.guard_until is not None and _holds(t.guard_until, t.guard_until_iter, event, ctx)
                if not exempt and _holds(t.guard, t.guard_iter, event, ctx):
                    continue
            if t.stop is not None and _holds(t.stop, t.stop_iter, event, ctx):
                continue
            if _holds(t.take, t.take_iter, event, ctx):
                self.started = True
                self._take(t.stage, 1, None, event, seq, ts, seq, new, done)

    def _take(
        self, k: int, c: int, parent: Optional[Node], event: Any, seq: int,
        sts: int, sseq: int, new: list[Partial], done: list[Node],
    ) -> None:
        node = (parent, k, event, seq)
        succ = self._succ[k]
        final, waits = succ[c] if c < len(succ) else succ[-1]
        for tid, guard in waits:
            new.append((tid, c, node, sts, sseq, True, guard))
        if final:
            done.append(node)

    def advance_time(self, st: KeyState, now: int, point: int) -> Optional[KeyState]:
        """Time out partial matches whose first event is `within` or more before
        `now`; pending not_followed_by matches complete instead. `point`
        orders completions for the skip strategy (see `process`)."""
        window = self.window
        partials = st.partials
        if window is None or not partials or now - partials[0][3] < window:
            return st
        cut = 0
        while cut < len(partials) and now - partials[cut][3] >= window:
            cut += 1
        expired, st.partials = partials[:cut], partials[cut:]
        trans = self._trans
        pending: list[Node] = []
        seen: set[int] = set()
        for p in expired:
            node = p[2]
            if trans[p[0]].kind == PENDING:
                pending.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                self.timed_out.append((self.materialize(node), p[3] + window))
        if pending:
            self._complete(st, pending, point)
        elif st.held:
            self._drain(st, False)
        return st if st.partials or st.held else None

    def flush(self, st: KeyState) -> Optional[KeyState]:
        """End of input: emit held matches even if earlier partial matches are
        still open (they can no longer complete)."""
        if st.held:
            self._drain(st, True)
        return st if st.partials or st.held else None

    # ---- completed matches and the after-match skip strategy -------------------

    def _complete(self, st: KeyState, nodes: list[Node], point: int) -> None:
        if self._skip is SkipKind.NO_SKIP:
            materialize = self.materialize
            self.matches.extend(materialize(n) for n in nodes)
            return
        held = st.held
        if held is None:
            held = st.held = []
        for node in nodes:
            key = self._order_key(node)
            heappush(held, (key[0][0], point, key, id(node), node))
        self._drain(st, False)

    @staticmethod
    def _order_key(node: Node) -> tuple[tuple[int, int], ...]:
        out = []
        while node is not None:
            out.append((node[3], node[1]))
            node = node[0]
        out.reverse()
        return tuple(out)

    def _drain(self, st: KeyState, force: bool) -> None:
        """Emit held matches in start order while no partial match started
        earlier, pruning by the skip strategy after each (Flink's order)."""
        held = st.held
        assert held is not None
        while held:
            start = held[0][0]
            if not force and st.partials and st.partials[0][4] < start:
                break
            entry = heappop(held)
            node = entry[4]
            self.matches.append(self.materialize(node))
            bound = self._prune_bound(entry[2])
            if bound is None:
                continue
            limit, inclusive = bound
            if inclusive:
                st.partials = [p for p in st.partials if p[4] > limit]
                held[:] = [h for h in held if h[0] > limit]
            else:
                st.partials = [p for p in st.partials if p[4] >= limit]
                held[:] = [h for h in held if h[0] >= limit]
            heapify(held)
        if not held:
            st.held = None

    def _prune_bound(self, key: tuple[tuple[int, int], ...]) -> Optional[tuple[int, bool]]:
        """(start seq limit, inclusive) of the partial matches a match discards."""
        kind = self._skip
        if kind is SkipKind.SKIP_TO_NEXT:
            return key[0][0], True
        if kind is SkipKind.SKIP_PAST_LAST_EVENT:
            return key[-1][0], True
        stage = self._skip_stage
        seqs = [seq for seq, s in key if s == stage]
        if not seqs:
            return None
        return (seqs[0] if kind is SkipKind.SKIP_TO_FIRST else seqs[-1]), False

    def materialize(self, node: Optional[Node]) -> Match:
        """The match dict (pattern name -> events, in order) ending at `node`."""
        chain = []
        while node is not None:
            chain.append(node)
            node = node[0]
        out: Match = {}
        names = self.names
        for n in reversed(chain):
            name = names[n[1]]
            events = out.get(name)
            if events is None:
                out[name] = [n[2]]
            else:
                events.append(n[2])
        return out


def export_states(states: Mapping[Any, KeyState]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """A picklable form of per-key states: shared chains become one flat node
    table (parents first), so deep chains never hit pickle's recursion limit."""
    index: dict[int, int] = {}
    table: list[tuple[Any, ...]] = []

    def ref(node: Optional[Node]) -> int:
        if node is None:
            return -1
        path = []
        n = node
        while n is not None and id(n) not in index:
            path.append(n)
            n = n[0]
        for m in reversed(path):
            index[id(m)] = len(table)
            table.append((-1 if m[0] is None else index[id(m[0])], m[1], m[2], m[3]))
        return index[id(node)]

    keys = []
    for key, st in states.items():
        partials = [(p[0], p[1], ref(p[2]), p[3], p[4], p[5], p[6]) for p in st.partials]
        held = None if not st.held else [(h[0], h[1], h[2], ref(h[4])) for h in st.held]
        keys.append((key, partials, held))
    return table, keys


def import_states(data: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]) -> dict[Any, KeyState]:
    """Inverse of `export_states`."""
    table, keys = data
    nodes: list[Node] = []
    for parent, stage, event, seq in table:
        nodes.append((None if parent < 0 else nodes[parent], stage, event, seq))
    states: dict[Any, KeyState] = {}
    for key, partials, held in keys:
        st = KeyState([(p[0], p[1], nodes[p[2]], p[3], p[4], p[5], p[6]) for p in partials])
        if held:
            st.held = [(h[0], h[1], h[2], id(nodes[h[3]]), nodes[h[3]]) for h in held]
            heapify(st.held)
        states[key] = st
    return states
