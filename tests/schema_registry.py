"""A fake Confluent Schema Registry on a loopback port, speaking the documented REST subset the bridge and
Confluent's clients use (no registry server can be installed here).

Served (bodies and error codes as Confluent's API reference documents them; `Content-Type:
application/vnd.schemaregistry.v1+json` on every answer):

- `POST /subjects/{s}/versions` register (`?normalize=true` accepted): `{"id": N}`. Ids are global: the same
  schema gets the same id in every subject; a schema already under the subject answers its id unchecked; else
  it must be compatible under the subject's level (409, `error_code` 409, Confluent's message) and becomes the
  next version. Not Avro, or references: 422 / 42201.
- `POST /subjects/{s}` lookup: `{"subject", "id", "version", "schema"}`; 404 / 40401 (subject) or 40403 (schema).
- `GET /schemas/ids/{id}` (and `.../schema`): `{"schema": ...}`; 404 / 40403. The `subject` query is ignored.
- `GET /subjects`, `GET /subjects/{s}/versions`, `GET /subjects/{s}/versions/{v|latest|-1}` (and `.../schema`):
  404 / 40401, 40402; 422 / 42202 for a version that is not one.
- `GET|PUT /config`, `GET|PUT|DELETE /config/{s}`: `{"compatibilityLevel": ...}` answers, `{"compatibility": ...}`
  requests; default BACKWARD; a subject without its own level: 404 / 40408 unless `?defaultToGlobal=true`.
- `POST /compatibility/subjects/{s}/versions/{v|latest}` and `.../versions` (all versions, as registering
  checks): `{"is_compatible": bool}`, plus `"messages"` with `?verbose=true`; `latest` of a subject with no
  version is compatible (as Confluent's server answers).
- Anything else, `GET /associations/...` included (confluent-kafka 2.16 asks it first and falls back to the
  topic strategy on 404): 404 / 404 `HTTP 404 Not Found`, as a registry without that feature answers.

Scripting for bad-input tests: `script()` makes the next N matching requests answer a given status and body
(JSON, or raw bytes: garbage), optionally after a delay; `require_basic_auth()` / `require_bearer_token()` make
every request without those credentials answer 401; `requests` and `count()` tell what clients asked. Scripted
answers come first (before authentication). `stop()` then `start()` serves the same state on the same port.
`reset()` forgets schemas, levels, scripts, credentials and the request log, but never hands out an id again
(a client that caches schemas by id for the run of a test session never sees one id mean two schemas).
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from fastavro.schema import parse_schema

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
LEVELS = ("NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE")


class RegistryError(Exception):
    """An error answer: HTTP `status` with the registry's `{"error_code", "message"}` body."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(f"{status} {error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message


def _subject_not_found(subject: str) -> RegistryError:
    return RegistryError(404, 40401, f"Subject '{subject}' not found.")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it: `path` as sent (still URL-encoded), `query` as a dict (last value
    of a repeated name wins), `headers` with lower-case names."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Scripted:
    status: int
    body: bytes
    content_type: str
    times: int
    path: str | None
    method: str | None
    delay: float

    def matches(self, method: str, path: str) -> bool:
        return _matches(self.method, self.path, method, path)


def _matches(want_method: str | None, want_path: str | None, method: str, path: str) -> bool:
    """`want_path` is a glob (`fnmatch`: `*` also crosses `/`); None matches any."""
    return (want_method is None or want_method.upper() == method) and (
        want_path is None or fnmatch.fnmatchcase(path, want_path)
    )


# ---------------------------------------------------------------------------------------------------------------
# Avro compatibility (the subset a registry's default checks need)

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
# writer type -> reader types that read it (Avro's schema resolution promotions)
PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}


@dataclass(frozen=True)
class ParsedSchema:
    """A schema as fastavro expands it (full names), with the named types it defines."""

    schema: Any
    named: dict[str, Any]

    @classmethod
    def parse(cls, schema: Any) -> ParsedSchema:
        named: dict[str, Any] = {}
        return cls(parse_schema(schema, named_schemas=named, _write_hint=False), named)


