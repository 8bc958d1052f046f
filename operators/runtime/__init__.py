"""The Bytewax side of every keyed core: `keyed_event_time` turns an
`EventTimeLogic` into the channel (watermark) and shard steps of a dataflow,
and `key_by` keys a stream (`keyed.py`).

It imports Bytewax, `operators.time` and `eventio` (metrics, snapshot
loading). Only the `wiring` modules of the other subpackages and flows
import it; no core does.
"""
