"""Dead letters: input that could not be turned into an event, kept whole.

A dead letter holds the original key and value bytes, where they came from
(topic or file, partition, offset or line) and why they were rejected. It is
written as a JSON line to `ERROR_OUTPUT_PATH`, or to `DLQ_TOPIC` with the
original bytes as key and value and the provenance in headers.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Optional

from eventio import strict_json

HEADER_PREFIX = "dlq."


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

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers carrying provenance and reason."""
        pairs = [
            ("source.topic", self.source),
            ("source.partition", "" if self.partition is None else str(self.partition)),
            ("source.offset", "" if self.offset is None else str(self.offset)),
            ("error.class", self.error_class),
            ("error.message", self.message),
        ]
        return [(HEADER_PREFIX + k, v.encode("utf-8", "backslashreplace")) for k, v in pairs]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: readable payload text plus exact base64 bytes."""
        return {
            "source": self.source,
            "partition": self.partition,
            "offset": self.offset,
            "error_class": self.error_class,
            "reason": self.message,
            "payload": None if self.value is None else self.value.decode("utf-8", "replace"),
            "payload_b64": None if self.value is None else base64.b64encode(self.value).decode(),
            "key_b64": None if self.key is None else base64.b64encode(self.key).decode(),
        }

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
