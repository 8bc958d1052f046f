"""Kafka client settings from the environment: the one place that builds the
configuration of every consumer, producer and admin client a flow makes.

Where a librdkafka property comes from, lowest precedence first:

1. the flow's tuned defaults for that kind of client (`linger.ms=5` and lz4
   for producers, `queued.min.messages` for consumers, ...);
2. `KAFKA_PROPERTIES_FILE`: a Java-style properties file (`key=value` or
   `key: value`, `#`/`!` comments, `\\` line continuations), as Flink's
   `--kafka.properties` or a Kafka `client.properties`. Its
   `sasl.jaas.config` for the PLAIN and SCRAM login modules becomes
   librdkafka's `sasl.username` and `sasl.password`;
3. `KAFKA_PROPERTY_<NAME>` variables: `NAME` lower-cased with `_` as `.`
   (`KAFKA_PROPERTY_SASL_MECHANISM=SCRAM-SHA-256` is `sasl.mechanism`);
4. what the flow owns for its guarantees, which no property overrides:
   `bootstrap.servers` when `KAFKA_BOOTSTRAP_SERVERS` is set, the producers'
   `message.max.bytes` (= `MAX_MESSAGE_BYTES`), transactional ids,
   `isolation.level`, idempotence, group ids, offsets and callbacks.

`MAX_MESSAGE_BYTES` and `message.max.bytes` are one setting: either may be
given, and both only if equal. Values are never shown: `repr`, error messages
and forwarded log lines name properties and the variable or file that set
them, and `redact` blanks every secret value out of text from librdkafka.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, TypeVar, Union

from confluent_kafka import KafkaException

from eventio.settings import ConfigurationError

PROPERTY_PREFIX = "KAFKA_PROPERTY_"
DEFAULT_BROKERS = "localhost:9092"
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000
"""librdkafka's own `message.max.bytes` default (Kafka brokers take 1,048,588)."""
DEFAULT_CONNECT_TIMEOUT_S = 30.0
RECORD_OVERHEAD = 36
"""Bytes librdkafka adds to a record's key, value and headers when it checks
it against `message.max.bytes` (the most a v2 record's framing takes)."""
PRODUCER_ONLY = frozenset({"message.max.bytes"})
"""Properties given to producers only: for a consumer `message.max.bytes` is
a request limit that must stay below its fetch limits."""

_SECRET = re.compile(r"password|secret|jaas|token|credential|\.pem$|ssl\.key\.|oauthbearer\.config")
_JAAS = re.compile(r"""\b(username|password)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([^\s;]+))""")
_JAAS_MODULES = ("PlainLoginModule", "ScramLoginModule")
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|(.))", re.DOTALL)
_PROPERTY = re.compile(r"((?:\\.|[^\\=:\s])*)[ \t\f]*[=:]?[ \t\f]*(.*)", re.DOTALL)

T = TypeVar("T")


def wire_size(key: Optional[bytes], value: Optional[bytes], headers: Optional[Sequence[tuple[str, bytes]]]) -> int:
    """The size librdkafka holds a record to against `message.max.bytes`."""
    size = RECORD_OVERHEAD + (len(key) if key else 0) + (len(value) if value else 0)
    if headers:
        size += sum(len(name.encode()) + len(data) + 10 for name, data in headers)
    return size


class KafkaConfigError(ConfigurationError):
    """Kafka client settings that cannot be used; the message names where they were set."""


def is_secret(name: str) -> bool:
    """Whether the value of property `name` must never be shown."""
    return _SECRET.search(name) is not None


def parse_properties(text: str, origin: str) -> dict[str, str]:
    """`key=value` pairs of a Java properties text; `origin` names the file in
    errors. A key ends at the first unescaped `=`, `:` or blank; a line
    ending in an odd number of backslashes continues on the next."""
    out: dict[str, str] = {}
    pending = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.lstrip(" \t\f")
        if not pending and (not line or line[0] in "#!"):
            continue
        if (len(line) - len(line.rstrip("\\"))) % 2:
            pending += line[:-1]
            continue
        line, pending = pending + line, ""
        match = _PROPERTY.match(line)
        if match is None or not match.group(1):
            raise KafkaConfigError(f"{origin} line {number}: a property without a name")
        out[_unescape(match.group(1))] = _unescape(match.group(2))
    if pending:
        match = _PROPERTY.match(pending)
        if match is not None and match.group(1):
            out[_unescape(match.group(1))] = _unescape(match.group(2))
    return out


