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

Exactly-once needs Bytewax recovery: under `python -m bytewax.run` without
`-r` the flow refuses to start (exit 2) and says how to make the
directories. On a bounded input (`STOP_AT_END=true`) every output is
committed before the process exits 0.

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

from eventio import metrics, progress, strict_json
from eventio.bytewax_run import cli_settings, exits_on_configuration_error, lazy_flow
from eventio.deadletter import DeadLetter
from eventio.event import Event
from eventio.flow_setup import SHARED_SETTINGS, configure
from eventio.flowio import (
    UnencodableResultError,
    oversize_dead_letter,
    read_events,
    split_dead_letters,
    write_dead_letters,
    write_output,
)
from eventio.kafka_config import RECORD_OVERHEAD
from eventio.settings import TEXT, FlowSettings, Setting, SettingsError, choice, integer, number
from flows import BROKER, Quickstart
from operators import key_by
from recovery.epoch_interval import epoch_interval_s
from recovery.fixed_settings import recovery_directory
from recovery.transactional_sink import TransactionalKafkaSink, exactly_once_output

Stats = tuple[int, float, int]
"""(events, sum of values, events with a value) of one user."""

GUARANTEES = ("exactly_once", "at_least_once")
SETTINGS = FlowSettings(
    "exactly_once",
    SHARED_SETTINGS,
    (Setting("DELIVERY_GUARANTEE", choice(*GUARANTEES), "exactly_once",
             "`at_least_once`: the flows' checked at-least-once writer instead (Flink's `DeliveryGuarantee`)"),
     Setting("TRANSACTIONAL_ID_PREFIX", TEXT, "exactly-once",
             "prefix of the sink's transactional ids: one per running deployment, or two fence each other (the "
             "Kubernetes entrypoint's default is `NAMESPACE.STATEFULSET`)"),
     Setting("SINK_PARTITIONS", integer(1), 4, "transactional producers (fixed for a recovery store)"),
     Setting("SINK_TIMEOUT_S", number(0, unit="seconds"), 30.0,
             "how long a Kafka call of the sink may take before the flow stops"),
     Setting("TRANSACTION_TIMEOUT_MS", integer(0, unit="milliseconds"), 0,
             "`transaction.timeout.ms`; 0: twice the snapshot interval (`-s`) plus `SINK_TIMEOUT_S`, at least "
             "60 s (the flow refuses one not larger than the interval)"),
     Setting("HEARTBEAT_MS", integer(0, unit="milliseconds"), 500,
             "on an endless input, how often an idle flow still closes its epochs' transactions; 0: off")),
)
QUICKSTART = Quickstart(
    "", "", f"sessions --count 20000 --topic events --bootstrap {BROKER}",
    f"python -m recovery.directories init state/ 1 && KAFKA_BOOTSTRAP_SERVERS={BROKER} STOP_AT_END=true",
    file_run=False, run_options="-r state/ -s 1 -b 0")
"""How to make input for it and run it."""
EXAMPLE_OUTPUT = {"user_id": "u00342", "event_id": "e00000007", "count": 3, "running_avg": 19.12}
"""A real output record (of the generator's events: a user's third)."""
RECOVERY_HOWTO = ("make the recovery directories and run it with them:\n"
                  "  python -m recovery.directories init state/ 1\n"
                  "  python -m bytewax.run flows.exactly_once:flow -r state/ -s 1 -b 0")


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
        progress.TALLY.add(progress.DEAD_LETTERS, 1)
        letter = letter.fit(limit)
        route = f"{letter.source}:{letter.partition}"
        return route, KafkaSinkMessage(letter.key, letter.value, topic=topic, headers=letter.headers())

    return message


@exits_on_configuration_error
def build(**overrides: Any) -> Dataflow:
    """The flow, configured by `SETTINGS` from the environment and
    `overrides` (their lower-case names)."""
    s, cfg = configure(SETTINGS, overrides)
    guarantee = s["delivery_guarantee"]
    if cfg.output_path:
        raise SettingsError(["OUTPUT_PATH: flows.exactly_once writes its results to Kafka (OUTPUT_TOPIC); unset it"])
    if guarantee == "exactly_once" and cli_settings() is not None and recovery_directory() is None:
        raise SettingsError([f"exactly-once output needs Bytewax recovery (-r); {RECOVERY_HOWTO}"])
    limit = cfg.kafka.max_message_bytes

    flow = Dataflow("exactly_once")
    src = read_events(flow, "read", cfg)
    by_user = key_by("by_user", src.events, attrgetter("user_id"))
    stats = op.stateful_map("running_stats", by_user, running_stats)
    if guarantee == "at_least_once":
        unencodable = write_output("out", op.map("unkey", stats, itemgetter(1)), cfg, key_of=itemgetter("user_id"))
        write_dead_letters("dlq", src.errors, cfg, unencodable)
        return flow
    messages, unencodable = split_dead_letters("encoded", op.map("encode", stats, result_messages(limit)),
                                               counted_as=progress.RESULTS)
    dead_letters = cfg.dead_letter_output
    if dead_letters.path:
        write_dead_letters("dlq", src.errors, cfg, unencodable)
    else:
        errors = op.merge("all_errors", src.errors, unencodable)
        dead = op.map("dlq_encode", errors, dead_letter_messages(cfg.dead_letter_topic, limit))
        messages = op.merge("with_dead_letters", messages, dead)
    transaction_timeout_ms = s["transaction_timeout_ms"]
    sink = TransactionalKafkaSink(
        cfg.kafka,
        cfg.output_topic,
        transactional_id_prefix=s["transactional_id_prefix"],
        partitions=s["sink_partitions"],
        add_config={"transaction.timeout.ms": transaction_timeout_ms} if transaction_timeout_ms else None,
        timeout_s=s["sink_timeout_s"],
        epoch_interval_s=epoch_interval_s(),
        dead_letter_topic=cfg.dead_letter_topic,
        endpoint=cfg.results.describe,
        partitioner=cfg.output_partitioner,
    )
    # Bounded input ends the flow; an endless heartbeat would keep it running.
    bounded = cfg.stop_at_end or bool(cfg.input_path)
    heartbeat_ms = s["heartbeat_ms"]
    heartbeat = None if bounded or heartbeat_ms <= 0 else timedelta(milliseconds=heartbeat_ms)
    exactly_once_output("out", messages, sink, heartbeat)
    return flow


__getattr__ = lazy_flow(build)
