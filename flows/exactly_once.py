"""ExactlyOnceProcessor: a running count and average of `value` per user,
written to Kafka exactly once.

Kafka in (`read_committed`, offsets in Bytewax recovery) -> key `user_id` ->
running count and running average of `value` -> transactional Kafka out.
One output per input event:
`{"user_id", "event_id", "count", "running_avg"}` where `count` runs 1..n per
user and `running_avg` is the mean `value` of the user's events so far that
have one (`null` until one has). Dead letters go to `ERROR_OUTPUT_PATH` if
set, else to `DLQ_TOPIC` in the same transactions as the results, cut to fit
one Kafka record (as is a result too large for one, as a dead letter); a
result the broker refuses becomes a dead letter on `DLQ_TOPIC` in its
transaction. Results always go to Kafka: `OUTPUT_PATH` is refused.

Settings: the IO variables (`KAFKA_BOOTSTRAP_SERVERS`, `INPUT_TOPIC`,
`OUTPUT_TOPIC`, `DLQ_TOPIC`/`ERROR_OUTPUT_PATH`, `START_OFFSET`) plus
`TRANSACTIONAL_ID_PREFIX` (default `exactly-once`), `SINK_PARTITIONS`
(transactional producers, default 4, fixed for a recovery store),
`HEARTBEAT_MS` (default 500), `SINK_TIMEOUT_S` (how long a Kafka call of
the sink may take before the flow stops, default 30),
`TRANSACTION_TIMEOUT_MS` (0 = derived from the snapshot interval; the flow
refuses to start with one not larger than that interval) and
`DELIVERY_GUARANTEE` (`exactly_once`, or `at_least_once` for the flows'
checked at-least-once writers, as Flink's `DeliveryGuarantee`). Exactly-once
needs recovery:

    python -m recovery.directories init state/ 1
    python -m bytewax.run flows.exactly_once:flow -r state/ -s 1 -b 0
"""

from __future__ import annotations

from datetime import timedelta
from operator import attrgetter, itemgetter
from typing import Any, Callable, Optional, Union

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.dataflow import Dataflow

from eventio import metrics, strict_json
from eventio.config import IOConfig, setting, split_overrides
from eventio.deadletter import DeadLetter
from eventio.event import Event
from eventio.flowio import (
    UnencodableResultError,
    oversize_dead_letter,
    read_events,
    split_dead_letters,
    write_dead_letters,
    write_output,
)
from eventio.kafka_config import RECORD_OVERHEAD
from operators import key_by
from recovery.epoch_interval import epoch_interval_s
from recovery.transactional_sink import TransactionalKafkaSink, exactly_once_output

Stats = tuple[int, float, int]
"""(events, sum of values, events with a value) of one user."""

_SETTINGS = ("transactional_id_prefix", "sink_partitions", "heartbeat_ms", "sink_timeout_s", "transaction_timeout_ms",
             "delivery_guarantee")
GUARANTEES = ("exactly_once", "at_least_once")


def running_stats(state: Optional[Stats], event: Event) -> tuple[Stats, dict[str, Any]]:
    """Fold one event into its user's stats; return the new stats and the output."""
    count, total, valued = state or (0, 0.0, 0)
    count += 1
    if event.value is not None:
        total += event.value
        valued += 1
    out = {
        "user_id": event.user_id,
        "event_id": event.event_id,
        "count": count,
        "running_avg": total / valued if valued else None,
    }
    return (count, total, valued), out


Message = KafkaSinkMessage[Optional[bytes], Optional[bytes]]


