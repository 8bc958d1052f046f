"""Whether a Kafka client can reach its brokers, checked at start-up and
watched while it runs, so a flow fails fast and says why.

At start-up every Kafka endpoint of a flow (its input topics and each output
topic) is asked for its metadata within `KAFKA_CONNECT_TIMEOUT_S`
(`check_topic`). While running, each client's `ClientHealth` listens to
librdkafka's error and statistics callbacks: once no broker has been up for
`KAFKA_CONNECT_TIMEOUT_S` (librdkafka reconnecting all the while), or after a
fatal client error, `check()` raises `KafkaUnavailableError`, whose message
names the brokers, the topic and the variables to look at. The flows pass it
to `eventio.bytewax_run.stop_run`.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Callable, Optional, Union

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from eventio.kafka_config import KafkaSettings
from eventio.kafka_log import LIBRDKAFKA_LOG

_DOWN = frozenset({KafkaError._ALL_BROKERS_DOWN, KafkaError._AUTHENTICATION, KafkaError._SSL,
                   KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError.TOPIC_AUTHORIZATION_FAILED,
                   KafkaError.CLUSTER_AUTHORIZATION_FAILED})
"""Errors after which the client is taken to be cut off until a broker is up again."""
_TIMING = re.compile(r"\s*\(after \d+ms in state [A-Z_]+[^)]*\)")
STATS_INTERVAL_MS = 1000


class KafkaUnavailableError(RuntimeError):
    """A Kafka cluster a flow needs cannot be reached or refuses it."""


def _reason(error: KafkaError, settings: KafkaSettings) -> str:
    return settings.redact(_TIMING.sub("", error.str()))


class ClientHealth:
    """What one client last heard from its brokers. `endpoint` names what it
    serves, e.g. "input topic 'events' (INPUT_TOPIC)". `config()` gives the
    callbacks to put in the client's configuration; `on_stats` may be
    handed statistics already parsed by another statistics callback."""

    def __init__(self, settings: KafkaSettings, endpoint: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self._clock = clock
        self.down_since: Optional[float] = None
        self.last_error: Optional[str] = None
        self.fatal: Optional[str] = None

    def config(self, stats: bool = True) -> dict[str, Any]:
        """`logger` and `error_cb` (and `stats_cb`, unless the caller has its
        own statistics callback that forwards to `on_stats`)."""
        out: dict[str, Any] = {"logger": LIBRDKAFKA_LOG.for_client(self.settings.redact), "error_cb": self.on_error,
                               "statistics.interval.ms": STATS_INTERVAL_MS}
        if stats:
            out["stats_cb"] = self.on_stats_json
        return out

    def on_error(self, error: KafkaError) -> None:
        self.last_error = _reason(error, self.settings)
        if error.fatal():
            self.fatal = self.last_error
        if error.code() in _DOWN and self.down_since is None:
            self.down_since = self._clock()

    def on_stats_json(self, stats: str) -> None:
        self.on_stats(json.loads(stats))

    def on_stats(self, stats: dict[str, Any]) -> None:
        """A broker the client is connected to clears the alarm."""
        if self.down_since is not None and any(b.get("state") == "UP" for b in stats.get("brokers", {}).values()):
            self.down_since = None

    def up(self) -> None:
        """The client just heard from a broker (records arrived, were acknowledged)."""
        self.down_since = None

    def check(self) -> None:
        """`KafkaUnavailableError` if the client has been cut off for longer
        than `KAFKA_CONNECT_TIMEOUT_S`, or hit a fatal error."""
        if self.fatal is not None:
            raise KafkaUnavailableError(
                f"Kafka client for {self.endpoint} failed on brokers {self.settings.describe_brokers()}: {self.fatal}")
        if self.down_since is not None and self._clock() - self.down_since > self.settings.connect_timeout_s:
            raise self.lost()

    def lost(self, doing: str = "") -> KafkaUnavailableError:
        """The error of a client that lost its brokers (while `doing`)."""
        timeout = self.settings.connect_timeout_s
        while_ = f" while {doing}" if doing else ""
        return KafkaUnavailableError(
            f"lost Kafka: no broker of {self.settings.describe_brokers()} answered for {timeout:g} s "
            f"(KAFKA_CONNECT_TIMEOUT_S){while_} for {self.endpoint}; last error: {self.last_error or 'none'}. "
            "The run stops; resume it once the brokers are reachable"
        )

    def unreachable(self, detail: Optional[str] = None) -> KafkaUnavailableError:
        """The error of a client that could not reach its brokers at start-up."""
        timeout = self.settings.connect_timeout_s
        last = detail or self.last_error or "no answer"
        return KafkaUnavailableError(
            f"cannot reach Kafka: no broker of {self.settings.describe_brokers()} answered within {timeout:g} s "
            f"(KAFKA_CONNECT_TIMEOUT_S) for {self.endpoint}; last error: {last}"
        )


Client = Union[Consumer, Producer]


def check_topic(client: Client, health: ClientHealth, topic: str) -> int:
    """The partition count of `topic`, asked by a client not yet assigned any
    partition (it is polled once) of the cluster within
    `KAFKA_CONNECT_TIMEOUT_S`; `KafkaUnavailableError` naming the brokers,
    the topic and the variables when the cluster does not answer, refuses
    access, or has no such topic."""
    timeout = health.settings.connect_timeout_s
    try:
        meta = client.list_topics(topic, timeout=timeout).topics.get(topic)
        error = None if meta is None else meta.error
    except KafkaException as ex:
        meta, error = None, ex.args[0]
    client.poll(0)  # deliver the error and log callbacks queued meanwhile (not yet assigned: no records)
    if meta is not None and error is None and meta.partitions:
        health.up()
        return len(meta.partitions)
    if error is not None and error.code() not in (KafkaError._TRANSPORT, KafkaError._TIMED_OUT):
        raise KafkaUnavailableError(
            f"Kafka brokers {health.settings.describe_brokers()} refused {health.endpoint}: "
            f"{_reason(error, health.settings)}")
    if health.last_error is None and meta is not None:
        raise KafkaUnavailableError(
            f"Kafka brokers {health.settings.describe_brokers()} have no partitions for {health.endpoint}")
    raise health.unreachable()
