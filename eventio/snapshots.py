"""Loading operator snapshots, including those written by earlier versions.

Operator state is pickled once per epoch (`operators/runtime/keyed.py`). Events
buffered in it (CEP, joins, process functions) were pickled as plain objects
with their JSON fields as state until `Event` became a msgspec `Struct`,
which pickle cannot create blank; `loads` reads both forms, so a recovery
store written before the change resumes.

Operator classes are pickled by module path. `operators/` was a flat package
until it was grouped into subpackages; `loads` finds a class a snapshot
names by its earlier path where it lives now (`MOVED_MODULES`,
`MOVED_NAMES`), so stores written before the move resume too.
"""

from __future__ import annotations

import io
import pickle
from typing import Any


class _EventLoader:
    """What an `eventio.event.Event` reference in a snapshot stands for: the
    current form is rebuilt from its field values, the earlier one from a
    blank event and its state dict (`Event.__setstate__`)."""

    def __new__(cls, *fields: Any) -> Any:
        from eventio.event import Event

        return Event(*fields) if fields else Event("", "", "", 0)


MOVED_MODULES = {
    "operators.eventtime": "operators.time.eventtime",
    "operators.timer_wheel": "operators.time.timer_wheel",
    "operators.keyed": "operators.runtime.keyed",
    "operators.windows": "operators.windows.assigners",
    "operators.triggers": "operators.windows.triggers",
    "operators.end_of_input": "operators.windows.end_of_input",
    "operators.windowing": "operators.windows.wiring",
    "operators.interval_join": "operators.joins.interval_join",
    "operators.window_join": "operators.joins.window_join",
    "operators.joins": "operators.joins.wiring",
    "operators.co_process": "operators.process.co_process",
    "operators.keyed_process": "operators.process.keyed_process",
    "operators.broadcast_state": "operators.process.broadcast_state",
    "operators.token_bucket": "operators.process.token_bucket",
    "operators.cep": "operators.cep.operator",
    "operators.nfa": "operators.cep.nfa",
    "operators.patterns": "operators.cep.patterns",
    "operators.pattern_matching": "operators.cep.wiring",
}
"""Modules moved whole: earlier path -> path now."""

MOVED_NAMES = {
    ("operators.window_operator", "_Slot"): ("operators.windows.general", "_Slot"),
    ("operators.window_operator", "_MISSING"): ("operators.windows.operator", "_MISSING"),
    ("operators.window_operator", "_TimerIndex"): ("operators.time.timer_index", "TimerIndex"),
    ("operators.window_operator", "WindowResult"): ("operators.windows.results", "WindowResult"),
    ("operators.window_operator", "Aggregate"): ("operators.windows.functions", "Aggregate"),
}
"""What `operators/windows/operator.py` held that a snapshot can name, now in
the modules it was split into."""


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "eventio.event" and name == "Event":
            return _EventLoader
        module, name = MOVED_NAMES.get((module, name), (MOVED_MODULES.get(module, module), name))
        return super().find_class(module, name)


def loads(data: bytes) -> Any:
    """`pickle.loads`, reading events of either form and operator classes
by their paths before the move."""
    return _Unpickler(io.BytesIO(data)).load()