@dataclass(frozen=True)
class Incompatibility:
    """One reason a reader schema cannot read a writer schema's data, named as Avro's checker names it."""

    error_type: str
    path: str
    description: str
    info: str

    def message(self) -> str:
        """As Confluent's server words it in 409 messages and verbose compatibility answers."""
        return f"{{errorType:'{self.error_type}', description:'{self.description}', additionalInfo:'{self.info}'}}"


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _kind(schema: Any) -> str:
    return "union" if isinstance(schema, list) else schema if isinstance(schema, str) else schema["type"]


class _ReadCheck:
    """Can data written with `writer` be read with `reader`? (Avro schema resolution.)

    Checks: record fields by name (or the reader field's aliases) - a reader field missing from the writer
    needs a default, writer fields the reader lacks are skipped; same-named fields recursively; the
    promotions int -> long -> float -> double and string <-> bytes; unions (every writer branch must be
    readable by the reader, or by one branch of a reader union); arrays, maps; enum symbols (unless the
    reader enum has a default); fixed sizes; names of records, enums and fixed (unqualified, or a reader
    alias). Recursive types are assumed compatible while being checked.
    Not checked: logical types (decimal precision and scale, ...), whether defaults fit their field's type,
    field order, schema references, JSON Schema and Protobuf.
    """

    def __init__(self, reader: ParsedSchema, writer: ParsedSchema, reader_role: str, writer_role: str) -> None:
        self.reader, self.writer = reader, writer
        self.roles = reader_role, writer_role
        self.done: dict[tuple[int, int], list[Incompatibility]] = {}

    def errors(self) -> list[Incompatibility]:
        return self._check(self.reader.schema, self.writer.schema, "")

    def _resolve(self, schema: Any, named: dict[str, Any]) -> Any:
        if isinstance(schema, str):
            return schema if schema in PRIMITIVES else named[schema]
        if isinstance(schema, dict) and not isinstance(schema["type"], str):
            return self._resolve(schema["type"], named)
        if isinstance(schema, dict) and schema["type"] in PRIMITIVES:
            return schema["type"]  # logical types read as their underlying type
        if isinstance(schema, dict) and schema["type"] not in ("record", "error", "enum", "fixed", "array", "map"):
            return self._resolve(schema["type"], named)
        return schema

    def _check(self, reader: Any, writer: Any, path: str) -> list[Incompatibility]:
        reader = self._resolve(reader, self.reader.named)
        writer = self._resolve(writer, self.writer.named)
        new, old = self.roles
        where = path or "/"
        if isinstance(writer, list):
            return [error for branch in writer for error in self._check(reader, branch, path)[:1]]
        if isinstance(reader, list):
            if any(not self._check(branch, writer, path) for branch in reader):
                return []
            description = (
                f"The {new} schema is missing a type inside a union field at path '{where}' in the {old} schema"
            )
            info = f"reader union lacking writer type: {_kind(writer).upper()}"
            return [Incompatibility("MISSING_UNION_BRANCH", where, description, info)]
        read, written = _kind(reader), _kind(writer)
        read = "record" if read == "error" else read
        written = "record" if written == "error" else written
        if read != written:
            if read in PROMOTIONS.get(written, ()):
                return []
            description = (
                f"The type (path '{where}') of a field in the {new} schema does not match with the {old} schema"
            )
            info = f"reader type: {read.upper()} not compatible with writer type: {written.upper()}"
            return [Incompatibility("TYPE_MISMATCH", where, description, info)]
        if read in PRIMITIVES:
            return []
        if read == "array":
            return self._check(reader["items"], writer["items"], f"{path}/items")
        if read == "map":
            return self._check(reader["values"], writer["values"], f"{path}/values")
        if not self._same_name(reader, writer):
            description = f"The name of the {new} schema has changed (path '{where}')"
            return [Incompatibility("NAME_MISMATCH", where, description, f"expected: {writer['name']}")]
        if read == "fixed" and reader["size"] != writer["size"]:
            description = f"The size of FIXED type field at path '{where}' in the {new} schema does not match with"
            description += f" the {old} schema"
            info = f"expected: {writer['size']}, found: {reader['size']}"
            return [Incompatibility("FIXED_SIZE_MISMATCH", where, description, info)]
        if read == "enum":
            missing = [symbol for symbol in writer["symbols"] if symbol not in reader["symbols"]]
            if missing and "default" not in reader:
                description = (
                    f"The {new} schema is missing enum symbols '{missing}' at path '{where}' in the {old} schema"
                )
                return [Incompatibility("MISSING_ENUM_SYMBOLS", where, description, str(missing))]
            return []
        if read == "record":
            return self._record(reader, writer, path)
        return []

    def _record(self, reader: dict, writer: dict, path: str) -> list[Incompatibility]:
        pair = (id(reader), id(writer))
        if pair in self.done:  # checked, or being checked further up (a recursive type)
            return self.done[pair]
        self.done[pair] = []
        new, old = self.roles
        written = {f["name"]: f for f in writer["fields"]}
        errors: list[Incompatibility] = []
        for index, reader_field in enumerate(reader["fields"]):
            names = [reader_field["name"], *reader_field.get("aliases", [])]
            writer_field = next((written[name] for name in names if name in written), None)
            if writer_field is not None:
                errors += self._check(reader_field["type"], writer_field["type"], f"{path}/fields/{index}/type")
            elif "default" not in reader_field:
                name, where = reader_field["name"], f"{path}/fields/{index}"
                description = (
                    f"The field '{name}' at path '{where}' in the {new} schema has no default value and is missing "
                    f"in the {old} schema"
                )
                errors.append(Incompatibility("READER_FIELD_MISSING_DEFAULT_VALUE", where, description, name))
        self.done[pair] = errors
        return errors

    @staticmethod
    def _same_name(reader: dict, writer: dict) -> bool:
        aliases = reader.get("aliases", [])
        return (
            _short(reader["name"]) == _short(writer["name"])
            or writer["name"] in aliases
            or _short(writer["name"]) in {_short(alias) for alias in aliases}
        )


