"""`eventio.compact_json.dumps` writes what `json.dumps` with the compact
options writes, for any JSON-like record."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventio.compact_json import dumps

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
records = st.recursive(scalars, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=20)


@given(records)
def test_same_text_as_json_dumps_with_compact_separators(record: Any) -> None:
    assert dumps(record) == json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def test_what_json_cannot_hold_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps({"when": object()})
