"""Pattern API for complex event processing, in the shape of Flink CEP's `Pattern`.

A pattern sequence is built from `Pattern.begin(name)` and then one call per
appended pattern, each returning a new immutable `Pattern` (the receiver is
never changed, so partial sequences can be shared and extended safely):

    login_then_big_tx = (
        Pattern.begin("login").where(lambda e: e.event_type == "login")
        .next("tx").where(lambda e: e.event_type == "transaction" and e.amount > 10_000)
        .within(10 * 60_000)
    )

Contiguity between patterns: `next` (strict), `followed_by` (relaxed),
`followed_by_any` (non-deterministic relaxed), `not_next` and
`not_followed_by` (negative patterns). Quantifiers apply to the last pattern:
`times(n)`, `times(n, m)`, `one_or_more()`, `times_or_more(n)`, `optional()`,
`greedy()`, `consecutive()`, `allow_combinations()`, `until(cond)`.

Conditions. `where(cond)`, `or_where(cond)` and `until(cond)` take either a
*simple* condition, a plain callable `cond(event) -> bool`, or an *iterative*
condition wrapped in `IterativeCondition(fn)` where `fn(event, ctx) -> bool`
and `ctx.events_for(name)` lists the events already accepted for pattern
`name` in the partial match being extended (`ctx.timestamp` is the current
event's timestamp). The wrapper, not signature inspection, decides the calling
convention: it is explicit, costs nothing per event and works for any callable.
Several `where` calls are ANDed; `or_where` ORs with everything before it.

Rules Flink checks when a method is called are checked here at the same
moment; rules about the whole sequence are checked when the sequence is
compiled (`operators.cep.nfa.compile_pattern`). Both raise `MalformedPatternError`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Optional, Protocol, Union


class MalformedPatternError(ValueError):
    """A pattern sequence that Flink CEP would reject (or that we reject)."""


class Contiguity(Enum):
    """How events between two accepted events are treated."""

    STRICT = "strict"  # no event in between
    RELAXED = "relaxed"  # skip events that do not match
    NON_DETERMINISTIC = "non_deterministic"  # skip any event, branching


class Link(Enum):
    """How a pattern is attached to the one before it."""

    BEGIN = "begin"
    NEXT = "next"
    FOLLOWED_BY = "followed_by"
    FOLLOWED_BY_ANY = "followed_by_any"
    NOT_NEXT = "not_next"
    NOT_FOLLOWED_BY = "not_followed_by"

    @property
    def negative(self) -> bool:
        return self in (Link.NOT_NEXT, Link.NOT_FOLLOWED_BY)


class ConditionContext(Protocol):
    """What an iterative condition sees besides the event."""

    timestamp: int

    def events_for(self, name: str) -> list[Any]:
        """Events accepted so far for pattern `name` in this partial match."""


class IterativeCondition:
    """Marks `fn(event, ctx) -> bool` as an iterative condition."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any, ConditionContext], bool]) -> None:
        if not callable(fn):
            raise MalformedPatternError(f"an iterative condition must be callable, got {fn!r}")
        self.fn = fn

    def __repr__(self) -> str:
        return f"IterativeCondition({self.fn!r})"


ConditionArg = Union[Callable[[Any], bool], IterativeCondition]


