"""A Confluent-compatible schema registry client, for `encoding.wire_format: confluent`.

The Confluent wire format frames each Kafka value as `00`, the schema's 4-byte big-endian registry id, then
the Avro body. Each table's writer schema is registered (or, with `auto_register: false`, looked up) once
when the Kafka sink opens; the id is cached, so no record costs a registry call. The REST calls are the
documented ones (`POST /subjects/{s}/versions`, `POST /subjects/{s}`, `GET /schemas/ids/{id}`,
`POST /compatibility/subjects/{s}/versions/latest`), spoken by Confluent's registry, Apicurio (ccompat),
Karapace and Redpanda.

Errors: a registry that does not answer, answers 5xx or answers something that is not the documented JSON is
a `RetriableError` (the sink's open is retried with backoff: the bridge is not ready meanwhile); refused
credentials (401/403), an incompatible schema (409), an invalid one (422) or a schema missing under
`auto_register: false` are `ConfigError`s (exit 2) naming the subject, the table and the schema file.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from bridge.codec.keys import canonical_number
from bridge.codec.writer import zigzag
from bridge.errors import ConfigError, RetriableError
from bridge.secret import reveal

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
MAGIC = b"\x00"


def frame(schema_id: int) -> bytes:
    """The 5-byte Confluent header of values written with schema `schema_id`."""
    return MAGIC + schema_id.to_bytes(4, "big")


def framed_id(data: bytes) -> int | None:
    """The schema id of a Confluent-framed value, None when `data` is not one."""
    if len(data) >= 5 and data[:1] == MAGIC:
        return int.from_bytes(data[1:5], "big")
    return None


@dataclass(frozen=True)
class Subject:
    """What a schema is registered for: the registry subject, and the table and schema file it belongs to."""

    name: str
    table: str
    schema_file: str  # the typed table's .avsc, or the generic envelope

    def __str__(self) -> str:
        return f"subject {self.name!r} (table {self.table}, schema {self.schema_file})"


def subject_name(strategy: str, topic: str, record: str, suffix: str = "value") -> str:
    """The subject of a topic's `suffix` (value or key) schema whose record is named `record`, per Confluent's
    TopicNameStrategy (`topic`), RecordNameStrategy (`record`) and TopicRecordNameStrategy (`topic_record`)."""
    if strategy == "topic":
        return f"{topic}-{suffix}"
    if strategy == "record":
        return record
    return f"{topic}-{record}"


def value_subject(registry: SchemaRegistry, codec: Any, topic: str, table: str) -> Subject:
    """The subject of `codec`'s writer schema as the value schema of `topic` (table `table`)."""
    source = codec.item_schema or "the generic envelope (schemas/envelope.avsc)"
    return Subject(subject_name(registry.config.subject_name_strategy, topic, codec.record_name), table, source)


def register_value(registry: SchemaRegistry, codec: Any, topic: str, table: str) -> int:
    """Register (or look up) `codec`'s writer schema as the value schema of `topic`, and frame its values with
    the id (returned); once per table and topic when the Kafka sink opens."""
    schema_id = registry.writer_id(value_subject(registry, codec, topic, table), schema_text(codec.schema_json))
    codec.frame(frame(schema_id))
    return schema_id


AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
KEY_TYPES = {"S": "string", "N": "string", "B": "bytes"}  # N as its canonical decimal text: exact at any size


def key_schema(table: str, attributes: tuple[tuple[str, str], ...]) -> dict:
    """The Avro record of a table's Kafka key attributes ((name, S|N|B) pairs), for `key_format: avro`."""
    fields = []
    for name, kind in attributes:
        if not AVRO_NAME.fullmatch(name):
            raise ConfigError(
                f"table {table}: key attribute {name!r} is not a valid Avro field name ([A-Za-z_][A-Za-z0-9_]*), "
                "so it cannot be an Avro key field: use schema_registry.key_format: plain"
            )
        if kind not in KEY_TYPES:
            raise ConfigError(f"table {table}: DescribeTable gave no S, N or B type for key attribute {name!r}")
        doc = "the number as canonical decimal text" if kind == "N" else f"DynamoDB type {kind}"
        fields.append({"name": name, "type": KEY_TYPES[kind], "doc": doc})
    record = re.sub(r"[^A-Za-z0-9_]", "_", table)
    return {"type": "record", "name": f"{record}Key", "namespace": "io.cdcbridge.keys", "fields": fields}


