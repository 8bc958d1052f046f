"""Window triggers with Apache Flink's semantics.

A trigger decides when a window is evaluated (Flink's `Trigger`). The window
operator calls it for every element added to a window, for every event-time or
processing-time timer it registered, and when windows merge; each call returns
a `TriggerResult`: CONTINUE, FIRE (emit the window's result, keep its
contents), PURGE (drop the contents) or FIRE_AND_PURGE.

Triggers are stateless objects shared by all windows of an operator: per-window
state lives in `ctx.state` (None until set), timers are registered through the
context and identified by (key, window, time) as in Flink, so registering the
same timer twice has no effect. Both must be picklable.

Writing a custom trigger: subclass `Trigger`, implement `on_element`,
`on_event_time` and `on_processing_time`; release timers and state in `clear`;
for session windows implement `can_merge`/`on_merge`, where `ctx.merged_states`
holds the states of the windows being merged into `window`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from operators.windows.assigners import Window


class TriggerResult(Enum):
    """What to do with a window after a trigger call."""

    CONTINUE = (False, False)
    FIRE = (True, False)
    PURGE = (False, True)
    FIRE_AND_PURGE = (True, True)

    @property
    def is_fire(self) -> bool:
        return self.value[0]

    @property
    def is_purge(self) -> bool:
        return self.value[1]


CONTINUE = TriggerResult.CONTINUE
FIRE = TriggerResult.FIRE
PURGE = TriggerResult.PURGE
FIRE_AND_PURGE = TriggerResult.FIRE_AND_PURGE


class TriggerContext(Protocol):
    """What a trigger sees of the operator for the current (key, window)."""

    key: str
    state: Any
    merged_states: list[Any]

    @property
    def current_watermark(self) -> int: ...

    @property
    def current_processing_time(self) -> int: ...

    def register_event_time_timer(self, time: int) -> None: ...

    def delete_event_time_timer(self, time: int) -> None: ...

    def register_processing_time_timer(self, time: int) -> None: ...

    def delete_processing_time_timer(self, time: int) -> None: ...


class Trigger(ABC):
    """Decides when a window fires; see the module docstring. Triggers that
    read processing time set `needs_clock`."""

    needs_clock: bool = False

    @abstractmethod
    def on_element(self, value: Any, ts: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        """An element was added to `window`."""

    @abstractmethod
    def on_event_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        """An event-time timer of `window` fired at `time`."""

    @abstractmethod
    def on_processing_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        """A processing-time timer of `window` fired at `time`."""

    def can_merge(self) -> bool:
        """Whether the trigger supports merging (session) windows."""
        return False

    def on_merge(self, window: Window, ctx: TriggerContext) -> None:
        """Windows with states `ctx.merged_states` were merged into `window`."""
        raise NotImplementedError(f"{type(self).__name__} does not support merging windows")

    def clear(self, window: Window, ctx: TriggerContext) -> None:
        """`window` is going away: delete its timers and state."""
        ctx.state = None


class EventTimeTrigger(Trigger):
    """Fires when the watermark passes the window's max timestamp; an element
    added to a window the watermark has already passed (allowed lateness)
    fires it at once. The default for event-time windows."""

    def on_element(self, value: Any, ts: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        if window.max_timestamp <= ctx.current_watermark:
            return FIRE
        ctx.register_event_time_timer(window.max_timestamp)
        return CONTINUE

    def on_event_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return FIRE if time == window.max_timestamp else CONTINUE

    def on_processing_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window: Window, ctx: TriggerContext) -> None:
        if window.max_timestamp > ctx.current_watermark:
            ctx.register_event_time_timer(window.max_timestamp)

    def clear(self, window: Window, ctx: TriggerContext) -> None:
        ctx.delete_event_time_timer(window.max_timestamp)

    def __repr__(self) -> str:
        return "EventTimeTrigger()"


class ProcessingTimeTrigger(Trigger):
    """Fires when processing time reaches the window's max timestamp. The
    default for processing-time windows."""

    needs_clock = True

    def on_element(self, value: Any, ts: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        ctx.register_processing_time_timer(window.max_timestamp)
        return CONTINUE

    def on_event_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return CONTINUE

    def on_processing_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return FIRE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window: Window, ctx: TriggerContext) -> None:
        if window.max_timestamp > ctx.current_processing_time:
            ctx.register_processing_time_timer(window.max_timestamp)

    def clear(self, window: Window, ctx: TriggerContext) -> None:
        ctx.delete_processing_time_timer(window.max_timestamp)

    def __repr__(self) -> str:
        return "ProcessingTimeTrigger()"


class NeverTrigger(Trigger):
    """Never fires; the default of `GlobalWindows`, as in Flink."""

    def on_element(self, value: Any, ts: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return CONTINUE

    def on_event_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return CONTINUE

    def on_processing_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window: Window, ctx: TriggerContext) -> None:
        return None

    def __repr__(self) -> str:
        return "NeverTrigger()"


def _positive(name: str, value: int) -> int:
    if type(value) is not int or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class CountTrigger(Trigger):
    """Fires (without purging) every time the window has received `count`
    more elements (Flink's `CountTrigger`)."""

    def __init__(self, count: int) -> None:
        self.count = _positive("count", count)

    def on_element(self, value: Any, ts: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        seen = (ctx.state or 0) + 1
        if seen >= self.count:
            ctx.state = None
            return FIRE
        ctx.state = seen
        return CONTINUE

    def on_event_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return CONTINUE

    def on_processing_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window: Window, ctx: TriggerContext) -> None:
        ctx.state = sum(s for s in ctx.merged_states if s) or None

    def __repr__(self) -> str:
        return f"CountTrigger({self.count})"


class CountOrTimeoutTrigger(Trigger):
    """FIRE_AND_PURGE when the window holds `count` elements, or `timeout_ms`
    of processing time after the first element buffered since the last purge,
    whichever comes first. Suits micro-batching a global or long window.

    State: `[buffered, deadline]`. Merged windows add their counts and keep
    the earliest deadline.
    """

    needs_clock = True

    def __init__(self, count: int, timeout_ms: int) -> None:
        self.count = _positive("count", count)
        self.timeout_ms = _positive("timeout_ms", timeout_ms)

    def on_element(self, value: Any, ts: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        state = ctx.state
        if state is None:
            deadline = ctx.current_processing_time + self.timeout_ms
            state = ctx.state = [0, deadline]
            ctx.register_processing_time_timer(deadline)
        state[0] += 1
        if state[0] >= self.count:
            self.clear(window, ctx)
            return FIRE_AND_PURGE
        return CONTINUE

    def on_event_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return CONTINUE

    def on_processing_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        state = ctx.state
        if state is None or state[1] != time:
            return CONTINUE
        ctx.state = None
        return FIRE_AND_PURGE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window: Window, ctx: TriggerContext) -> None:
        states = [s for s in ctx.merged_states if s is not None]
        if not states:
            return
        deadline = min(s[1] for s in states)
        ctx.state = [sum(s[0] for s in states), deadline]
        ctx.register_processing_time_timer(deadline)

    def clear(self, window: Window, ctx: TriggerContext) -> None:
        state = ctx.state
        if state is not None:
            ctx.delete_processing_time_timer(state[1])
            ctx.state = None

    def __repr__(self) -> str:
        return f"CountOrTimeoutTrigger({self.count}, {self.timeout_ms})"


class PurgingTrigger(Trigger):
    """Turns every FIRE of `nested` into FIRE_AND_PURGE (Flink's
    `PurgingTrigger`)."""

    def __init__(self, nested: Trigger) -> None:
        self.nested = nested
        self.needs_clock = nested.needs_clock

    @staticmethod
    def _purging(result: TriggerResult) -> TriggerResult:
        return FIRE_AND_PURGE if result.is_fire else result

    def on_element(self, value: Any, ts: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return self._purging(self.nested.on_element(value, ts, window, ctx))

    def on_event_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return self._purging(self.nested.on_event_time(time, window, ctx))

    def on_processing_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return self._purging(self.nested.on_processing_time(time, window, ctx))

    def can_merge(self) -> bool:
        return self.nested.can_merge()

    def on_merge(self, window: Window, ctx: TriggerContext) -> None:
        self.nested.on_merge(window, ctx)

    def clear(self, window: Window, ctx: TriggerContext) -> None:
        self.nested.clear(window, ctx)

    def __repr__(self) -> str:
        return f"PurgingTrigger({self.nested!r})"


__all__ = [
    "CONTINUE",
    "FIRE",
    "FIRE_AND_PURGE",
    "PURGE",
    "CountOrTimeoutTrigger",
    "CountTrigger",
    "EventTimeTrigger",
    "NeverTrigger",
    "ProcessingTimeTrigger",
    "PurgingTrigger",
    "Trigger",
    "TriggerContext",
    "TriggerResult",
]
