"""What every flow's `build(**overrides)` does first, and the settings flows share.

A flow declares its settings once (`FlowSettings`): the shared ones below
(IO, metrics, `QUIET`), the event-time ones it uses with its own defaults
(`WATERMARK_BOUND_MS.with_default(...)`) and its own. `configure` resolves
them from the overrides and the environment, makes the `IOConfig`, starts
the metrics server when `METRICS_PORT` is set and, under
`python -m bytewax.run`, prepares the progress lines on stderr (they start
once the build has succeeded).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from eventio import metrics
from eventio.bytewax_run import cli_settings
from eventio.config import IO_SETTINGS, IOConfig
from eventio.progress import BOUNDED_INTERVAL_S, QUIET, UNBOUNDED_INTERVAL_S, Reporter, prepare
from eventio.settings import FlowSettings, Setting, integer

SHARED_SETTINGS: tuple[Setting, ...] = (*IO_SETTINGS, *metrics.METRICS_SETTINGS, QUIET)
"""The settings of every flow."""

_MS = integer(0, unit="milliseconds")
WATERMARK_BOUND_MS = Setting("WATERMARK_BOUND_MS", _MS, 120_000,
                             "bounded out-of-orderness: the watermark trails the newest event time by this much")
ALLOWED_LATENESS_MS = Setting("ALLOWED_LATENESS_MS", _MS, 0,
                              "how long after the watermark passes a window's end a late event still updates it "
                              "(re-fires); later ones go to the late output")
IDLE_TIMEOUT_MS = Setting("IDLE_TIMEOUT_MS", _MS, 0,
                          "an input partition without events for this long no longer holds the watermark back "
                          "(Flink's `withIdleness`); 0: never")
SHARDS = Setting("SHARDS", integer(1), 32, "key shards of each keyed step: the unit Bytewax spreads over workers")


def configure(settings: FlowSettings, overrides: Mapping[str, Any],
              extra: Iterable[str] = ()) -> tuple[dict[str, Any], IOConfig]:
    """The resolved settings (by lower-case name) and the IO configuration
    of one build; `extra` names overrides that are not settings (a clock,
    a model object). Raises `SettingsError` before anything starts."""
    values = settings.resolve(overrides, extra=extra)
    cfg = IOConfig.from_settings(values)
    metrics.serve(values)
    if cli_settings() is not None and not values["quiet"]:
        bounded = bool(cfg.input_path) or cfg.stop_at_end
        prepare(Reporter(settings.flow, BOUNDED_INTERVAL_S if bounded else UNBOUNDED_INTERVAL_S))
    return values, cfg
