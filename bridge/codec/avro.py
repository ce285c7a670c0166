"""Avro envelopes: the generic item schema, single-object framing and a decoder for consumers.

Wire format `single_object` (default) is Avro single-object encoding: `C3 01`, the writer schema's
8-byte little-endian CRC-64-AVRO fingerprint, then the Avro body; `raw` is the body alone.
"""

from __future__ import annotations

import io
import time
from decimal import Decimal
from functools import cache
from typing import Any

import fastavro

from bridge.codec.item_schema import generic_envelope_json, load_item_schema, typed_envelope_json
from bridge.codec.lookup import SCHEMAS, crc64_avro, fingerprint
from bridge.codec.transcode import Transcoder
from bridge.codec.typed import ItemCoercer, is_typed, item_record, plain_typed
from bridge.codec.writer import EnvelopeWriter, twos_complement
from bridge.errors import FatalError
from bridge.normalize import INT64_MAX, INT64_MIN, ChangeEvent, DynamoSet

__all__ = [
    "MAGIC",
    "SCHEMAS",
    "EnvelopeCodec",
    "crc64_avro",
    "decode_value",
    "encode_event",
    "envelope_schema",
    "fingerprint",
]

MAGIC = b"\xc3\x01"
NAMESPACE = "io.cdcbridge"
_VSD = f"{NAMESPACE}.VariableScaleDecimal"
_SETS = {"SS": f"{NAMESPACE}.StringSet", "NS": f"{NAMESPACE}.NumberSet", "BS": f"{NAMESPACE}.BinarySet"}


@cache
def envelope_schema() -> dict:
    """The generic envelope schema shipped in `schemas/envelope.avsc`, parsed."""
    return fastavro.parse_schema(generic_envelope_json())


def decimal_to_vsd(number: Decimal | int) -> dict:
    """An exact number as Debezium's VariableScaleDecimal `{scale, value}`."""
    if isinstance(number, int):
        unscaled, scale = number, 0
    else:
        sign, digits, exponent = number.as_tuple()
        unscaled = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
        scale = -exponent
    return {"scale": scale, "value": twos_complement(unscaled)}


def vsd_to_decimal(vsd: dict) -> int | Decimal:
    """The inverse of `decimal_to_vsd`: an int when the scale is 0, else an exact Decimal."""
    unscaled = int.from_bytes(vsd["value"], "big", signed=True)
    if vsd["scale"] == 0 and INT64_MIN <= unscaled <= INT64_MAX:
        return unscaled
    digits = tuple(int(c) for c in str(abs(unscaled)))
    return Decimal((int(unscaled < 0), digits, -vsd["scale"]))


class _GenericItems:
    """Turns plain item values into the generic schema's datum, naming each union branch (no guessing)."""

    def __init__(self, numbers: str) -> None:
        self.numbers = numbers

    def number(self, value: int | Decimal) -> tuple[str, Any]:
        if self.numbers == "double":
            return ("double", float(value))
        if self.numbers == "string":
            return ("string", str(value))
        if type(value) is int and INT64_MIN <= value <= INT64_MAX:
            return ("long", value)
        return (_VSD, decimal_to_vsd(value))

    def value(self, value: Any) -> dict:
        kind = type(value)
        if kind is str:
            branch = ("string", value)
        elif kind is int or kind is Decimal:
            branch = self.number(value)
        elif kind is dict:
            branch = ("map", self.item(value))
        elif kind is DynamoSet:
            branch = (_SETS[value.kind], {"values": self.set_values(value)})
        elif kind is list:
            branch = ("array", [self.value(v) for v in value])
        elif kind is bool:
            branch = ("boolean", value)
        elif value is None:
            branch = ("null", None)
        elif kind is bytes:
            branch = ("bytes", value)
        elif kind is float:
            branch = ("double", value)
        else:
            raise TypeError(f"cannot encode {kind.__name__} as a DynamoDB value")
        return {"value": branch}

    def set_values(self, values: DynamoSet) -> list:
        if values.kind == "NS":
            return [{"value": self.number(v)} for v in values]
        return list(values)

    def item(self, item: dict) -> dict:
        return {name: self.value(v) for name, v in item.items()}

    def side(self, item: dict | None) -> tuple[str, dict | None]:
        """An optional item (`before` / `after`) with its union branch named."""
        return ("null", None) if item is None else ("map", self.item(item))


