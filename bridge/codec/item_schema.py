"""Writer schemas as JSON: the generic envelope, item schema files, and envelopes derived from them.

A typed table names an Avro record schema for its items (one field per attribute). Its envelope is
`schemas/envelope.avsc` with `before` and `after` of that record type (`keys` stays the generic map).
An item record without a namespace gets `io.cdcbridge.items` there (Avro cannot refer to a type of the
null namespace from inside the namespaced envelope).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import SchemaParseException, UnknownType

from bridge.errors import ConfigError

ENVELOPE_FILE = "envelope.avsc"
ITEM_NAMESPACE = "io.cdcbridge.items"


@cache
def _generic_text() -> str:
    return resources.files("bridge.schemas").joinpath(ENVELOPE_FILE).read_text()


def generic_envelope_json() -> dict:
    """The generic envelope of `schemas/envelope.avsc` as its JSON object (a fresh copy)."""
    return json.loads(_generic_text())


def is_envelope(schema: dict) -> bool:
    """Whether a schema JSON object is an envelope (has `op`, `before`, `after`), not an item schema."""
    names = {f.get("name") for f in schema.get("fields", ())} if isinstance(schema, dict) else set()
    return {"op", "before", "after"} <= names


def _find(path: str) -> Path | Traversable:
    """`path` as given (relative to the working directory), else a schema of that name shipped in `schemas/`."""
    given = Path(path)
    if given.exists():
        return given
    shipped = resources.files("bridge.schemas").joinpath(given.name)
    return shipped if given.suffix == ".avsc" and shipped.is_file() else given


def load_item_schema(path: str) -> dict:
    """The item schema in file `path` as its JSON object, checked to be a valid Avro record.

    Raises `ConfigError` naming the file and the problem (missing, not JSON, not Avro, not a record).
    """
    try:
        text = _find(path).read_text()
    except OSError as error:
        raise ConfigError(f"schema file {path} cannot be read: {error.strerror or error}") from None
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"schema file {path}: not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from None
    if not isinstance(schema, dict) or schema.get("type") != "record":
        kind = schema.get("type") if isinstance(schema, dict) else type(schema).__name__
        raise ConfigError(
            f"schema file {path}: an item schema must be an Avro record with one field per attribute, got {kind!r}"
        )
    try:
        fastavro.parse_schema(schema)
    except (SchemaParseException, UnknownType, ValueError, TypeError, KeyError) as error:
        raise ConfigError(f"schema file {path}: not a valid Avro schema: {error}") from None
    return schema


def typed_envelope_json(item: dict, path: str = "<item schema>") -> dict:
    """The envelope whose `before` and `after` hold items of record schema `item` (JSON objects in, out)."""
    envelope = generic_envelope_json()
    record = copy.deepcopy(item)
    if not record.get("namespace") and "." not in record["name"]:
        record["namespace"] = ITEM_NAMESPACE  # a null-namespace type cannot be named inside io.cdcbridge
    name = record["name"] if "." in record["name"] else f"{record['namespace']}.{record['name']}"
    envelope["doc"] = f"One change of one DynamoDB item (Debezium-shaped); items are {name} records."
    sides: dict[str, Any] = {"before": ["null", record], "after": ["null", name]}
    for field in envelope["fields"]:
        if field["name"] in sides:
            field["type"] = sides[field["name"]]
    try:
        fastavro.parse_schema(envelope)
    except (SchemaParseException, UnknownType, ValueError) as error:
        raise ConfigError(f"schema file {path}: cannot be used inside the change envelope: {error}") from None
    return envelope


def shipped_schemas() -> list[tuple[str, dict]]:
    """Every `.avsc` shipped in `schemas/` as (file name, JSON object), the envelope first."""
    folder = resources.files("bridge.schemas")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".avsc")), key=lambda f: f.name != ENVELOPE_FILE)
    return [(f.name, json.loads(f.read_text())) for f in files]