@dataclass(frozen=True)
class Condition:
    """A condition tree: a leaf (simple or iterative callable) or an AND/OR."""

    op: str  # "leaf", "and", "or"
    fn: Optional[Callable[..., bool]] = None
    left: Optional["Condition"] = None
    right: Optional["Condition"] = None
    iterative: bool = False

    @staticmethod
    def of(arg: ConditionArg) -> "Condition":
        if isinstance(arg, IterativeCondition):
            return Condition("leaf", fn=arg.fn, iterative=True)
        if isinstance(arg, Condition):
            return arg
        if not callable(arg):
            raise MalformedPatternError(f"a condition must be callable, got {arg!r}")
        return Condition("leaf", fn=arg)

    def both(self, other: "Condition") -> "Condition":
        return Condition("and", left=self, right=other, iterative=self.iterative or other.iterative)

    def either(self, other: "Condition") -> "Condition":
        return Condition("or", left=self, right=other, iterative=self.iterative or other.iterative)

    def compile(self) -> Callable[..., bool]:
        """One callable: `f(event)` if no leaf is iterative, else `f(event, ctx)`."""
        return self._compile_iterative() if self.iterative else self._compile_simple()

    def _compile_simple(self) -> Callable[[Any], bool]:
        if self.op == "leaf":
            assert self.fn is not None
            return self.fn
        assert self.left is not None and self.right is not None
        a, b = self.left._compile_simple(), self.right._compile_simple()
        if self.op == "and":
            return lambda e: bool(a(e)) and bool(b(e))
        return lambda e: bool(a(e)) or bool(b(e))

    def _compile_iterative(self) -> Callable[[Any, ConditionContext], bool]:
        if self.op == "leaf":
            fn = self.fn
            assert fn is not None
            if self.iterative:
                return fn
            return lambda e, ctx: fn(e)
        assert self.left is not None and self.right is not None
        a, b = self.left._compile_iterative(), self.right._compile_iterative()
        if self.op == "and":
            return lambda e, ctx: bool(a(e, ctx)) and bool(b(e, ctx))
        return lambda e, ctx: bool(a(e, ctx)) or bool(b(e, ctx))


class SkipKind(Enum):
    NO_SKIP = "no_skip"
    SKIP_TO_NEXT = "skip_to_next"
    SKIP_PAST_LAST_EVENT = "skip_past_last_event"
    SKIP_TO_FIRST = "skip_to_first"
    SKIP_TO_LAST = "skip_to_last"


@dataclass(frozen=True)
class SkipStrategy:
    """Flink's `AfterMatchSkipStrategy`: which pending partial matches a
    completed match discards. For `skip_to_first`/`skip_to_last`, a match
    without events for `pattern_name` discards nothing (Flink's default)."""

    kind: SkipKind = SkipKind.NO_SKIP
    pattern_name: Optional[str] = None

    @classmethod
    def no_skip(cls) -> "SkipStrategy":
        """Every possible match is emitted."""
        return cls(SkipKind.NO_SKIP)

    @classmethod
    def skip_to_next(cls) -> "SkipStrategy":
        """Discard partial matches that started with the match's first event."""
        return cls(SkipKind.SKIP_TO_NEXT)

    @classmethod
    def skip_past_last_event(cls) -> "SkipStrategy":
        """Discard partial matches that started before the match ended."""
        return cls(SkipKind.SKIP_PAST_LAST_EVENT)

    @classmethod
    def skip_to_first(cls, pattern_name: str) -> "SkipStrategy":
        """Discard partial matches started before the first `pattern_name` event."""
        return cls(SkipKind.SKIP_TO_FIRST, _check_name(pattern_name))

    @classmethod
    def skip_to_last(cls, pattern_name: str) -> "SkipStrategy":
        """Discard partial matches started before the last `pattern_name` event."""
        return cls(SkipKind.SKIP_TO_LAST, _check_name(pattern_name))


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise MalformedPatternError(f"a pattern name must be a non-empty string, got {name!r}")
    return name


@dataclass(frozen=True)
class Quantifier:
    """How many events one pattern accepts and how they may be spread.

    `kind` is "single", "times" (times(n) / times(n, m)) or "looping"
    (one_or_more / times_or_more); `max_count` None means unbounded.
    """

    kind: str = "single"
    min_count: int = 1
    max_count: Optional[int] = 1
    optional: bool = False
    greedy: bool = False
    inner: Contiguity = Contiguity.RELAXED
    inner_set: bool = False