def envelope(event: ChangeEvent, ts_ms: int) -> dict:
    """The envelope of `event` as plain values (what a consumer gets after `decode_value`)."""
    position = event.position
    return {
        "op": event.op,
        "keys": event.keys,
        "before": event.before,
        "after": event.after,
        "source": {
            "table": event.table,
            "region": event.region,
            "stream_arn": position.stream_arn,
            "shard_id": position.shard_id,
            "sequence_number": position.sequence_number,
            "event_id": event.event_id,
            "approximate_creation_ms": event.approximate_creation_ms,
            "ttl_expired": event.ttl_expired,
            "snapshot": event.op == "r",
            "current_item": event.current_item,
            "view_type": event.view_type,
        },
        "ts_ms": ts_ms,
    }


class EnvelopeCodec:
    """Encodes change events as Avro envelopes with one writer schema; reuse one per table.

    Without `item_schema` items use the generic AttributeValue map, numbers per `numbers`
    (`exact` | `double` | `string`). With `item_schema` (an `.avsc` file holding a record) items are coerced
    to that record (`bridge.codec.typed`; `numbers` then applies to `keys` only) and the writer schema is
    the envelope derived from it. Either way the writer schema joins `SCHEMAS`, so `decode_value` finds it.
    """

    def __init__(
        self, numbers: str = "exact", wire_format: str = "single_object", item_schema: str | None = None
    ) -> None:
        self.item_schema = item_schema
        if item_schema is None:
            self.schema_json = generic_envelope_json()
        else:
            self.schema_json = typed_envelope_json(load_item_schema(item_schema), item_schema)
        self.fingerprint, self.schema = SCHEMAS.register(self.schema_json)
        self.wire_format = wire_format
        self._items = _GenericItems(numbers)
        self._typed = ItemCoercer(item_record(self.schema)) if item_schema is not None else None
        if wire_format not in ("single_object", "confluent", "raw"):
            raise ValueError(f"wire_format must be single_object, confluent or raw, got {wire_format!r}")
        # confluent: the 5-byte header of the schema's registry id, once the Kafka sink registered it (`frame`)
        self._header: bytes | None = {"single_object": MAGIC + self.fingerprint, "raw": b""}.get(wire_format)
        # the generic envelope goes through the fast writer (same bytes as fastavro, tests/unit/test_writer_exact.py)
        self._writer = EnvelopeWriter.for_schema(self.schema, numbers) if item_schema is None else None
        # generic + exact: images go from attribute-value JSON straight to Avro (bridge/codec/transcode.py)
        self.transcoder = Transcoder(self.schema) if self._writer is not None and numbers == "exact" else None

    def encode(self, event: ChangeEvent, ts_ms: int | None = None) -> bytes:
        """The Kafka value for `event`: its `body` framed per `wire_format`.

        Raises `PoisonRecordError` (path `before.<field>` / `after.<field>`) when a typed item does not fit.
        """
        header = self._header
        if header is None:
            raise FatalError("wire_format confluent: the writer schema was not registered before the first record")
        return header + self.body(event, ts_ms)

    def body(self, event: ChangeEvent, ts_ms: int | None = None) -> bytes:
        """The Avro body of `event`'s envelope, without the wire format's framing (Avro files, the stdout sink)."""
        if self._writer is not None:
            sides = self.transcoder.sides(event) if self.transcoder is not None else None
            ts_ms = ts_ms if ts_ms is not None else int(time.time() * 1000)
            return self._writer.body(event, ts_ms, sides)
        datum = envelope(event, ts_ms if ts_ms is not None else int(time.time() * 1000))
        items = self._items
        datum["keys"] = items.item(datum["keys"])
        if self._typed is None:
            datum["before"] = items.side(datum["before"])
            datum["after"] = items.side(datum["after"])
        else:
            datum["before"] = self._typed.side(datum["before"], "before")
            datum["after"] = self._typed.side(datum["after"], "after")
        out = io.BytesIO()
        fastavro.schemaless_writer(out, self.schema, datum)
        return out.getvalue()

    def frame(self, header: bytes) -> None:
        """Values start with `header` from now on (the Confluent header of the registered schema's id)."""
        self._header = header

    @property
    def record_name(self) -> str:
        """The full name of the writer schema's record (for the registry's record name strategies)."""
        return self.schema["name"]


