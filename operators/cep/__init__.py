"""Complex event processing, Flink's CEP library: the pattern API
(`patterns.py`), the NFA a pattern compiles to (`nfa.py`), the keyed core
that runs it in event time (`operator.py`), and the Bytewax step
`match_pattern` (`wiring.py`).

Everything but `wiring.py` is plain Python and imports only
`operators.time` and this package; `wiring.py` also imports
`operators.runtime`. Nothing else in `operators` imports it.
"""