def avro_key(header: bytes, values: list) -> bytes:
    """A Confluent-framed Avro key: `header` and the key attribute values (str, int, Decimal or bytes)."""
    out = bytearray(header)
    for value in values:
        data = value if type(value) is bytes else (value if type(value) is str else canonical_number(value)).encode()
        out += zigzag(len(data))
        out += data
    return bytes(out)


def register_key(registry: SchemaRegistry, schema: dict, topic: str, table: str) -> bytes:
    """Register (or look up) a table's key schema under `<topic>-key` (per the subject strategy); its header."""
    strategy = registry.config.subject_name_strategy
    record = f"{schema['namespace']}.{schema['name']}"
    subject = Subject(subject_name(strategy, topic, record, "key"), table, "its key attributes (DescribeTable)")
    return frame(registry.writer_id(subject, schema_text(schema)))


def schema_text(schema: dict) -> str:
    """A schema as the registry is sent it: compact JSON text."""
    return json.dumps(schema, separators=(",", ":"))


class SchemaRegistry:
    """The REST client of one `schema_registry` config section; ids and schemas are cached for the run."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.urls = [url.strip().rstrip("/") for url in config.url.split(",") if url.strip()]
        self._ids: dict[tuple[str, str], int] = {}  # (subject, schema text) -> id
        self._schemas: dict[int, dict] = {}  # id -> parsed schema JSON
        self._parsed: dict[int, dict] = {}  # id -> the schema parsed by fastavro
        self._tls = self._tls_context()

    def writer_id(self, subject: Subject, schema_json: str) -> int:
        """The id values of `schema_json` carry: registered under `subject` (`auto_register`), else looked up."""
        cached = self._ids.get((subject.name, schema_json))
        if cached is not None:
            return cached
        body = {"schema": schema_json}
        path = f"/subjects/{_quote(subject.name)}" + ("/versions" if self.config.auto_register else "")
        answer = self._call("POST", path + self._normalized(), body, subject)
        schema_id = answer.get("id") if type(answer) is dict else None
        if type(schema_id) is not int or not 0 <= schema_id < 2**31:
            raise RetriableError(f"schema registry answered {str(answer)[:200]!r} for {subject}: no schema id in it")
        self._ids[(subject.name, schema_json)] = schema_id
        return schema_id

    def compatible(self, subject: Subject, schema_json: str) -> tuple[bool, list[str]]:
        """Whether the registry accepts `schema_json` as the next version of `subject` under its compatibility
        rule, and its messages; a subject without versions accepts anything."""
        path = f"/compatibility/subjects/{_quote(subject.name)}/versions/latest?verbose=true"
        try:
            answer = self._call("POST", path, {"schema": schema_json}, subject)
        except _NotFound:
            return True, []
        verdict = answer.get("is_compatible") if type(answer) is dict else None
        if type(verdict) is not bool:
            raise RetriableError(
                f"schema registry answered {str(answer)[:200]!r} to a compatibility check of {subject}"
            )
        messages = answer.get("messages") or []
        return verdict, [str(message) for message in messages] if type(messages) is list else [str(messages)]

    def schema(self, schema_id: int) -> dict:
        """The parsed schema registered with id `schema_id` (cached)."""
        cached = self._schemas.get(schema_id)
        if cached is not None:
            return cached
        try:
            answer = self._call("GET", f"/schemas/ids/{schema_id}", None, None)
        except _NotFound:
            raise ValueError(f"the schema registry knows no schema with id {schema_id}") from None
        text = answer.get("schema") if type(answer) is dict else None
        try:
            parsed = json.loads(text) if type(text) is str else None
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict | list | str):
            raise RetriableError(f"schema registry answered {str(answer)[:200]!r} for schema id {schema_id}")
        self._schemas[schema_id] = parsed
        return parsed

    def parsed(self, schema_id: int) -> dict:
        """The schema of id `schema_id`, parsed for fastavro's reader (cached)."""
        import fastavro

        parsed = self._parsed.get(schema_id)
        if parsed is None:
            parsed = self._parsed[schema_id] = fastavro.parse_schema(self.schema(schema_id))
        return parsed

    def _normalized(self) -> str:
        return "?normalize=true" if self.config.normalize else ""

    def _call(self, method: str, path: str, body: dict | None, subject: Subject | None) -> Any:
        """One REST call, tried on each URL until one answers; the parsed JSON answer."""
        failures = []
        for url in self.urls:
            request = urllib.request.Request(
                url + path,
                data=None if body is None else json.dumps(body).encode(),
                method=method,
                headers={**self._auth(), "Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout_s, context=self._tls) as answer:
                    data = answer.read()
            except urllib.error.HTTPError as error:
                self._refused(error, url, subject)  # raises for 4xx
                failures.append(f"{url}: HTTP {error.code}")
                continue
            except (urllib.error.URLError, OSError, ValueError) as error:
                failures.append(f"{url}: {getattr(error, 'reason', error)}")
                continue
            try:
                return json.loads(data)
            except ValueError:
                failures.append(f"{url}: an answer that is not JSON ({data[:80]!r})")
        what = f" for {subject}" if subject is not None else ""
        raise RetriableError(f"schema registry did not answer{what}: {'; '.join(failures)}")

    def _refused(self, error: urllib.error.HTTPError, url: str, subject: Subject | None) -> None:
        """Raise the error a 4xx answer means (a 5xx returns: the next URL is tried)."""
        if error.code >= 500:
            return
        message = _message(error)
        about = f" {subject}" if subject is not None else ""
        if error.code in (401, 403):
            raise ConfigError(
                f"schema registry at {url} refused the credentials (HTTP {error.code}: {message}); check "
                "schema_registry.basic_auth_user / basic_auth_password or bearer_token"
            )
        if error.code == 404:
            if subject is not None and not self.config.auto_register and "/compatibility/" not in error.url:
                raise ConfigError(
                    f"schema registry at {url} has no version of{about} with this writer schema ({message}); "
                    "register it (`cdc-bridge schema --register`) or set schema_registry.auto_register: true"
                )
            raise _NotFound(message)
        if error.code == 409:
            raise ConfigError(
                f"schema registry at {url} rejected the writer schema of{about} as incompatible with the "
                f"registered versions: {message}. Make the schema change compatible (README: 'Schema "
                "evolution') or change the subject's compatibility level"
            )
        if error.code == 422:
            raise ConfigError(f"schema registry at {url} rejected the writer schema of{about} as invalid: {message}")
        raise ConfigError(
            f"schema registry at {url} refused a request for{about or ' a schema'}: HTTP {error.code} {message}"
        )

    def _auth(self) -> dict[str, str]:
        config = self.config
        if config.basic_auth_user is not None:
            pair = f"{config.basic_auth_user}:{reveal(config.basic_auth_password)}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        if config.bearer_token is not None:
            return {"Authorization": "Bearer " + reveal(config.bearer_token)}
        return {}

    def _tls_context(self) -> ssl.SSLContext | None:
        config = self.config
        if not any(url.startswith("https://") for url in self.urls):
            return None
        try:
            context = ssl.create_default_context(cafile=config.ssl_cafile)
            if config.ssl_certfile:
                context.load_cert_chain(config.ssl_certfile, config.ssl_keyfile)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(f"schema_registry: the TLS files cannot be used: {error}") from None
        return context


class _NotFound(Exception):
    """A 404 the caller handles itself."""


def _quote(subject: str) -> str:
    return urllib.parse.quote(subject, safe="")


def _message(error: urllib.error.HTTPError) -> str:
    """The registry's `message` of an error answer (its documented `{"error_code", "message"}`), else the text."""
    try:
        data = error.read()
    except OSError:
        data = b""
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = None
    if type(parsed) is dict and "message" in parsed:
        return str(parsed["message"])[:500]
    return data[:200].decode(errors="replace") or error.reason or ""
