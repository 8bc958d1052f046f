"""Avro on the Confluent wire format, with a schema registry.

A message value is the magic byte 0, the writer schema's registry id as a
4-byte big-endian integer, then the Avro binary encoding of the record. The
deserializer looks the writer schema up by id (once; it is cached) and
resolves it to the flow's reader schema by Avro's schema-resolution rules, so
records written with any older compatible schema (fields added with defaults,
renamed through aliases, numbers promoted, unions widened) read as the current
one without a chain of fallbacks.

The serializer registers its schema under a subject chosen by a naming
strategy, after checking compatibility with the versions already registered
there (BACKWARD by default). The check runs client-side, implementing the
Avro specification's resolution rules on the parsed schemas, because the
registry client's `mock://` registry used in tests enforces none; against a
real registry the server applies its own configured level as well.

Registry calls are retried with bounded exponential backoff; when the
registry stays unreachable `RegistryUnavailableError` is raised, which flows
let crash so that recovery replays the input once it is back.
"""

from __future__ import annotations

import io
import json
import struct
import time
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from typing import Any, Callable, Mapping, Optional, Sequence, TypeVar, Union

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from eventio.event import Event

MAGIC_BYTE = 0
HEADER = struct.Struct(">BI")
HEADER_SIZE = HEADER.size
CURRENT_VERSION = 3

AvroSchema = Union[str, list, dict]
T = TypeVar("T")

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_COMPLEX = frozenset({"record", "enum", "array", "map", "fixed"})
_PROMOTIONS = frozenset(
    {
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    }
)


class AvroError(ValueError):
    """Bytes that are not a readable Avro record; the message says why."""


class WireFormatError(AvroError):
    """Too short for the wire-format header, or a magic byte other than 0."""


class UnknownSchemaError(AvroError):
    """The registry does not know the schema id in the header."""


class UnsupportedSchemaError(AvroError):
    """The writer schema is not a self-contained Avro schema."""


class AvroDecodeError(AvroError):
    """The payload does not decode under its writer schema, or the writer
    schema does not resolve to the reader schema for this record."""


