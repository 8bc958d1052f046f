"""The public API of `operators`: `from operators import window, Aggregate, ...`.

Subpackages, by concept (each module docstring says what may import it):
`time` (watermarks, the event-time contract, timers), `runtime` (the
Bytewax channel and shard steps every keyed core runs in), `windows`
(assigners, triggers, window functions, results, the engines, the `window`
step), `joins` (interval and window joins, the two-input steps), `process`
(process functions) and `cep` (patterns and `match_pattern`).

Names load on first use, so importing a plain-Python core (say
`operators.windows.assigners`) does not import Bytewax.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from operators.cep.nfa import Match
    from operators.cep.operator import CepOperator
    from operators.cep.patterns import IterativeCondition, MalformedPatternError, Pattern, SkipStrategy
    from operators.cep.wiring import CepOut, match_pattern
    from operators.joins.interval_join import IntervalJoin
    from operators.joins.window_join import WindowJoin
    from operators.joins.wiring import (
        IntervalJoinOut, ProcessOut, WindowJoinOut, broadcast_process, co_process, interval_join, window_join,
    )
    from operators.process.broadcast_state import (
        BroadcastContext, KeyedBroadcastContext, KeyedBroadcastProcess, KeyedBroadcastProcessFunction,
    )
    from operators.process.co_process import Collector, Context, KeyedCoProcess, KeyedCoProcessFunction, TimeDomain
    from operators.process.keyed_process import KeyedProcess, KeyedProcessFunction
    from operators.process.token_bucket import TokenBucket
    from operators.runtime.keyed import DEFAULT_SHARDS, Wiring, key_by, keyed_event_time, system_clock_ms
    from operators.time.eventtime import (
        BoundedOutOfOrderness, Clock, EventTimeLogic, MAX_WATERMARK, MIN_WATERMARK, WatermarkGenerator,
    )
    from operators.windows.assigners import (
        CalendarWindows, EventTimeSessionWindows, FixedSizeWindows, GLOBAL_WINDOW, GlobalWindows, InvalidElement,
        ProcessingTimeSessionWindows, SessionWindows, SlidingEventTimeWindows, SlidingProcessingTimeWindows,
        TumblingEventTimeWindows, TumblingProcessingTimeWindows, Window, WindowAssigner,
    )
    from operators.windows.end_of_input import FireAtEndOfInput
    from operators.windows.functions import Aggregate, AggregateFunction, ProcessWindowFunction
    from operators.windows.operator import WindowOperator
    from operators.windows.results import WindowResult
    from operators.windows.triggers import (
        CONTINUE, CountOrTimeoutTrigger, CountTrigger, EventTimeTrigger, FIRE, FIRE_AND_PURGE, NeverTrigger, PURGE,
        ProcessingTimeTrigger, PurgingTrigger, Trigger, TriggerContext, TriggerResult,
    )
    from operators.windows.wiring import WindowOut, count_window, window

_MODULES = {
    "operators.cep.nfa": ("Match",),
    "operators.cep.operator": ("CepOperator",),
    "operators.cep.patterns": ("IterativeCondition", "MalformedPatternError", "Pattern", "SkipStrategy"),
    "operators.cep.wiring": ("CepOut", "match_pattern"),
    "operators.joins.interval_join": ("IntervalJoin",),
    "operators.joins.window_join": ("WindowJoin",),
    "operators.joins.wiring": ("IntervalJoinOut", "ProcessOut", "WindowJoinOut", "broadcast_process", "co_process", "interval_join", "window_join"),
    "operators.process.broadcast_state": ("BroadcastContext", "KeyedBroadcastContext", "KeyedBroadcastProcess", "KeyedBroadcastProcessFunction"),
    "operators.process.co_process": ("Collector", "Context", "KeyedCoProcess", "KeyedCoProcessFunction", "TimeDomain"),
    "operators.process.keyed_process": ("KeyedProcess", "KeyedProcessFunction"),
    "operators.process.token_bucket": ("TokenBucket",),
    "operators.runtime.keyed": ("DEFAULT_SHARDS", "Wiring", "key_by", "keyed_event_time", "system_clock_ms"),
    "operators.time.eventtime": ("BoundedOutOfOrderness", "Clock", "EventTimeLogic", "MAX_WATERMARK", "MIN_WATERMARK", "WatermarkGenerator"),
    "operators.windows.assigners": ("CalendarWindows", "EventTimeSessionWindows", "FixedSizeWindows", "GLOBAL_WINDOW", "GlobalWindows", "InvalidElement", "ProcessingTimeSessionWindows", "SessionWindows", "SlidingEventTimeWindows", "SlidingProcessingTimeWindows", "TumblingEventTimeWindows", "TumblingProcessingTimeWindows", "Window", "WindowAssigner"),
    "operators.windows.end_of_input": ("FireAtEndOfInput",),
    "operators.windows.functions": ("Aggregate", "AggregateFunction", "ProcessWindowFunction"),
    "operators.windows.operator": ("WindowOperator",),
    "operators.windows.results": ("WindowResult",),
    "operators.windows.triggers": ("CONTINUE", "CountOrTimeoutTrigger", "CountTrigger", "EventTimeTrigger", "FIRE", "FIRE_AND_PURGE", "NeverTrigger", "PURGE", "ProcessingTimeTrigger", "PurgingTrigger", "Trigger", "TriggerContext", "TriggerResult"),
    "operators.windows.wiring": ("WindowOut", "count_window", "window"),
}
"""Where each public name lives."""

_HOME = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "Aggregate", "AggregateFunction", "BoundedOutOfOrderness", "BroadcastContext", "CONTINUE", "CalendarWindows",
    "CepOperator", "CepOut", "Clock", "Collector", "Context", "CountOrTimeoutTrigger", "CountTrigger", "DEFAULT_SHARDS",
    "EventTimeLogic", "EventTimeSessionWindows", "EventTimeTrigger", "FIRE", "FIRE_AND_PURGE", "FireAtEndOfInput",
    "FixedSizeWindows", "GLOBAL_WINDOW", "GlobalWindows", "IntervalJoin", "IntervalJoinOut", "InvalidElement",
    "IterativeCondition", "KeyedBroadcastContext", "KeyedBroadcastProcess", "KeyedBroadcastProcessFunction",
    "KeyedCoProcess", "KeyedCoProcessFunction", "KeyedProcess", "KeyedProcessFunction", "MAX_WATERMARK",
    "MIN_WATERMARK", "MalformedPatternError", "Match", "NeverTrigger", "PURGE", "Pattern", "ProcessOut",
    "ProcessWindowFunction", "ProcessingTimeSessionWindows", "ProcessingTimeTrigger", "PurgingTrigger",
    "SessionWindows", "SkipStrategy", "SlidingEventTimeWindows", "SlidingProcessingTimeWindows", "TimeDomain",
    "TokenBucket", "Trigger", "TriggerContext", "TriggerResult", "TumblingEventTimeWindows",
    "TumblingProcessingTimeWindows", "WatermarkGenerator", "Window", "WindowAssigner", "WindowJoin", "WindowJoinOut",
    "WindowOperator", "WindowOut", "WindowResult", "Wiring", "broadcast_process", "co_process", "count_window",
    "interval_join", "key_by", "keyed_event_time", "match_pattern", "system_clock_ms", "window", "window_join",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module when the name is first used."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'operators' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
