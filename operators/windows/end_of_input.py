"""A trigger wrapper that flushes every window at the end of a bounded input.

At the end of a bounded input the watermark jumps to `MAX_WATERMARK`, which
fires every pending event-time timer; processing-time timers never come due
once the input is over (in Flink too: a finishing job fires only event-time
timers). A window closed only by counts or processing-time timeouts — global
windows with `CountOrTimeoutTrigger`, say — would keep its last partial
batch forever. `FireAtEndOfInput(nested)` behaves exactly as `nested` and also
registers an event-time timer at `MAX_WATERMARK` for every window that
receives an element; when it fires, the window is fired and purged. A window
`nested` has already purged has no contents and emits nothing.

Plain Python, no Bytewax import.
"""

from __future__ import annotations

from typing import Any

from operators.time.eventtime import MAX_WATERMARK
from operators.windows.assigners import Window
from operators.windows.triggers import FIRE_AND_PURGE, Trigger, TriggerContext, TriggerResult


class FireAtEndOfInput(Trigger):
    """`nested`, plus a FIRE_AND_PURGE of every window when the watermark
    reaches `MAX_WATERMARK` (end of a bounded input)."""

    def __init__(self, nested: Trigger) -> None:
        if not isinstance(nested, Trigger):
            raise TypeError(f"nested must be a Trigger, got {nested!r}")
        self.nested = nested
        self.needs_clock = nested.needs_clock

    def on_element(self, value: Any, ts: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        ctx.register_event_time_timer(MAX_WATERMARK)
        return self.nested.on_element(value, ts, window, ctx)

    def on_event_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        if time == MAX_WATERMARK:
            self.nested.clear(window, ctx)
            return FIRE_AND_PURGE
        return self.nested.on_event_time(time, window, ctx)

    def on_processing_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return self.nested.on_processing_time(time, window, ctx)

    def can_merge(self) -> bool:
        return self.nested.can_merge()

    def on_merge(self, window: Window, ctx: TriggerContext) -> None:
        ctx.register_event_time_timer(MAX_WATERMARK)
        self.nested.on_merge(window, ctx)

    def clear(self, window: Window, ctx: TriggerContext) -> None:
        ctx.delete_event_time_timer(MAX_WATERMARK)
        self.nested.clear(window, ctx)

    def __repr__(self) -> str:
        return f"FireAtEndOfInput({self.nested!r})"
