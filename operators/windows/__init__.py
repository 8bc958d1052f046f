"""Windows with Apache Flink's semantics.

`assigners.py` (which windows an element belongs to, and each assigner's
default trigger), `triggers.py` and `end_of_input.py` (when a window fires),
`functions.py` (aggregates and process functions), `results.py`
(`WindowResult`), `operator.py` (`WindowOperator`, what the engines share),
`engines.py` (which engine runs it), the engines `fixed.py`, `sessions.py`
and `general.py`, and `wiring.py` (the Bytewax steps `window` and
`count_window`).

Everything but `wiring.py` is plain Python and imports only
`operators.time` and this package; `wiring.py` also imports
`operators.runtime`. `operators.joins` (the window join) may import it.
"""