class SchemaIncompatibleError(ValueError):
    """A schema refused at registration; `field` names the offending field
    (a dotted path, `[]` for array items and `{}` for map values)."""

    def __init__(self, message: str, *, field: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason


class RegistryUnavailableError(RuntimeError):
    """The schema registry could not be reached after every retry. Not bad
    input: flows let it crash the worker so that nothing is lost."""


def user_event_schema(version: int = CURRENT_VERSION) -> dict[str, Any]:
    """The user event schema of one version (1, 2 or 3) as a JSON object."""
    path = resources.files("eventio") / "schemas" / f"user_event.v{version}.avsc"
    if not path.is_file():
        raise ValueError(f"no user event schema version {version}")
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def schema_object(schema: AvroSchema) -> Any:
    """A schema as a JSON value: JSON text is parsed, a primitive name kept."""
    if isinstance(schema, str) and schema not in _PRIMITIVES:
        return json.loads(schema)
    return schema


def canonical_json(schema: AvroSchema) -> str:
    """The schema as compact JSON: the form registered and compared."""
    return json.dumps(schema_object(schema), separators=(",", ":"))


# --- configuration ---------------------------------------------------------


class SubjectStrategy(str, Enum):
    """How the registry subject is named, as Confluent's strategies:
    `topic` -> `<topic>-value`, `record` -> `<namespace.name>`,
    `topic_record` -> `<topic>-<namespace.name>`."""

    TOPIC = "topic"
    RECORD = "record"
    TOPIC_RECORD = "topic_record"

    def subject(self, topic: str, record_name: Optional[str]) -> str:
        if self is SubjectStrategy.TOPIC:
            return f"{topic}-value"
        if not record_name:
            raise ValueError(f"subject strategy {self.value!r} needs a named (record) schema")
        if self is SubjectStrategy.RECORD:
            return record_name
        return f"{topic}-{record_name}"


class Compatibility(str, Enum):
    """Registry compatibility levels. BACKWARD: the new schema reads data
    written with the latest one; FORWARD: the latest reads the new one's
    data; FULL: both; `_TRANSITIVE`: against every earlier version."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        return self.value.startswith(("FORWARD", "FULL"))


@dataclass(frozen=True)
class Retry:
    """Bounded exponential backoff for registry calls: `attempts` tries in
    all, waiting `base_delay_s * 2**n` (capped at `max_delay_s`) between them.
    `sleep` is injectable so tests do not wait."""

    attempts: int = 5
    base_delay_s: float = 0.1
    max_delay_s: float = 5.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"retry attempts must be at least 1, got {self.attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("retry delays must not be negative")

    def delays(self) -> list[float]:
        """The waits between consecutive attempts."""
        return [min(self.base_delay_s * 2**n, self.max_delay_s) for n in range(self.attempts - 1)]

    def call(self, fn: Callable[[], T], what: str) -> T:
        """`fn()`, retried on transient failures. A definitive answer from the
        registry (a 4xx other than 408/429) is raised at once, unchanged."""
        last: Optional[BaseException] = None
        for delay in [*self.delays(), None]:
            try:
                return fn()
            except Exception as ex:  # noqa: BLE001 - classified just below
                if _is_definitive(ex):
                    raise
                last = ex
            if delay is not None:
                self.sleep(delay)
        raise RegistryUnavailableError(
            f"schema registry unavailable after {self.attempts} attempts while {what}: "
            f"{type(last).__name__}: {last}"
        ) from last


def _is_definitive(ex: BaseException) -> bool:
    return isinstance(ex, SchemaRegistryError) and 400 <= ex.http_status_code < 500 and (
        ex.http_status_code not in (408, 429)
    )


def _is_not_found(ex: BaseException) -> bool:
    return isinstance(ex, SchemaRegistryError) and ex.http_status_code == 404


_clients: dict[str, SchemaRegistryClient] = {}


def registry_client(url: str) -> SchemaRegistryClient:
    """The process's registry client for `url`, shared so that its schema
    cache is too. `mock://<scope>` gives the in-memory mock, one per scope
    (plain `SchemaRegistryClient(...)` does not: it only speaks HTTP). The
    client's own retries are off: `Retry` is the one backoff policy."""
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = SchemaRegistryClient.new_client({"url": url, "max.retries": 0})
    return client


# --- compatibility: the Avro specification's resolution rules --------------

class _Parsed:
    """One parsed schema with its named types, for dereferencing names."""

    def __init__(self, schema: AvroSchema) -> None:
        self.named: dict[str, Any] = {}
        self.root = parse_schema(schema_object(schema), named_schemas=self.named, _write_hint=False)

    def deref(self, s: Any) -> Any:
        """A primitive name, a union list, or a complex type's dict."""
        while True:
            if isinstance(s, str):
                return s if s in _PRIMITIVES else self.named[s]
            if isinstance(s, dict) and s.get("type") not in _COMPLEX:
                s = s["type"]
                continue
            return s


def _unqualified(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _describe(s: Any) -> str:
    if isinstance(s, str):
        return s
    if isinstance(s, list):
        return "[" + ", ".join(_describe(b) for b in s) + "]"
    if "name" in s:
        return f"{s['type']} {s['name']}"
    if s["type"] == "array":
        return f"array<{_describe(s['items'])}>"
    return f"map<{_describe(s['values'])}>"


class _Resolution:
    """Whether data written with `writer` can be read with `reader`."""

    def __init__(self, reader: _Parsed, writer: _Parsed) -> None:
        self.reader = reader
        self.writer = writer
        self.assumed: set[tuple[int, int]] = set()

    def check(self, r: Any, w: Any, path: str) -> None:
        r = self.reader.deref(r)
        w = self.writer.deref(w)
        if isinstance(w, list):
            for branch in w:
                self.check(r, branch, path)
            return
        if isinstance(r, list):
            inner: Optional[SchemaIncompatibleError] = None
            for branch in r:
                try:
                    self.check(branch, w, path)
                    return
                except SchemaIncompatibleError as ex:
                    if ex.field != path and inner is None:
                        inner = ex  # the branch matched by name but differs inside
            if inner is not None:
                raise inner
            self.fail(path, f"writer type {_describe(w)} matches no branch of reader union {_describe(r)}")
        if isinstance(r, str) or isinstance(w, str):
            if not (isinstance(r, str) and isinstance(w, str) and (r == w or (w, r) in _PROMOTIONS)):
                self.fail(path, f"writer type {_describe(w)} cannot be read as {_describe(r)}")
            return
        kind = w["type"]
        if kind != r["type"]:
            self.fail(path, f"writer type {_describe(w)} cannot be read as {_describe(r)}")
        if kind == "array":
            self.check(r["items"], w["items"], f"{path}[]")
        elif kind == "map":
            self.check(r["values"], w["values"], f"{path}{{}}")
        else:
            self.check_named(r, w, path)

    def check_named(self, r: dict[str, Any], w: dict[str, Any], path: str) -> None:
        names = {_unqualified(r["name"])} | {_unqualified(a) for a in r.get("aliases", ())}
        if _unqualified(w["name"]) not in names:
            self.fail(path, f"writer {w['type']} {w['name']} does not match reader {r['type']} {r['name']} or its aliases")
        if w["type"] == "fixed":
            if w["size"] != r["size"]:
                self.fail(path, f"fixed {w['name']} has size {w['size']} in the writer, {r['size']} in the reader")
        elif w["type"] == "enum":
            unknown = [s for s in w["symbols"] if s not in r["symbols"]]
            if unknown and "default" not in r:
                self.fail(path, f"writer enum symbols {unknown} are unknown to the reader, which has no default")
        else:
            self.check_record(r, w, path)

    def check_record(self, r: dict[str, Any], w: dict[str, Any], path: str) -> None:
        pair = (id(r), id(w))
        if pair in self.assumed:
            return  # recursive type: compatible unless proven otherwise below
        self.assumed.add(pair)
        try:
            self.check_fields(r, w, path)
        except SchemaIncompatibleError:
            self.assumed.discard(pair)
            raise

    def check_fields(self, r: dict[str, Any], w: dict[str, Any], path: str) -> None:
        by_name = {f["name"]: f for f in w["fields"]}
        prefix = f"{path}." if path else ""
        for rf in r["fields"]:
            wf = by_name.get(rf["name"])
            if wf is None:
                wf = next((by_name[a] for a in rf.get("aliases", ()) if a in by_name), None)
            if wf is not None:
                self.check(rf["type"], wf["type"], prefix + rf["name"])
            elif "default" not in rf:
                self.fail(prefix + rf["name"], "the reader's field has no default and the writer has no such field")

    @staticmethod
    def fail(path: str, reason: str) -> None:
        raise SchemaIncompatibleError(f"field {path or '<root>'!r}: {reason}", field=path, reason=reason)


def check_can_read(reader: AvroSchema, writer: AvroSchema) -> None:
    """Raise `SchemaIncompatibleError` naming the offending field unless every
    record written with `writer` can be read with `reader`."""
    r, w = _Parsed(reader), _Parsed(writer)
    _Resolution(r, w).check(r.root, w.root, "")


def check_compatibility(
    new: AvroSchema,
    previous: Sequence[AvroSchema],
    level: Compatibility,
    *,
    subject: str = "",
    versions: Optional[Sequence[int]] = None,
) -> None:
    """Raise `SchemaIncompatibleError` unless `new` may follow `previous`
    (oldest first, as registered under `subject`) at `level`."""
    if level is Compatibility.NONE or not previous:
        return
    labels = list(versions) if versions is not None else list(range(1, len(previous) + 1))
    against = list(zip(labels, previous))[::-1]
    if not level.transitive:
        against = against[:1]
    for label, old in against:
        directions = []
        if level.backward:
            directions.append((new, old, f"the new schema cannot read data written with version {label}"))
        if level.forward:
            directions.append((old, new, f"version {label} cannot read data written with the new schema"))
        for reader, writer, what in directions:
            try:
                check_can_read(reader, writer)
            except SchemaIncompatibleError as ex:
                raise SchemaIncompatibleError(
                    f"schema for subject {subject!r} is not {level.value} compatible: {what}: {ex}",
                    field=ex.field,
                    reason=ex.reason,
                ) from None


def register_schema(
    client: SchemaRegistryClient,
    subject: str,
    schema: AvroSchema,
    *,
    compatibility: Compatibility = Compatibility.BACKWARD,
    retry: Retry = Retry(),
) -> int:
    """The id of `schema` under `subject`, registering it after the
    compatibility check if it is new there."""
    text = canonical_json(schema)
    candidate = Schema(text, "AVRO")
    try:
        return retry.call(lambda: client.lookup_schema(subject, candidate), f"looking up {subject!r}").schema_id
    except SchemaRegistryError as ex:
        if not _is_not_found(ex):
            raise
    try:
        versions = sorted(retry.call(lambda: client.get_versions(subject), f"listing {subject!r}"))
    except SchemaRegistryError as ex:
        if not _is_not_found(ex):
            raise
        versions = []
    previous = [
        retry.call(lambda v=v: client.get_version(subject, v), f"reading {subject!r} v{v}").schema.schema_str
        for v in versions
    ]
    check_compatibility(text, previous, compatibility, subject=subject, versions=versions)
    try:
        return retry.call(lambda: client.register_schema(subject, candidate), f"registering {subject!r}")
    except SchemaRegistryError as ex:
        if ex.http_status_code == 409:
            raise SchemaIncompatibleError(f"registry refused the schema for {subject!r}: {ex}") from ex
        raise


# --- serde -----------------------------------------------------------------


class AvroSerializer:
    """Records or events to Confluent wire-format Avro with `schema`
    (default: the current user event schema), registered on first use per
    subject after the compatibility check."""

    def __init__(
        self,
        client: SchemaRegistryClient,
        schema: Optional[AvroSchema] = None,
        *,
        strategy: SubjectStrategy = SubjectStrategy.TOPIC,
        compatibility: Compatibility = Compatibility.BACKWARD,
        retry: Retry = Retry(),
    ) -> None:
        self._client = client
        self._schema = canonical_json(user_event_schema() if schema is None else schema)
        self._parsed = parse_schema(json.loads(self._schema))
        self.record_name: Optional[str] = self._parsed.get("name") if isinstance(self._parsed, dict) else None
        self.strategy = strategy
        self.compatibility = compatibility
        self._retry = retry
        self._ids: dict[str, int] = {}
        strategy.subject("topic", self.record_name)  # a record-name strategy needs a named schema

    def schema_id(self, topic: str) -> int:
        """The registry id used for `topic`, registering on first use."""
        subject = self.strategy.subject(topic, self.record_name)
        schema_id = self._ids.get(subject)
        if schema_id is None:
            schema_id = register_schema(
                self._client, subject, self._schema, compatibility=self.compatibility, retry=self._retry
            )
            self._ids[subject] = schema_id
        return schema_id

    def serialize(self, record: Union[Event, Mapping[str, Any]], topic: str) -> bytes:
        """Header plus Avro body; an `Event` is written through `to_dict()`
        (fields the schema lacks are left out, absent optional ones defaulted)."""
        data = record.to_dict() if isinstance(record, Event) else record
        buf = io.BytesIO()
        buf.write(HEADER.pack(MAGIC_BYTE, self.schema_id(topic)))
        schemaless_writer(buf, self._parsed, data)
        return buf.getvalue()


class AvroDeserializer:
    """Confluent wire-format Avro to dicts shaped by the reader schema
    (default: the current user event schema)."""

    _MAX_UNKNOWN = 4096

    def __init__(
        self,
        client: SchemaRegistryClient,
        reader_schema: Optional[AvroSchema] = None,
        *,
        retry: Retry = Retry(),
    ) -> None:
        self._client = client
        self._reader = parse_schema(user_event_schema() if reader_schema is None else schema_object(reader_schema))
        self._retry = retry
        self._writers: dict[int, tuple[Any, Any]] = {}
        self._unusable: dict[int, AvroError] = {}

    def deserialize(self, value: bytes) -> dict[str, Any]:
        """The record in `value`; `AvroError` subclasses say why not, and
        `RegistryUnavailableError` when the writer schema cannot be fetched."""
        if len(value) < HEADER_SIZE:
            raise WireFormatError(f"{len(value)} bytes is shorter than the {HEADER_SIZE}-byte wire-format header")
        magic, schema_id = HEADER.unpack_from(value)
        if magic != MAGIC_BYTE:
            raise WireFormatError(f"magic byte {magic} is not the Confluent wire format's {MAGIC_BYTE}")
        schemas = self._writers.get(schema_id)
        if schemas is None:
            schemas = self._writer_schema(schema_id)
        buf = io.BytesIO(value)
        buf.seek(HEADER_SIZE)
        try:
            record = schemaless_reader(buf, *schemas)
        except Exception as ex:  # noqa: BLE001 - fastavro raises many types on corrupt input
            raise AvroDecodeError(f"payload does not decode with writer schema id {schema_id}: {type(ex).__name__}: {ex}") from ex
        if buf.tell() != len(value):
            raise AvroDecodeError(f"{len(value) - buf.tell()} trailing bytes after the record (schema id {schema_id})")
        if not isinstance(record, dict):
            raise AvroDecodeError(f"schema id {schema_id} does not hold a record")
        return record

    def _writer_schema(self, schema_id: int) -> tuple[Any, Any]:
        """(writer, reader) for fastavro, the reader None when they are equal
        (resolution would only cost time); fetched once per id."""
        known = self._unusable.get(schema_id)
        if known is not None:
            raise known
        try:
            schema = self._retry.call(lambda: self._client.get_schema(schema_id), f"fetching schema id {schema_id}")
        except SchemaRegistryError as ex:
            if not _is_not_found(ex):
                raise RegistryUnavailableError(f"schema registry refused schema id {schema_id}: {ex}") from ex
            raise self._remember(schema_id, UnknownSchemaError(f"schema id {schema_id} is not in the registry")) from None
        try:
            if (schema.schema_type or "AVRO") != "AVRO":
                raise UnsupportedSchemaError(f"schema id {schema_id} is {schema.schema_type}, not AVRO")
            if schema.references:
                raise UnsupportedSchemaError(f"schema id {schema_id} has references, which are not supported")
            writer = parse_schema(json.loads(schema.schema_str or ""))
        except UnsupportedSchemaError as ex:
            raise self._remember(schema_id, ex) from None
        except Exception as ex:  # noqa: BLE001 - any parse failure makes the id unusable
            raise self._remember(
                schema_id, UnsupportedSchemaError(f"schema id {schema_id} is not valid Avro: {ex}")
            ) from ex
        schemas = (writer, None if writer == self._reader else self._reader)
        self._writers[schema_id] = schemas
        return schemas

    def _remember(self, schema_id: int, error: AvroError) -> AvroError:
        """Cache an unusable id so garbage does not hammer the registry."""
        if len(self._unusable) >= self._MAX_UNKNOWN:
            self._unusable.clear()
        self._unusable[schema_id] = error
        return error