def read_errors(reader: Any, writer: Any) -> list[Incompatibility]:
    """Why data written with schema `writer` cannot be read with schema `reader` (empty: it can)."""
    return _ReadCheck(ParsedSchema.parse(reader), ParsedSchema.parse(writer), "reader", "writer").errors()


def incompatibilities(level: str, new: ParsedSchema, old: ParsedSchema) -> list[Incompatibility]:
    """What keeps `new` from following `old` under compatibility `level` (transitivity is the caller's)."""
    errors: list[Incompatibility] = []
    if level.startswith(("BACKWARD", "FULL")):  # consumers with the new schema read old data
        errors += _ReadCheck(new, old, "new", "old").errors()
    if level.startswith(("FORWARD", "FULL")):  # consumers with the old schema read new data
        errors += _ReadCheck(old, new, "old", "new").errors()
    return errors


# ---------------------------------------------------------------------------------------------------------------
# The registry's state


@dataclass
class _Schema:
    id: int
    text: str  # as the registry answers it
    parsed: ParsedSchema


@dataclass
class _State:
    next_id: int = 1
    schemas: dict[int, _Schema] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)  # identity -> id
    subjects: dict[str, list[int]] = field(default_factory=dict)  # subject -> ids, version N at index N-1
    level: str = "BACKWARD"
    subject_levels: dict[str, str] = field(default_factory=dict)


def _prepared(request: Any, normalize: bool) -> tuple[str, str, ParsedSchema]:
    """(identity, answer text, parsed) of a register/lookup/compatibility request body, or a 422."""
    if not isinstance(request, dict) or not isinstance(request.get("schema"), str):
        raise RegistryError(422, 42201, "Invalid schema: the request has no `schema` string")
    if request.get("schemaType", "AVRO") != "AVRO":
        raise RegistryError(422, 42201, f"Invalid schema type {request['schemaType']}: this fake serves AVRO only")
    if request.get("references"):
        raise RegistryError(422, 42201, "Invalid schema: references are not supported by this fake")
    try:
        schema = json.loads(request["schema"])
        parsed = ParsedSchema.parse(schema)
    except Exception as error:
        raise RegistryError(422, 42201, f"Invalid schema {request['schema']}: {error}") from None
    if normalize:  # names fully qualified, properties in one order
        text = json.dumps(parsed.schema, sort_keys=True, separators=(",", ":"))
        return "normalized:" + text, text, parsed
    return json.dumps(schema, sort_keys=True, separators=(",", ":")), json.dumps(schema, separators=(",", ":")), parsed


