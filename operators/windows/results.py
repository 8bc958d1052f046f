"""`WindowResult`, one firing of one window of one key, and how the engines
build results cheaply. Plain Python."""

from __future__ import annotations

from typing import Any, NamedTuple

from operators.windows.assigners import Window


class WindowResult(NamedTuple):
    """One firing of one window of one key. `supersedes`: the windows of the
    key whose latest earlier result this one replaces, sorted (see the module
    docstring); every value of one firing carries the same."""

    key: str
    window_start: int
    window_end: int
    value: Any
    supersedes: tuple[Window, ...]
    watermark: int

    @property
    def window(self) -> Window:
        return Window(self.window_start, self.window_end)

    @property
    def is_late_update(self) -> bool:
        """Whether this result replaces an earlier one."""
        return bool(self.supersedes)


_new_tuple = tuple.__new__
"""`_new_tuple(WindowResult, fields)` builds a result without the Python-level
`__new__` of named tuples; results are built on every firing."""

_FIRST: tuple[Window, ...] = ()
"""`supersedes` of a result that replaces nothing."""