def table_codec(config: Any, table: Any) -> EnvelopeCodec:
    """The codec of a table (`TableConfig`) under `config`: its numbers, the wire format in effect, its schema."""
    return EnvelopeCodec(config.encoding.numbers, config.encoding.framing(config.schema_registry), table.schema)


def encode_event(event: ChangeEvent, *, numbers: str = "exact", wire_format: str = "single_object") -> bytes:
    """Encode one event with the generic envelope as a Kafka value (for scripts; pipelines reuse an `EnvelopeCodec`)."""
    return _codec(numbers, wire_format).encode(event)


@cache
def _codec(numbers: str, wire_format: str) -> EnvelopeCodec:
    return EnvelopeCodec(numbers, wire_format)


def _plain(value: Any) -> Any:
    """A decoded AttributeValue union (read with `return_record_name`) as a plain value."""
    if isinstance(value, tuple):
        name, record = value
        if name == _VSD:
            return vsd_to_decimal(record)
        kind = next(tag for tag, set_name in _SETS.items() if set_name == name)
        values = record["values"]
        return DynamoSet(kind, [_plain(v["value"]) for v in values] if kind == "NS" else values)
    if isinstance(value, dict):
        return {k: _plain(v["value"]) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v["value"]) for v in value]
    return value


def decode_value(data: bytes, schema: dict | None = None, *, registry: Any = None) -> dict:
    """Decode a Kafka value written by the bridge into the plain envelope.

    Generic items come back exactly as normalized (int or exact `Decimal` numbers, sets as `DynamoSet`);
    typed items as their record's values (sets as lists, decimals as `Decimal`). Single-object values find
    their writer schema by fingerprint in `bridge.codec.SCHEMAS`; Confluent-framed values (`00` + schema id)
    by id in `registry` (a `bridge.codec.registry.SchemaRegistry`, which caches it; without one a value is not
    taken for Confluent-framed, since a raw body may start with 00 too); `schema` (parsed) overrides both, and
    is needed for `raw` values of typed tables (raw values default to the generic envelope).
    """
    body = io.BytesIO(data)
    if registry is not None and data[:1] == b"\x00" and len(data) >= 5:
        if schema is None:
            schema = registry.parsed(int.from_bytes(data[1:5], "big"))
        body.seek(5)
    elif data[:2] == MAGIC:
        if schema is None:
            schema = SCHEMAS.find(data[2:10])
        if schema is None:
            raise ValueError(
                f"unknown writer schema fingerprint {data[2:10].hex()}: add its schema with SCHEMAS.add_folder(...)"
            )
        body.seek(10)
    elif schema is None:
        schema = envelope_schema()
    record = fastavro.schemaless_reader(body, schema, None, return_record_name=True)
    record["keys"] = _plain(record["keys"])
    items = plain_typed if is_typed(schema) else _plain
    for side in ("before", "after"):
        if record[side] is not None:
            record[side] = items(record[side])
    return record
