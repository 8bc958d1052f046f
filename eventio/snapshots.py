"""Loading operator snapshots, including those written by earlier versions.

Operator state is pickled once per epoch (`operators/keyed.py`). Events
buffered in it (CEP, joins, process functions) were pickled as plain objects
with their JSON fields as state until `Event` became a msgspec `Struct`,
which pickle cannot create blank; `loads` reads both forms, so a recovery
store written before the change resumes.
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


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "eventio.event" and name == "Event":
            return _EventLoader
        return super().find_class(module, name)


def loads(data: bytes) -> Any:
    """`pickle.loads`, reading events of either form."""
    return _Unpickler(io.BytesIO(data)).load()
