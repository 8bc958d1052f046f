"""Which Kafka partition an output record goes to, as Flink's
`KafkaRecordSerializationSchema` partitioner (`FlinkKafkaPartitioner`) chooses.

By default a record is placed by its key, as librdkafka's default
partitioner (`consistent_random`) places it: CRC-32 of the key modulo the
topic's partition count. `OUTPUT_PARTITION_BY=<field>` places the results
by a field of each result instead (the CRC-32 of its value as text, so
`event_type=click` always lands on one partition); a result without the
field is placed by its key. In the operator API a sink takes any
`Partitioner`, a callable such as Flink's `partition(record, key, value,
partitions)`.
"""

from __future__ import annotations

import threading
import zlib
from typing import Any, Callable, Optional

from bytewax.connectors.kafka import KafkaSinkMessage
from confluent_kafka import Producer

from eventio import strict_json
from eventio.kafka_config import KafkaSettings
from eventio.kafka_health import ClientHealth, check_topic

Partitioner = Callable[[Any, Optional[bytes], Optional[bytes], int], Optional[int]]
"""`partition(record, key, value, partitions)`: the partition (0 to
`partitions - 1`) of the output `record` (the item the sink step receives)
encoded as `key` and `value`; None leaves it to the key (librdkafka)."""


class PartitionerError(ValueError):
    """A partitioner chose a partition the topic does not have."""


def key_partition(key: bytes, partitions: int) -> int:
    """Where librdkafka's default partitioner puts a record with `key`."""
    return zlib.crc32(key) % partitions


def field_partitioner(name: str) -> Partitioner:
    """Place each record by its field `name` (see the module docstring):
    a dict's item, an object's attribute (an `Event`'s unknown fields
    included) or, for a `KafkaSinkMessage`, the field of its JSON value."""

    def partition(record: Any, key: Optional[bytes], value: Optional[bytes], partitions: int) -> Optional[int]:
        found = _field(record, name)
        if found is None:
            return None
        text = found if isinstance(found, str) else strict_json.encode(found).decode()
        return key_partition(text.encode(), partitions)

    return partition


def _field(record: Any, name: str) -> Any:
    if isinstance(record, tuple) and len(record) == 2 and isinstance(record[1], KafkaSinkMessage):
        record = record[1]
    if isinstance(record, KafkaSinkMessage):
        try:
            record = strict_json.parse(record.value) if record.value is not None else None
        except ValueError:
            return None
    if isinstance(record, dict):
        return record.get(name)
    found = getattr(record, name, None)
    if found is None:
        extra = getattr(record, "extra", None)
        found = extra.get(name) if isinstance(extra, dict) else None
    return found


def output_partitioner(raw: Optional[str]) -> Optional[Partitioner]:
    """`OUTPUT_PARTITION_BY`: None (unset or empty: by key) or a field name."""
    name = (raw or "").strip()
    if not name:
        return None
    if not name.isidentifier():
        raise ValueError(f"OUTPUT_PARTITION_BY must be the name of a field of the results (such as event_type), "
                         f"got {raw!r}")
    return field_partitioner(name)


def checked(partition: Optional[int], partitions: int, topic: str) -> Optional[int]:
    """`partition` if `topic` has it (or None); else `PartitionerError`."""
    if partition is not None and not 0 <= partition < partitions:
        raise PartitionerError(f"the output partitioner chose partition {partition} of topic {topic!r}, "
                               f"which has partitions 0 to {partitions - 1}")
    return partition


class PartitionCounts:
    """Partition counts of output topics, asked of the cluster once per
    topic with one metadata client (made on first use) within
    `KAFKA_CONNECT_TIMEOUT_S`; `KafkaUnavailableError` when it does not answer."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._client: Optional[Producer] = None

    def __call__(self, topic: str) -> int:
        count = self._counts.get(topic)
        if count is None:
            health = ClientHealth(self._settings, f"output topic {topic!r}")
            with self._lock:
                if self._client is None:
                    self._client = self._settings.make(Producer, self._settings.producer({}, health.config()))
                count = self._counts[topic] = check_topic(self._client, health, topic)
        return count