def _unescape(text: str) -> str:
    """Java properties escapes: `\\uXXXX`, `\\t`, `\\n`, `\\r`, `\\f`, and any
    other escaped character as itself."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)) if m.group(1) else _ESCAPES.get(m.group(2), m.group(2)),
                       text)


def _from_jaas(jaas: str, origin: str) -> dict[str, str]:
    """librdkafka's `sasl.username`/`sasl.password` from a Java
    `sasl.jaas.config` of the PLAIN or SCRAM login module."""
    if not any(module in jaas for module in _JAAS_MODULES):
        raise KafkaConfigError(
            f"sasl.jaas.config in {origin} names a login module librdkafka has no counterpart for; "
            "only PlainLoginModule and ScramLoginModule (username and password) are translated"
        )
    found = {m.group(1): next(g for g in m.groups()[1:] if g is not None) for m in _JAAS.finditer(jaas)}
    if set(found) != {"username", "password"}:
        raise KafkaConfigError(f"sasl.jaas.config in {origin} must give both username and password")
    return {"sasl.username": _unescape(found["username"]), "sasl.password": _unescape(found["password"])}


def env_properties(env: Mapping[str, str]) -> dict[str, str]:
    """The librdkafka properties of `KAFKA_PROPERTY_*` variables."""
    return {name[len(PROPERTY_PREFIX):].lower().replace("_", "."): value
            for name, value in env.items() if name.startswith(PROPERTY_PREFIX) and len(name) > len(PROPERTY_PREFIX)}


def _property_var(name: str) -> str:
    return PROPERTY_PREFIX + name.upper().replace(".", "_")


@dataclass(frozen=True)
class KafkaSettings:
    """Brokers, librdkafka properties and limits shared by every Kafka client
    of a flow; `consumer`, `producer` and `admin` make their configurations
    (see the module docstring for the precedence)."""

    brokers: tuple[str, ...] = (DEFAULT_BROKERS,)
    brokers_origin: str = "default; set KAFKA_BOOTSTRAP_SERVERS"
    properties: Mapping[str, str] = field(default_factory=dict, repr=False)
    origins: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Where each property was set, for messages: a variable or the file."""
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    @classmethod
    def resolve(
        cls,
        *,
        bootstrap_servers: Optional[str] = None,
        properties_file: Optional[str] = None,
        properties: Optional[Mapping[str, str]] = None,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        max_message_bytes: Optional[int] = None,
    ) -> "KafkaSettings":
        """Settings from `KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_PROPERTIES_FILE`, the
        `KAFKA_PROPERTY_*` values and `MAX_MESSAGE_BYTES` (None: not set)."""
        merged: dict[str, str] = {}
        origins: dict[str, str] = {}
        if properties_file:
            origin = f"KAFKA_PROPERTIES_FILE ({properties_file})"
            try:
                text = Path(properties_file).read_text(encoding="utf-8")
            except OSError as ex:
                raise KafkaConfigError(f"cannot read {origin}: {ex.strerror}") from None
            from_file = parse_properties(text, origin)
            jaas = from_file.pop("sasl.jaas.config", None)
            if jaas is not None:
                from_file.update(_from_jaas(jaas, origin))
            merged.update(from_file)
            origins.update(dict.fromkeys(from_file, origin))
        for name, value in (properties or {}).items():
            merged[name] = value
            origins[name] = _property_var(name)
        listed = merged.pop("bootstrap.servers", None)
        if bootstrap_servers:
            brokers, brokers_origin = bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS"
        elif listed:
            brokers, brokers_origin = listed, f"bootstrap.servers in {origins['bootstrap.servers']}"
        else:
            brokers, brokers_origin = DEFAULT_BROKERS, cls.brokers_origin
        origins.pop("bootstrap.servers", None)
        limit = merged.pop("message.max.bytes", None)
        if limit is not None:
            where = origins.pop("message.max.bytes")
            try:
                given = int(limit)
            except ValueError:
                raise KafkaConfigError(f"message.max.bytes in {where} must be an integer") from None
            if max_message_bytes is not None and max_message_bytes != given:
                raise KafkaConfigError(
                    f"MAX_MESSAGE_BYTES ({max_message_bytes}) and message.max.bytes in {where} ({given}) differ: "
                    "they are one setting (the largest record the flow reads or writes); give one of them"
                )
            max_message_bytes = given
        limit_bytes = DEFAULT_MAX_MESSAGE_BYTES if max_message_bytes is None else max_message_bytes
        if limit_bytes < 1000:
            raise KafkaConfigError(f"MAX_MESSAGE_BYTES must be at least 1000 (librdkafka's minimum), got {limit_bytes}")
        if connect_timeout_s <= 0:
            raise KafkaConfigError(f"KAFKA_CONNECT_TIMEOUT_S must be positive, got {connect_timeout_s:g}")
        return cls(
            brokers=tuple(b.strip() for b in brokers.split(",") if b.strip()),
            brokers_origin=brokers_origin,
            properties=merged,
            origins=origins,
            connect_timeout_s=connect_timeout_s,
            max_message_bytes=limit_bytes,
        )

    @classmethod
    def of(cls, kafka: Union["KafkaSettings", str, Sequence[str]]) -> "KafkaSettings":
        """`kafka` itself, or plain settings for a broker list (as in tests)."""
        if isinstance(kafka, KafkaSettings):
            return kafka
        brokers = kafka if isinstance(kafka, str) else ",".join(kafka)
        return cls.resolve(bootstrap_servers=brokers)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(self.brokers)

    def describe_brokers(self) -> str:
        """The brokers and the setting that named them, for messages."""
        return f"{self.bootstrap_servers} ({self.brokers_origin})"

    def _config(self, tuned: Mapping[str, Any], owned: Mapping[str, Any], producer: bool) -> dict[str, Any]:
        props = self.properties if producer else {k: v for k, v in self.properties.items() if k not in PRODUCER_ONLY}
        # A request a broker does not answer fails after the connect timeout
        # (librdkafka's default is 60 s), so a hung broker is noticed as soon
        # as one that refuses connections.
        timeout = {"socket.timeout.ms": int(min(self.connect_timeout_s, 60) * 1000)}
        return {**timeout, **tuned, **props, "bootstrap.servers": self.bootstrap_servers, **owned}

    def consumer(self, tuned: Mapping[str, Any] = {}, owned: Mapping[str, Any] = {}) -> dict[str, Any]:
        """A consumer's configuration: `tuned` defaults, then the user's
        properties, then the brokers and what the caller `owned`."""
        return self._config(tuned, owned, producer=False)

    def producer(self, tuned: Mapping[str, Any] = {}, owned: Mapping[str, Any] = {}) -> dict[str, Any]:
        """A producer's configuration; `message.max.bytes` is always `MAX_MESSAGE_BYTES`."""
        return self._config(tuned, {"message.max.bytes": self.max_message_bytes, **owned}, producer=True)

    def admin(self, owned: Mapping[str, Any] = {}) -> dict[str, Any]:
        """An admin client's configuration: the user's properties and the brokers."""
        return self._config({}, owned, producer=False)

    def redact(self, text: str) -> str:
        """`text` with the value of every secret property blanked out."""
        for name, value in self.properties.items():
            if value and is_secret(name):
                text = text.replace(value, "***")
        return text

    def origin_of(self, name: str) -> str:
        return self.origins.get(name, "the flow's defaults")

    def make(self, client: Callable[[dict[str, Any]], T], config: dict[str, Any]) -> T:
        """`client(config)`, or a `KafkaConfigError` that names where the
        offending property was set, without its value."""
        try:
            return client(config)
        except (KafkaException, ValueError, TypeError) as ex:
            text = self.redact(ex.args[0].str() if isinstance(ex, KafkaException) else str(ex))
            named = re.search(r'property:? "?([a-z0-9._]+)', text)
            where = f" (set in {self.origin_of(named.group(1))})" if named else ""
            raise KafkaConfigError(f"invalid Kafka client settings{where}: {text}") from None

