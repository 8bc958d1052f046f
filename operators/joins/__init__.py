"""Two-input operators: the interval join (`interval_join.py`), the window
join (`window_join.py`, built on `operators.windows`) and the Bytewax steps
for them and for the keyed co-process and broadcast process functions
(`wiring.py`).

The cores are plain Python and import `operators.time` and
`operators.windows`; `wiring.py` also imports `operators.process` and
`operators.runtime`. Nothing in `operators` imports this package.
"""