@dataclass(frozen=True)
class Pattern:
    """One pattern of a sequence, linked to the pattern before it."""

    name: str
    link: Link
    previous: Optional["Pattern"] = None
    condition: Optional[Condition] = None
    until_condition: Optional[Condition] = None
    quantifier: Quantifier = Quantifier()
    window_ms: Optional[int] = None
    skip: SkipStrategy = SkipStrategy()

    # ---- starting and appending -------------------------------------------------

    @classmethod
    def begin(cls, name: str, skip: Optional[SkipStrategy] = None) -> "Pattern":
        """Start a sequence with pattern `name` and an after-match skip strategy."""
        if skip is not None and not isinstance(skip, SkipStrategy):
            raise MalformedPatternError(f"skip must be a SkipStrategy, got {skip!r}")
        return cls(_check_name(name), Link.BEGIN, skip=skip or SkipStrategy.no_skip())

    def next(self, name: str) -> "Pattern":
        """Append `name`; its first event must directly follow (strict contiguity)."""
        return self._append(name, Link.NEXT)

    def followed_by(self, name: str) -> "Pattern":
        """Append `name`, skipping non-matching events in between (relaxed)."""
        return self._append(name, Link.FOLLOWED_BY)

    def followed_by_any(self, name: str) -> "Pattern":
        """Append `name`, with a match for every later matching event."""
        return self._append(name, Link.FOLLOWED_BY_ANY)

    def not_next(self, name: str) -> "Pattern":
        """Append a negative pattern: the event right after must not match it."""
        self._check_not_after_optional()
        return self._append(name, Link.NOT_NEXT)

    def not_followed_by(self, name: str) -> "Pattern":
        """Append a negative pattern: no matching event may occur before the next
        accepted event (or, at the end of a sequence, before `within` passes)."""
        self._check_not_after_optional()
        return self._append(name, Link.NOT_FOLLOWED_BY)

    def _append(self, name: str, link: Link) -> "Pattern":
        return Pattern(_check_name(name), link, previous=self, skip=self.skip)

    def _check_not_after_optional(self) -> None:
        if self.quantifier.optional:
            raise MalformedPatternError(
                f"a NOT pattern cannot follow the optional pattern {self.name!r} "
                "(as in Flink: use two patterns, one with and one without it)"
            )

    # ---- conditions ---------------------------------------------------------

    def where(self, cond: ConditionArg) -> "Pattern":
        """AND `cond` with this pattern's condition."""
        new = Condition.of(cond)
        combined = new if self.condition is None else self.condition.both(new)
        return dataclasses.replace(self, condition=combined)

    def or_where(self, cond: ConditionArg) -> "Pattern":
        """OR `cond` with this pattern's condition (Flink's `or`)."""
        new = Condition.of(cond)
        if self.condition is None:
            raise MalformedPatternError(
                f"{self.name!r}: or_where needs a condition to OR with; call where first"
            )
        return dataclasses.replace(self, condition=self.condition.either(new))

    def until(self, cond: ConditionArg) -> "Pattern":
        """Stop condition of a looping pattern: an event that matches it is
        never taken into the loop, not even as its first event, and ends a
        loop already started (the event may still match what follows), as
        Flink's take condition `condition AND NOT until`."""
        self._check_positive("until")
        if self.quantifier.kind != "looping":
            raise MalformedPatternError(
                f"{self.name!r}: until is only applicable to looping patterns "
                "(one_or_more / times_or_more)"
            )
        if self.until_condition is not None:
            raise MalformedPatternError(f"{self.name!r}: until can only be applied once")
        return dataclasses.replace(self, until_condition=Condition.of(cond))

    # ---- quantifiers --------------------------------------------------------

    def times(self, n: int, m: Optional[int] = None) -> "Pattern":
        """Exactly `n` events, or between `n` and `m` (times(0, m) is optional)."""
        self._check_quantifiable("times")
        lo, hi = n, (n if m is None else m)
        if not isinstance(lo, int) or not isinstance(hi, int):
            raise MalformedPatternError(f"{self.name!r}: times takes integers, got {n!r}, {m!r}")
        optional = False
        if m is None and lo < 1:
            raise MalformedPatternError(f"{self.name!r}: times(n) needs n >= 1, got {n}")
        if m is not None and lo == 0:
            optional, lo = True, 1
        if lo < 1:
            raise MalformedPatternError(f"{self.name!r}: times(n, m) needs n >= 0, got {n}")
        if hi < lo:
            raise MalformedPatternError(f"{self.name!r}: times(n, m) needs m >= n, got {n}, {m}")
        q = dataclasses.replace(self.quantifier, kind="times", min_count=lo, max_count=hi, optional=optional)
        return dataclasses.replace(self, quantifier=q)

    def one_or_more(self) -> "Pattern":
        """One or more events (relaxed contiguity between them by default)."""
        return self.times_or_more(1)

    def times_or_more(self, n: int) -> "Pattern":
        """At least `n` events (times_or_more(0) is optional)."""
        self._check_quantifiable("times_or_more")
        if not isinstance(n, int) or n < 0:
            raise MalformedPatternError(f"{self.name!r}: times_or_more needs n >= 0, got {n!r}")
        q = dataclasses.replace(
            self.quantifier, kind="looping", min_count=max(n, 1), max_count=None, optional=n == 0
        )
        return dataclasses.replace(self, quantifier=q)

    def optional(self) -> "Pattern":
        """This pattern may match no event at all."""
        self._check_positive("optional")
        if self.quantifier.optional:
            raise MalformedPatternError(f"{self.name!r}: optional already applied")
        return dataclasses.replace(self, quantifier=dataclasses.replace(self.quantifier, optional=True))

    def greedy(self) -> "Pattern":
        """Repeat as many times as possible: an event the loop could take is
        never left to the pattern that follows."""
        self._check_positive("greedy")
        if self.quantifier.kind == "single":
            raise MalformedPatternError(f"{self.name!r}: greedy is not applicable to a singleton pattern")
        if self.quantifier.inner is Contiguity.NON_DETERMINISTIC:
            raise MalformedPatternError(f"{self.name!r}: greedy is not applicable with allow_combinations")
        return dataclasses.replace(self, quantifier=dataclasses.replace(self.quantifier, greedy=True))

    def consecutive(self) -> "Pattern":
        """Strict contiguity between the events of a looping/times pattern."""
        return self._inner(Contiguity.STRICT, "consecutive")

    def allow_combinations(self) -> "Pattern":
        """Non-deterministic relaxed contiguity between the events of a looping/times pattern."""
        if self.quantifier.greedy:
            raise MalformedPatternError(f"{self.name!r}: allow_combinations is not applicable to a greedy pattern")
        return self._inner(Contiguity.NON_DETERMINISTIC, "allow_combinations")

    def _inner(self, contiguity: Contiguity, what: str) -> "Pattern":
        self._check_positive(what)
        if self.quantifier.kind == "single":
            raise MalformedPatternError(f"{self.name!r}: {what} needs times, one_or_more or times_or_more first")
        if self.quantifier.inner_set:
            raise MalformedPatternError(
                f"{self.name!r}: apply either consecutive or allow_combinations, once"
            )
        q = dataclasses.replace(self.quantifier, inner=contiguity, inner_set=True)
        return dataclasses.replace(self, quantifier=q)

    def within(self, ms: int) -> "Pattern":
        """The whole match must happen within `ms` milliseconds of its first
        event. Set on several patterns, the smallest applies (as in Flink)."""
        if not isinstance(ms, int) or isinstance(ms, bool) or ms <= 0:
            raise MalformedPatternError(f"within needs a positive number of milliseconds, got {ms!r}")
        return dataclasses.replace(self, window_ms=ms)

    def _check_positive(self, what: str) -> None:
        if self.link.negative:
            raise MalformedPatternError(f"{self.name!r}: {what} is not applicable to a NOT pattern")

    def _check_quantifiable(self, what: str) -> None:
        self._check_positive(what)
        if self.quantifier.kind != "single" or self.quantifier.optional:
            raise MalformedPatternError(
                f"{self.name!r}: a quantifier is already applied; {what} must come first and only once"
            )

    # ---- reading the sequence ------------------------------------------------

    def sequence(self) -> list["Pattern"]:
        """All patterns of the sequence, first to last."""
        out: list[Pattern] = []
        node: Optional[Pattern] = self
        while node is not None:
            out.append(node)
            node = node.previous
        out.reverse()
        return out
