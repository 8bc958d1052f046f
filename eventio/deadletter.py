"""Dead letters: input that could not be turned into an event, kept whole
as far as the output allows.

A dead letter holds the original key and value bytes, where they came from
(topic or file, partition, offset or line) and why they were rejected. It is
written as a JSON line to `ERROR_OUTPUT_PATH`, or to `DLQ_TOPIC` with the
original bytes as key and value and the provenance in headers.

A dead letter must itself fit in one Kafka record of `MAX_MESSAGE_BYTES`
(librdkafka's `message.max.bytes`): `fit` cuts the value (then the key) of a
larger one and records the original size and the SHA-256 of the original
value bytes (`dlq.original.size`, `dlq.original.sha256` headers;
`original_size`, `original_sha256` in the JSON form), the same in files and
on Kafka.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any, Optional

from eventio import strict_json
from eventio.kafka_config import wire_size

HEADER_PREFIX = "dlq."
FIT_MARGIN = 1024
"""Bytes a fitted dead letter leaves free below the limit (an eighth of
smaller limits), for the broker's batch framing."""
MAX_REASON = 4096
"""The most characters of a reason a fitted dead letter keeps."""


@dataclass(frozen=True)
class DeadLetter:
    """Rejected input with its provenance and the reason."""

    source: str
    partition: Optional[int]
    offset: Optional[int]
    key: Optional[bytes]
    value: Optional[bytes]
    error_class: str
    message: str
    original_size: Optional[int] = None
    """Size of the original value when `value` was cut to fit, else None."""
    original_sha256: Optional[str] = None
    """Hex SHA-256 of the original value when `value` was cut to fit."""

    @classmethod
    def of(
        cls,
        ex: BaseException,
        *,
        source: str,
        value: Optional[bytes],
        key: Optional[bytes] = None,
        partition: Optional[int] = None,
        offset: Optional[int] = None,
    ) -> "DeadLetter":
        return cls(source, partition, offset, key, value, type(ex).__name__, str(ex))

    def fit(self, limit: int) -> "DeadLetter":
        """This dead letter if its Kafka record (key, value and headers) takes
        at most `limit - FIT_MARGIN` bytes (`limit * 7 / 8` for small ones), else a copy cut to that size: the
        value keeps its first bytes, then the key, the reason its first
        `MAX_REASON` characters; the original size and SHA-256 of the value
        are recorded (of the value before any earlier cut)."""
        budget = limit - min(FIT_MARGIN, limit // 8)
        if wire_size(self.key, self.value, self.headers()) <= budget:
            return self
        value = self.value or b""
        cut = dataclasses.replace(
            self,
            message=self.message[:MAX_REASON],
            original_size=len(value) if self.original_size is None else self.original_size,
            original_sha256=hashlib.sha256(value).hexdigest() if self.original_sha256 is None else self.original_sha256,
        )
        room = budget - wire_size(cut.key, None, cut.headers())
        if room < 0:
            key = (cut.key or b"")[: max(0, len(cut.key or b"") + room)]
            cut = dataclasses.replace(cut, key=key)
            room = budget - wire_size(key, None, cut.headers())
        return dataclasses.replace(cut, value=value[: max(0, room)])

    @property
    def cut(self) -> bool:
        """Whether `fit` cut this dead letter's value."""
        return self.original_size is not None

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers carrying provenance and reason (and, for a cut dead
        letter, the original size and SHA-256)."""
        pairs = [
            ("source.topic", self.source),
            ("source.partition", "" if self.partition is None else str(self.partition)),
            ("source.offset", "" if self.offset is None else str(self.offset)),
            ("error.class", self.error_class),
            ("error.message", self.message),
        ]
        if self.original_size is not None:
            pairs += [("original.size", str(self.original_size)), ("original.sha256", self.original_sha256 or "")]
        return [(HEADER_PREFIX + k, v.encode("utf-8", "backslashreplace")) for k, v in pairs]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: readable payload text plus exact base64 bytes (and, for
        a cut dead letter, `original_size` and `original_sha256`)."""
        out = {
            "source": self.source,
            "partition": self.partition,
            "offset": self.offset,
            "error_class": self.error_class,
            "reason": self.message,
            "payload": None if self.value is None else self.value.decode("utf-8", "replace"),
            "payload_b64": None if self.value is None else base64.b64encode(self.value).decode(),
            "key_b64": None if self.key is None else base64.b64encode(self.key).decode(),
        }
        if self.original_size is not None:
            out["original_size"] = self.original_size
            out["original_sha256"] = self.original_sha256
        return out

    def to_json_bytes(self) -> bytes:
        """The JSON form as UTF-8; never fails: text strict JSON cannot hold
        (a lone surrogate in a reason) is written with its escape spelled out."""
        try:
            return strict_json.encode(self.to_dict())
        except strict_json.UnencodableError:
            return strict_json.encode({k: _printable(v) for k, v in self.to_dict().items()})

    def to_json(self) -> str:
        return self.to_json_bytes().decode("utf-8")


def _printable(v: Any) -> Any:
    return v.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(v, str) else v
