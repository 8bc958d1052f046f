"""Event time: watermarks and their generators, the `EventTimeLogic`
contract every keyed core implements (`eventtime.py`), and the timer
structures cores schedule with (`timer_wheel.py`, `timer_index.py`).

Plain Python with no Bytewax import. It imports nothing else from
`operators`; every other subpackage may import it.
"""
