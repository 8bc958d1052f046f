"""Process functions, Flink's `KeyedProcessFunction` family: the runtime
they share and the keyed co-process function (`co_process.py`), the
single-input keyed process function (`keyed_process.py`), the keyed
broadcast process function (`broadcast_state.py`), and the token bucket such
functions rate-limit with (`token_bucket.py`).

Plain Python with no Bytewax import; it imports only `operators.time`.
`operators.joins.wiring` runs the two-input ones as Bytewax steps.
"""
