"""A fast Avro writer for the generic envelope schema (`schemas/envelope.avsc`).

It writes exactly the bytes `fastavro.schemaless_writer` writes for the same event when every union branch
is named (tests/unit/test_writer_exact.py checks this byte for byte), in one pass over the plain values
and without fastavro's per-datum schema dispatch. Branch indexes and field order are read from the parsed
schema when the writer is built; a schema of another shape is refused (`ValueError`), so the codec keeps
fastavro for it.

Avro binary, in short: `long`/`int` are zig-zag varints; `string`/`bytes` a length then the bytes;
`boolean` one byte; `double` 8 bytes little-endian; a union the branch index then the value; an array or
map one block (item count, items, then 0), or just 0 when empty; a record its fields in order.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from decimal import Context, Decimal, Inexact, Rounded
from typing import Any

from bridge.normalize import INT64_MAX, INT64_MIN, ChangeEvent, DynamoSet

_ENVELOPE_FIELDS = ["op", "keys", "before", "after", "source", "ts_ms"]
_SOURCE_TYPES = {
    "table": "string",
    "region": "string",
    "stream_arn": "string",
    "shard_id": "string",
    "sequence_number": "string",
    "event_id": "string",
    "approximate_creation_ms": "long",
    "ttl_expired": "boolean",
    "snapshot": "boolean",
    "current_item": "boolean",
    "view_type": "string",
}
_TABLE_SIZE = 1 << 13  # lengths and small longs below this come from precomputed tables
_pack_double = struct.Struct("<d").pack
_EXACT = Context(prec=200, Emin=-999_999, Emax=999_999, traps=[Inexact, Rounded])


def _uvarint_slow(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_UVARINT = [_uvarint_slow(n) for n in range(1 << 14)]  # every value of up to 14 bits
_UVARINT_MORE = [bytes(((c & 0x7F) | 0x80, (c >> 7) | 0x80)) for c in range(1 << 14)]  # 14 bits, more follow


def uvarint(n: int) -> bytes:
    """An unsigned varint (7 bits per byte, low bits first), as Avro writes zig-zagged numbers."""
    if n < 16384:
        return _UVARINT[n]
    parts = []
    while n >= 16384:
        parts.append(_UVARINT_MORE[n & 0x3FFF])
        n >>= 14
    parts.append(_UVARINT[n])
    return b"".join(parts)


def zigzag(n: int) -> bytes:
    """An Avro `long` (or `int`): zig-zag, then varint."""
    return uvarint(n << 1 if n >= 0 else ~(n << 1))


_LENGTH = [zigzag(n) for n in range(_TABLE_SIZE)]
_SMALL_LONG = [zigzag(n) for n in range(-_TABLE_SIZE, _TABLE_SIZE)]


def _long(n: int) -> bytes:
    if -_TABLE_SIZE <= n < _TABLE_SIZE:
        return _SMALL_LONG[n + _TABLE_SIZE]
    return zigzag(n)


def twos_complement(n: int) -> bytes:
    """`n` as Java's `BigInteger.toByteArray()` writes it, and so Debezium: the fewest big-endian bytes of its
    two's complement (-128 is `80`, -129 `ff 7f`, 128 `00 80`, 0 `00`)."""
    return n.to_bytes(((n if n >= 0 else ~n).bit_length() + 8) // 8, "big", signed=True)  # ~n = -n - 1


def _vsd(number: Decimal | int) -> bytes:
    """Debezium's VariableScaleDecimal record body: `scale` (int), then `value` (big-endian two's complement)."""
    if isinstance(number, int):
        unscaled, scale = number, 0
    else:
        scale = -number.as_tuple().exponent
        unscaled = int(number.scaleb(scale, _EXACT))  # exact: the context holds every DynamoDB number
    value = twos_complement(unscaled)
    return _long(scale) + _LENGTH[len(value)] + value


def _branches(schema: dict) -> dict[str, int]:
    """Union branch indexes of the AttributeValue record, by type or full name."""
    keys = next(f for f in schema["fields"] if f["name"] == "keys")
    union = keys["type"]["values"]["fields"][0]["type"]
    names = {}
    for index, branch in enumerate(union):
        if isinstance(branch, str):
            names[branch] = index
        elif branch["type"] in ("record", "enum", "fixed"):
            names[branch["name"].rsplit(".", 1)[-1]] = index
        else:
            names[branch["type"]] = index
    return names


def _kind(schema: Any) -> str:
    return schema if isinstance(schema, str) else schema["type"]


def _check_shape(schema: dict) -> None:
    types = {f["name"]: f["type"] for f in schema["fields"]}
    source = types.get("source")
    source_types = {f["name"]: f["type"] for f in source["fields"]} if isinstance(source, dict) else {}
    optional_maps = all(
        isinstance(types.get(side), list) and [_kind(t) for t in types[side]] == ["null", "map"]
        for side in ("before", "after")
    )
    if (
        list(types) != _ENVELOPE_FIELDS
        or list(source_types.items()) != list(_SOURCE_TYPES.items())  # the body writes them in this order
        or not optional_maps
        or _kind(types["op"]) != "enum"
        or _kind(types["keys"]) != "map"
        or _kind(types["ts_ms"]) != "long"
    ):
        raise ValueError(f"the fast writer knows the generic envelope {_ENVELOPE_FIELDS} only, got {list(types)}")


def value_writer(schema: dict, numbers: str = "exact") -> Callable[[bytearray, dict], None]:
    """A function that appends a generic item (a map of AttributeValue) to a buffer.

    `numbers` is `exact` (long within int64, else VariableScaleDecimal), `double` or `string`, as in
    `EnvelopeCodec`.
    """
    index = _branches(schema)
    tag = {name: zigzag(i) for name, i in index.items()}
    null, boolean, long_, string, bytes_ = tag["null"], tag["boolean"], tag["long"], tag["string"], tag["bytes"]
    vsd, double, array, map_ = tag["VariableScaleDecimal"], tag["double"], tag["array"], tag["map"]
    set_tags = {"SS": tag["StringSet"], "NS": tag["NumberSet"], "BS": tag["BinarySet"]}
    true, false = boolean + b"\x01", boolean + b"\x00"
    length, table_size = _LENGTH, _TABLE_SIZE
    # a union branch and what follows it in one piece: fewer appends in the hottest loop
    string_head = [string + n for n in _LENGTH]
    array_head = [array + n for n in _LENGTH]
    small_long_head = [long_ + n for n in _SMALL_LONG]

    def number(out: bytearray, value: int | Decimal) -> None:
        if numbers == "double":
            out += double
            out += _pack_double(float(value))
        elif numbers == "string":
            text = str(value).encode()
            out += string
            out += length[len(text)] if len(text) < table_size else zigzag(len(text))
            out += text
        elif type(value) is int and INT64_MIN <= value <= INT64_MAX:
            out += long_
            out += _long(value)
        else:
            out += vsd
            out += _vsd(value)

    exact = numbers == "exact"

    def value(out: bytearray, item: Any) -> None:
        kind = type(item)
        if kind is str:
            data = item.encode()
            n = len(data)
            out += string_head[n] if n < table_size else string + zigzag(n)
            out += data
        elif kind is int and exact and -table_size <= item < table_size:
            out += small_long_head[item + table_size]
        elif kind is Decimal and exact:
            out += vsd
            out += _vsd(item)
        elif kind is int or kind is Decimal:
            number(out, item)
        elif kind is dict:
            out += map_
            mapping(out, item)
        elif kind is list:
            if item:
                out += array_head[len(item)] if len(item) < table_size else array + zigzag(len(item))
                for element in item:
                    value(out, element)
                out += b"\x00"
            else:
                out += array_head[0]
        elif kind is bool:
            out += true if item else false
        elif item is None:
            out += null
        elif kind is bytes:
            n = len(item)
            out += bytes_
            out += length[n] if n < table_size else zigzag(n)
            out += item
        elif kind is DynamoSet:
            out += set_tags[item.kind]
            if item:
                out += length[len(item)] if len(item) < table_size else zigzag(len(item))
                if item.kind == "NS":
                    for element in item:
                        number(out, element)
                else:
                    for element in item:
                        data = element.encode() if item.kind == "SS" else element
                        out += length[len(data)] if len(data) < table_size else zigzag(len(data))
                        out += data
            out += b"\x00"
        elif kind is float:
            out += double
            out += _pack_double(item)
        else:
            raise TypeError(f"cannot encode {kind.__name__} as a DynamoDB value")

    names: dict[str, bytes] = {}  # attribute name -> its encoded form (length + UTF-8); names repeat a lot

    def mapping(out: bytearray, item: dict) -> None:
        if item:
            out += length[len(item)] if len(item) < table_size else zigzag(len(item))
            for name, element in item.items():
                key = names.get(name)
                if key is None:
                    key = _string(name)
                    if len(names) < 10_000:
                        names[name] = key
                out += key
                value(out, element)
        out += b"\x00"

    return mapping


def _string(text: str) -> bytes:
    data = text.encode()
    return zigzag(len(data)) + data


class EnvelopeWriter:
    """Writes `ChangeEvent`s as Avro bodies of the generic envelope schema; reuse one per codec.

    `schema` is the parsed envelope schema (`bridge.codec.avro.envelope_schema()`).
    """

    def __init__(self, schema: dict, numbers: str = "exact") -> None:
        _check_shape(schema)
        if numbers not in ("exact", "double", "string"):
            raise ValueError(f"numbers must be exact, double or string, got {numbers!r}")
        symbols = next(f for f in schema["fields"] if f["name"] == "op")["type"]["symbols"]
        self._ops = {symbol: zigzag(i) for i, symbol in enumerate(symbols)}
        self._item = value_writer(schema, numbers)
        self._sources: dict[tuple[str, str, str, str], bytes] = {}
        self._tail_of: tuple | None = None  # the last fields of the last event written, and their bytes
        self._tail = b""

    @classmethod
    def for_schema(cls, schema: dict, numbers: str = "exact") -> EnvelopeWriter | None:
        """A writer for `schema`, or None when it is not the generic envelope (then use fastavro)."""
        try:
            return cls(schema, numbers)
        except (ValueError, KeyError, TypeError, StopIteration):
            return None

    def _source_head(self, event: ChangeEvent) -> bytes:
        """The first four source fields, the same for every event of a shard (cached)."""
        key = (event.table, event.region, event.position.stream_arn, event.position.shard_id)
        head = self._sources.get(key)
        if head is None:
            if len(self._sources) > 4096:
                self._sources.clear()
            head = self._sources[key] = b"".join(_string(part) for part in key)
        return head

    def body(self, event: ChangeEvent, ts_ms: int, sides: tuple[bytes, bytes] | None = None) -> bytes:
        """The Avro body of `event`'s envelope, processed at `ts_ms`.

        `sides`, when given, are `before` and `after` already encoded (`bridge.codec.transcode`).
        """
        out = bytearray(self._ops[event.op])
        item = self._item
        item(out, event.keys)
        if sides is not None:
            out += sides[0]
            out += sides[1]
        else:
            for side in (event.before, event.after):
                if side is None:
                    out += b"\x00"
                else:
                    out += b"\x02"
                    item(out, side)
        out += self._source_head(event)
        out += _string(event.position.sequence_number)
        out += _string(event.event_id)
        out += _long(event.approximate_creation_ms)
        tail = (event.ttl_expired, event.op == "r", event.current_item, event.view_type, ts_ms)
        if tail != self._tail_of:  # the same for the events of one write, mostly
            self._tail_of = tail
            flags = bytes((bool(event.ttl_expired), event.op == "r", bool(event.current_item)))
            self._tail = flags + _string(event.view_type) + _long(ts_ms)
        out += self._tail
        return bytes(out)