def result_messages(limit: int) -> Callable[[tuple[str, dict[str, Any]]], Union[tuple[str, Message], DeadLetter]]:
    """The Kafka message of a result, or the dead letter of one that strict
    JSON cannot hold (a running average that overflowed) or that does not fit
    in one Kafka record of `limit` bytes."""
    room = limit - RECORD_OVERHEAD

    def message(item: tuple[str, dict[str, Any]]) -> Union[tuple[str, Message], DeadLetter]:
        user, out = item
        key = user.encode()
        try:
            value = strict_json.encode(out)
        except strict_json.UnencodableError as ex:
            return DeadLetter.of(UnencodableResultError(f"output 'out': {ex}"), source="output:out",
                                 value=strict_json.loose(out).encode(), key=key).fit(limit)
        if len(value) + len(key) > room:
            return oversize_dead_letter("out", key, value, limit)
        return user, KafkaSinkMessage(key, value)

    return message


def dead_letter_messages(topic: str, limit: int) -> Callable[[DeadLetter], tuple[str, Message]]:
    """A dead letter as a message to `topic`, cut to fit one Kafka record."""

    def message(letter: DeadLetter) -> tuple[str, Message]:
        metrics.DEAD_LETTERS.labels(letter.error_class).inc()
        letter = letter.fit(limit)
        route = f"{letter.source}:{letter.partition}"
        return route, KafkaSinkMessage(letter.key, letter.value, topic=topic, headers=letter.headers())

    return message


def build(**overrides: Any) -> Dataflow:
    """The flow, configured by the environment and `overrides` (IO settings
    and the lower-case names of the settings above)."""
    io, rest = split_overrides(overrides)
    unknown = sorted(set(rest) - set(_SETTINGS))
    if unknown:
        raise TypeError(f"unknown settings {unknown}; expected IO settings or {list(_SETTINGS)}")
    cfg = IOConfig.from_env(io)
    guarantee = setting("delivery_guarantee", "exactly_once", rest)
    if guarantee not in GUARANTEES:
        raise ValueError(f"DELIVERY_GUARANTEE must be one of {GUARANTEES}, got {guarantee!r}")
    metrics.serve_from_env()

    if cfg.output_path:
        raise ValueError("flows.exactly_once writes its results to Kafka (OUTPUT_TOPIC); unset OUTPUT_PATH")
    limit = cfg.kafka.max_message_bytes

    flow = Dataflow("exactly_once")
    src = read_events(flow, "read", cfg)
    by_user = key_by("by_user", src.events, attrgetter("user_id"))
    stats = op.stateful_map("running_stats", by_user, running_stats)
    if guarantee == "at_least_once":
        unencodable = write_output("out", op.map("unkey", stats, itemgetter(1)), cfg, key_of=itemgetter("user_id"))
        write_dead_letters("dlq", src.errors, cfg, unencodable)
        return flow
    messages, unencodable = split_dead_letters("encoded", op.map("encode", stats, result_messages(limit)))
    dead_letters = cfg.dead_letter_output
    if dead_letters.path:
        write_dead_letters("dlq", src.errors, cfg, unencodable)
    else:
        errors = op.merge("all_errors", src.errors, unencodable)
        dead = op.map("dlq_encode", errors, dead_letter_messages(cfg.dead_letter_topic, limit))
        messages = op.merge("with_dead_letters", messages, dead)
    transaction_timeout_ms = setting("transaction_timeout_ms", 0, rest)
    sink = TransactionalKafkaSink(
        cfg.kafka,
        cfg.output_topic,
        transactional_id_prefix=setting("transactional_id_prefix", "exactly-once", rest),
        partitions=setting("sink_partitions", 4, rest),
        add_config={"transaction.timeout.ms": transaction_timeout_ms} if transaction_timeout_ms else None,
        timeout_s=setting("sink_timeout_s", 30.0, rest),
        epoch_interval_s=epoch_interval_s(),
        dead_letter_topic=cfg.dead_letter_topic,
        endpoint=cfg.results.describe,
    )
    # Bounded input ends the flow; an endless heartbeat would keep it running.
    bounded = cfg.stop_at_end or bool(cfg.input_path)
    heartbeat_ms = setting("heartbeat_ms", 500, rest)
    heartbeat = None if bounded or heartbeat_ms <= 0 else timedelta(milliseconds=heartbeat_ms)
    exactly_once_output("out", messages, sink, heartbeat)
    return flow


flow = build()
