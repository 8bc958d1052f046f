"""Window functions: what a window's contents are evaluated with.

An incremental `AggregateFunction` (`create`, `add(acc, value)`, `merge`,
`result`), `Aggregate` built from plain callables with the usual ones
(`count`, `mean`, `count_and_mean`, `collect`), and the signature of a
process function over the buffered elements. Plain Python.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Generic, Iterable, Optional, TypeVar

from operators.windows.assigners import Window

V = TypeVar("V")
A = TypeVar("A")
R = TypeVar("R")

ProcessWindowFunction = Callable[[str, Window, list, int], Iterable[Any]]
"""`(key, window, elements, watermark) -> results`; `elements` must not be
kept or mutated."""


class AggregateFunction(ABC, Generic[V, A, R]):
    """Incremental window aggregation (Flink's `AggregateFunction`).

    `add` and `merge` may update the accumulator in place but must return it.
    `merge` is required only for merging (session) windows.
    """

    @abstractmethod
    def create(self) -> A:
        """A fresh accumulator."""

    @abstractmethod
    def add(self, acc: A, value: V) -> A:
        """Fold one element into `acc`."""

    def merge(self, a: A, b: A) -> A:
        """Combine the accumulators of two merging windows."""
        raise NotImplementedError(f"{type(self).__name__} does not support merging windows")

    @abstractmethod
    def result(self, acc: A) -> R:
        """The window's value from its accumulator."""


def _identity(acc: Any) -> Any:
    return acc


def _append(acc: list, value: Any) -> list:
    acc.append(value)
    return acc


def _concat(a: list, b: list) -> list:
    a.extend(b)
    return a


def _count(acc: int, value: Any) -> int:
    return acc + 1


def _zero() -> int:
    return 0


def _count_and_sum() -> list:
    return [0, 0.0]


def _add_pairs(a: list, b: list) -> list:
    return [a[0] + b[0], a[1] + b[1]]


def _summing(value_of: Callable[[Any], float]) -> Callable[[list, Any], list]:
    """`add` for a [count, sum] accumulator."""

    def add(acc: list, element: Any) -> list:
        acc[0] += 1
        acc[1] += value_of(element)
        return acc

    return add


def _count_and_mean(acc: list) -> tuple[int, float]:
    return (acc[0], acc[1] / acc[0])


def _mean(acc: list) -> float:
    return acc[1] / acc[0]


class Aggregate(AggregateFunction[V, A, R]):
    """An `AggregateFunction` made of plain callables."""

    __slots__ = ("create", "add", "merge", "result")

    def __init__(
        self,
        create: Callable[[], A],
        add: Callable[[A, V], A],
        merge: Optional[Callable[[A, A], A]] = None,
        result: Callable[[A], R] = _identity,
    ) -> None:
        self.create = create  # type: ignore[method-assign]
        self.add = add  # type: ignore[method-assign]
        self.merge = merge  # type: ignore[method-assign,assignment]
        self.result = result  # type: ignore[method-assign]

    @classmethod
    def count(cls) -> "Aggregate[Any, int, int]":
        """Number of elements."""
        return cls(_zero, _count, int.__add__)

    @classmethod
    def count_and_mean(cls, value_of: Callable[[V], float]) -> "Aggregate[V, list, tuple[int, float]]":
        """`(count, mean of value_of(element))`."""
        return cls(_count_and_sum, _summing(value_of), _add_pairs, _count_and_mean)

    @classmethod
    def mean(cls, value_of: Callable[[V], float]) -> "Aggregate[V, list, float]":
        """Mean of `value_of(element)`."""
        return cls(_count_and_sum, _summing(value_of), _add_pairs, _mean)

    @classmethod
    def collect(cls) -> "Aggregate[Any, list, list]":
        """All elements, in arrival order (merged sessions: by session start);
        each result is a fresh list."""
        return cls(list, _append, _concat, list)

