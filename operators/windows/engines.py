"""Which window engine runs a `WindowOperator`.

`choose_engine` is the one place the choice is made; each engine names
itself in its snapshots with its `engine_id`, so the rules here may change
without making stores unrestorable (a store restores into the engine that
wrote it, or is refused with both names).
"""

from __future__ import annotations

from typing import Any, Sequence

from operators.windows.assigners import FixedSizeWindows, SessionWindows, WindowAssigner
from operators.windows.fixed import SlidingEngine, TumblingEngine
from operators.windows.general import GeneralEngine
from operators.windows.operator import WindowOperator
from operators.windows.sessions import SessionsEngine
from operators.windows.triggers import EventTimeTrigger, Trigger

_FIXED_LAYOUT = ("assign", "last_start", "starts")
"""The `FixedSizeWindows` methods whose rule the fixed-window engines follow."""

_SESSION_LAYOUT = ("assign", "gap", "merge_windows")
"""The `SessionWindows` methods whose rule the session engine follows."""


def _inherits(assigner: WindowAssigner, base: type[WindowAssigner], methods: Sequence[str]) -> bool:
    """Whether `assigner` is a `base` that overrides none of `methods`."""
    kind = type(assigner)
    return isinstance(assigner, base) and all(getattr(kind, m) is getattr(base, m) for m in methods)


def choose_engine(assigner: WindowAssigner, trigger: Trigger) -> type[WindowOperator[Any]]:
    """The engine for `assigner` with `trigger` (the default one resolved).

    The fast engines serve event-time fixed-size windows and sessions with
    the event-time trigger; they place elements by the rules of
    `FixedSizeWindows` and `SessionWindows`, so an assigner subclass that
    overrides any of those methods, or another trigger, gets the general
    engine, which asks the assigner and the trigger for everything.
    """
    if type(trigger) is EventTimeTrigger and assigner.is_event_time:
        if _inherits(assigner, FixedSizeWindows, _FIXED_LAYOUT):
            assert isinstance(assigner, FixedSizeWindows)
            return TumblingEngine if assigner.slide_ms == assigner.size_ms else SlidingEngine
        if _inherits(assigner, SessionWindows, _SESSION_LAYOUT):
            return SessionsEngine
    return GeneralEngine