def _version_number(version: str) -> int | None:
    """A version id (None: latest), or a 422 42202."""
    if version in ("latest", "-1"):
        return None
    if re.fullmatch(r"[1-9][0-9]{0,9}", version) and int(version) < 2**31:
        return int(version)
    raise RegistryError(
        422,
        42202,
        f"The specified version '{version}' is not a valid version id. Allowed values are between "
        '[1, 2^31-1] and the string "latest"',
    )


def _level(request: Any) -> str:
    level = request.get("compatibility") if isinstance(request, dict) else None
    if not isinstance(level, str) or level.upper() not in LEVELS:
        raise RegistryError(
            422,
            42203,
            "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, "
            "forward_transitive, and full_transitive",
        )
    return level.upper()


class _Routes:
    """The REST API over a `_State`; every handler takes (match groups, query, request JSON) under the lock."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self.table = [
            ("GET", r"/", lambda g, q, r: {}),
            ("GET", r"/subjects", self.list_subjects),
            ("POST", r"/subjects/(?P<subject>[^/]+)/versions", self.register),
            ("GET", r"/subjects/(?P<subject>[^/]+)/versions", self.list_versions),
            ("GET", r"/subjects/(?P<subject>[^/]+)/versions/(?P<version>[^/]+)", self.version),
            ("GET", r"/subjects/(?P<subject>[^/]+)/versions/(?P<version>[^/]+)/schema", self.version_schema),
            ("POST", r"/subjects/(?P<subject>[^/]+)", self.lookup),
            ("GET", r"/schemas/ids/(?P<id>[^/]+)", self.schema_by_id),
            ("GET", r"/schemas/ids/(?P<id>[^/]+)/schema", self.raw_schema_by_id),
            ("GET", r"/config", self.get_config),
            ("PUT", r"/config", self.put_config),
            ("GET", r"/config/(?P<subject>[^/]+)", self.get_subject_config),
            ("PUT", r"/config/(?P<subject>[^/]+)", self.put_subject_config),
            ("DELETE", r"/config/(?P<subject>[^/]+)", self.delete_subject_config),
            ("POST", r"/compatibility/subjects/(?P<subject>[^/]+)/versions/(?P<version>[^/]+)", self.compatible),
            ("POST", r"/compatibility/subjects/(?P<subject>[^/]+)/versions", self.compatible_with_all),
        ]

    def dispatch(self, method: str, path: str, query: dict[str, str], request: Any) -> Any:
        path = path.rstrip("/") or "/"
        allowed = False
        for route_method, pattern, handler in self.table:
            found = re.fullmatch(pattern, path)
            if found is None:
                continue
            if route_method == method:
                return handler({k: unquote(v) for k, v in found.groupdict().items()}, query, request)
            allowed = True
        if allowed:
            raise RegistryError(405, 405, "HTTP 405 Method Not Allowed")
        raise RegistryError(404, 404, "HTTP 404 Not Found")

    # -- subjects and versions

    def list_subjects(self, groups: dict, query: dict, request: Any) -> list[str]:
        return sorted(self.state.subjects)

    def _versions(self, subject: str) -> list[int]:
        if subject not in self.state.subjects:
            raise _subject_not_found(subject)
        return self.state.subjects[subject]

    def list_versions(self, groups: dict, query: dict, request: Any) -> list[int]:
        return list(range(1, len(self._versions(groups["subject"])) + 1))

    def _version(self, subject: str, version: str) -> tuple[int, _Schema]:
        ids = self._versions(subject)
        number = _version_number(version) or len(ids)
        if number > len(ids):
            raise RegistryError(404, 40402, f"Version {number} not found.")
        return number, self.state.schemas[ids[number - 1]]

    def version(self, groups: dict, query: dict, request: Any) -> dict:
        number, schema = self._version(groups["subject"], groups["version"])
        return {"subject": groups["subject"], "version": number, "id": schema.id, "schema": schema.text}

    def version_schema(self, groups: dict, query: dict, request: Any) -> Any:
        return json.loads(self._version(groups["subject"], groups["version"])[1].text)

    def register(self, groups: dict, query: dict, request: Any) -> dict:
        return {"id": self.add(groups["subject"], request, _true(query.get("normalize")))}

    def add(self, subject: str, request: Any, normalize: bool) -> int:
        identity, text, parsed = _prepared(request, normalize)
        known = self.state.ids.get(identity)
        ids = self.state.subjects.get(subject, [])
        if known is not None and known in ids:
            return known
        errors = self._incompatibilities(subject, parsed)
        if errors:
            details = ", ".join(errors)
            raise RegistryError(
                409,
                409,
                f'Schema being registered is incompatible with an earlier schema for subject "{subject}", '
                f"details: [{details}]",
            )
        if known is None:
            known = self.state.next_id
            self.state.next_id += 1
            self.state.schemas[known] = _Schema(known, text, parsed)
            self.state.ids[identity] = known
        self.state.subjects.setdefault(subject, []).append(known)
        return known

    def lookup(self, groups: dict, query: dict, request: Any) -> dict:
        subject = groups["subject"]
        identity, _, _ = _prepared(request, _true(query.get("normalize")))
        ids = self._versions(subject)
        known = self.state.ids.get(identity)
        if known not in ids:
            raise RegistryError(404, 40403, "Schema not found")
        version = ids.index(known) + 1
        return {"subject": subject, "id": known, "version": version, "schema": self.state.schemas[known].text}

    # -- schemas by id

    def _schema(self, schema_id: str) -> _Schema:
        schema = self.state.schemas.get(int(schema_id)) if schema_id.isdigit() else None
        if schema is None:
            raise RegistryError(404, 40403, f"Schema {schema_id} not found")
        return schema

    def schema_by_id(self, groups: dict, query: dict, request: Any) -> dict:
        return {"schema": self._schema(groups["id"]).text}

    def raw_schema_by_id(self, groups: dict, query: dict, request: Any) -> Any:
        return json.loads(self._schema(groups["id"]).text)

    # -- compatibility levels

    def level_of(self, subject: str) -> str:
        return self.state.subject_levels.get(subject, self.state.level)

    def get_config(self, groups: dict, query: dict, request: Any) -> dict:
        return {"compatibilityLevel": self.state.level}

    def put_config(self, groups: dict, query: dict, request: Any) -> dict:
        self.state.level = _level(request)
        return {"compatibility": self.state.level}

    def get_subject_config(self, groups: dict, query: dict, request: Any) -> dict:
        subject = groups["subject"]
        if subject in self.state.subject_levels or _true(query.get("defaultToGlobal")):
            return {"compatibilityLevel": self.level_of(subject)}
        raise RegistryError(404, 40408, f"Subject '{subject}' does not have subject-level compatibility configured")

    def put_subject_config(self, groups: dict, query: dict, request: Any) -> dict:
        self.state.subject_levels[groups["subject"]] = _level(request)
        return {"compatibility": self.state.subject_levels[groups["subject"]]}

    def delete_subject_config(self, groups: dict, query: dict, request: Any) -> dict:
        subject = groups["subject"]
        if subject not in self.state.subject_levels and subject not in self.state.subjects:
            raise _subject_not_found(subject)
        return {"compatibilityLevel": self.state.subject_levels.pop(subject, self.state.level)}

    # -- compatibility checks

    def _incompatibilities(self, subject: str, new: ParsedSchema, against: list[int] | None = None) -> list[str]:
        """Messages (Confluent's wording) of what keeps `new` from being registered under `subject`; `against`:
        these versions only (else the latest, or all of them for a transitive level)."""
        level = self.level_of(subject)
        ids = self.state.subjects.get(subject, [])
        if level == "NONE" or not ids:
            return []
        if against is None:
            against = list(range(1, len(ids) + 1)) if level.endswith("TRANSITIVE") else [len(ids)]
        messages: list[str] = []
        for version in against:
            old = self.state.schemas[ids[version - 1]]
            errors = incompatibilities(level, new, old.parsed)
            if errors:
                messages += [error.message() for error in errors]
                messages += [f"{{oldSchemaVersion: {version}}}", f"{{oldSchema: '{old.text}'}}"]
        if messages:
            messages.append(f"{{compatibility: '{level}'}}")
        return messages

    def compatible(self, groups: dict, query: dict, request: Any) -> dict:
        subject = groups["subject"]
        number = _version_number(groups["version"])
        _, _, parsed = _prepared(request, _true(query.get("normalize")))
        if subject not in self.state.subjects:
            if number is None:  # latest of nothing: compatible, as Confluent's server answers
                return _compatibility_answer([], query)
            raise _subject_not_found(subject)
        count = len(self.state.subjects[subject])
        if number is not None and number > count:
            raise RegistryError(404, 40402, f"Version {number} not found.")
        messages = self._incompatibilities(subject, parsed, against=[number or count])
        return _compatibility_answer(messages, query)

    def compatible_with_all(self, groups: dict, query: dict, request: Any) -> dict:
        _, _, parsed = _prepared(request, _true(query.get("normalize")))
        return _compatibility_answer(self._incompatibilities(groups["subject"], parsed), query)


def _compatibility_answer(messages: list[str], query: dict) -> dict:
    answer: dict[str, Any] = {"is_compatible": not messages}
    if _true(query.get("verbose")):
        answer["messages"] = messages
    return answer


def _true(flag: str | None) -> bool:
    return flag is not None and flag.lower() == "true"  # confluent-kafka sends `normalize=False` / `True`


# ---------------------------------------------------------------------------------------------------------------
# The HTTP server


class _Server(ThreadingHTTPServer):
    """Threads per connection; `close_connections` ends kept-alive ones so that a stopped registry is down."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type) -> None:
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        with self.connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.open_connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)


class FakeRegistry:
    """The fake registry: `start()`, `url`, `stop()`; see the module docstring for what it serves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _State()
        self._routes = _Routes(self._state)
        self._scripts: list[_Scripted] = []
        self._auth: str | None = None  # the whole expected Authorization header
        self._requests: list[RecordedRequest] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._stopping = threading.Event()

    # -- lifecycle

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("the fake registry has not been started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Serve on a free loopback port (after a `stop()`: on the port it had, with the state it had)."""
        if self._server is not None:
            raise RuntimeError("the fake registry is already running")
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real registries and httpx clients use
            disable_nagle_algorithm = True  # else a small answer's body waits ~40 ms for the headers' ACK

            def do_GET(self) -> None:
                registry._serve(self)

            do_POST = do_PUT = do_DELETE = do_GET

            def log_message(self, *args) -> None:
                pass

        self._stopping.clear()
        self._server = _Server(("127.0.0.1", self._port), Handler)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-registry", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving: new connections are refused, kept-alive ones closed, delayed answers cut short."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._server = self._thread = None

    def reset(self) -> None:
        """Forget schemas, subjects, levels, scripts, credentials and requests (ids keep counting up)."""
        with self._lock:
            next_id = self._state.next_id
            self._state = _State(next_id=next_id)
            self._routes = _Routes(self._state)
            self._scripts.clear()
            self._auth = None
            self._requests.clear()

    # -- scripting

    def script(
        self,
        status: int,
        body: Any = None,
        *,
        times: int = 1,
        path: str | None = None,
        method: str | None = None,
        delay: float = 0.0,
        content_type: str = CONTENT_TYPE,
    ) -> None:
        """The next `times` requests matching `method` and the glob `path` (None: any) answer `status` with
        `body`: bytes or str are sent as they are (garbage, HTML, half a JSON), anything else as JSON; None: the
        registry's error shape `{"error_code": status, "message": <reason>}`. `delay` s pass first (a slow or
        hung registry; `stop()` cuts it short). Scripts are used in the order given, before authentication."""
        if body is None:
            body = {"error_code": status, "message": HTTPStatus(status).phrase}
        raw = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else json.dumps(body).encode()
        with self._lock:
            self._scripts.append(_Scripted(status, raw, content_type, times, path, method, delay))

    def require_basic_auth(self, user: str, password: str) -> None:
        """Every request needs `Authorization: Basic` with these credentials, else 401."""
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        with self._lock:
            self._auth = f"Basic {token}"

    def require_bearer_token(self, token: str) -> None:
        """Every request needs `Authorization: Bearer <token>`, else 401."""
        with self._lock:
            self._auth = f"Bearer {token}"

    # -- what clients asked

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received since the last `reset()`, in order."""
        with self._lock:
            return list(self._requests)

    def count(self, path: str | None = None, method: str | None = None) -> int:
        """How many requests matched `method` and the glob `path` (None: any)."""
        return sum(_matches(method, path, r.method, r.path) for r in self.requests)

    # -- state, for setting up tests without going through HTTP (not recorded as requests)

    def register(self, subject: str, schema: Any, *, normalize: bool = False) -> int:
        """Register `schema` (parsed, or its JSON text) under `subject`: its id, or a `RegistryError` (409 when
        incompatible, 422 when not a schema)."""
        text = schema if isinstance(schema, str) else json.dumps(schema)
        with self._lock:
            return self._routes.add(subject, {"schema": text}, normalize)

    def subjects(self) -> list[str]:
        with self._lock:
            return sorted(self._state.subjects)

    def schema(self, schema_id: int) -> dict | list | str:
        """The schema registered with `schema_id`, parsed."""
        with self._lock:
            return json.loads(self._state.schemas[schema_id].text)

    def latest(self, subject: str) -> dict:
        """`{"subject", "version", "id", "schema"}` of the latest version of `subject`."""
        with self._lock:
            return self._routes.version({"subject": subject, "version": "latest"}, {}, None)

    def set_compatibility(self, level: str, subject: str | None = None) -> None:
        """The global level, or `subject`'s own."""
        with self._lock:
            if subject is None:
                self._state.level = _level({"compatibility": level})
            else:
                self._state.subject_levels[subject] = _level({"compatibility": level})

    # -- serving

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        recorded = RecordedRequest(
            method=handler.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in handler.headers.items()},
            body=handler.rfile.read(length) if length else b"",
        )
        with self._lock:
            self._requests.append(recorded)
            scripted = next((s for s in self._scripts if s.times > 0 and s.matches(recorded.method, parts.path)), None)
            if scripted is not None:
                scripted.times -= 1
            else:
                status, body, extra = self._answer(recorded)
        if scripted is not None:
            if scripted.delay and self._stopping.wait(scripted.delay):
                handler.close_connection = True
                return
            status, body, extra = scripted.status, scripted.body, {"Content-Type": scripted.content_type}
        handler.send_response(status)
        for name, value in {"Content-Type": CONTENT_TYPE, **extra, "Content-Length": str(len(body))}.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def _answer(self, request: RecordedRequest) -> tuple[int, bytes, dict[str, str]]:
        """(status, body, extra headers) of an unscripted request; called under the lock."""
        if self._auth is not None and request.headers.get("authorization") != self._auth:
            scheme = self._auth.split()[0]
            body = json.dumps({"error_code": 401, "message": "Unauthorized"}).encode()
            return 401, body, {"WWW-Authenticate": f'{scheme} realm="SchemaRegistry"'}
        try:
            content = json.loads(request.body) if request.body else None
        except ValueError as error:
            return 400, json.dumps({"error_code": 400, "message": f"Malformed JSON: {error}"}).encode(), {}
        try:
            answer = self._routes.dispatch(request.method, request.path, request.query, content)
        except RegistryError as error:
            return error.status, json.dumps({"error_code": error.error_code, "message": error.message}).encode(), {}
        return 200, json.dumps(answer).encode(), {}
