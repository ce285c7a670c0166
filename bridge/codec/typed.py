"""Typed items: plain item values coerced to a table's Avro record schema, and back.

Coercion is exact or refused. A number goes to `long`/`int` when it is whole and in range, to `decimal`
(bytes or fixed) when it has at most `scale` decimal places and `precision` digits, to `double`/`float`
(nearest value; a number beyond the type's range is refused) or to `string` (its exact decimal text).
Sets become arrays (sorted); maps go to records or Avro maps; a missing attribute takes the field's default,
else null when the field may be null. An attribute the record has no field for is refused: a typed schema
never drops data silently. Every refusal is a `PoisonRecordError` whose path names the field
(`after.Specs.ram`) and whose reason says what did not fit.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

from bridge.codec.coerce import Converter, exact_decimal, fail, kind_of, primitive
from bridge.errors import PoisonRecordError

_NATURAL = {  # the Python kind each Avro type takes without conversion; unions try these branches first
    "null": type(None),
    "boolean": bool,
    "int": int,
    "long": int,
    "float": float,
    "double": float,
    "string": str,
    "enum": str,
    "bytes": bytes,
    "fixed": bytes,
    "decimal": Decimal,
    "record": dict,
    "map": dict,
    "array": list,
}


class ItemCoercer:
    """Converts plain items (from `normalize_item`) into data for one parsed Avro record schema."""

    def __init__(self, record_schema: dict) -> None:
        self.named: dict[str, dict] = {}
        self._compiled: dict[str, Converter] = {}
        self.name = record_schema["name"]
        self.convert = self._compile(record_schema)

    def side(self, item: dict | None, path: str) -> Any:
        """An optional item (`before`/`after`) as the datum of its `["null", record]` field, branch named."""
        return None if item is None else (self.name, self.convert(item, path))

    def _compile(self, schema: Any) -> Converter:
        if isinstance(schema, list):
            return self._union(schema)
        if isinstance(schema, str):
            if schema in self.named:
                return lambda value, path: self._compiled[schema](value, path)
            return primitive(schema)
        kind = schema["type"]
        named = kind in ("record", "enum", "fixed")
        if named:
            self.named[schema["name"]] = schema  # before compiling the fields: records may refer to themselves
        if schema.get("logicalType") == "decimal" and kind in ("bytes", "fixed"):
            converter = exact_decimal(schema)
        elif kind in self._builders:
            converter = self._builders[kind](self, schema)
        else:
            return self._compile(kind)  # a primitive written as {"type": "long", ...}
        if named:
            self._compiled[schema["name"]] = converter
        return converter

    def _record(self, schema: dict) -> Converter:
        fields = []
        for field in schema["fields"]:
            nullable = field["type"] == "null" or (isinstance(field["type"], list) and "null" in field["type"])
            fields.append((field["name"], self._compile(field["type"]), field, nullable))
        names = {name for name, *_ in fields}
        record_name = schema["name"]

        def record(value: Any, path: str) -> dict:
            if not isinstance(value, dict):
                raise fail(path, f"expected a map for record {record_name}, got a {kind_of(value)}")
            extra = [name for name in value if name not in names]
            if extra:
                where = f"{path}.{extra[0]}" if path else extra[0]
                raise fail(where, f"attribute is not a field of record {record_name}")
            datum = {}
            for name, convert, field, nullable in fields:
                where = f"{path}.{name}" if path else name
                if name in value:
                    datum[name] = convert(value[name], where)
                elif "default" in field:
                    datum[name] = _default(field["type"], field["default"])
                elif nullable:
                    datum[name] = None
                else:
                    raise fail(where, f"required field of record {record_name} is missing from the item")
            return datum

        return record

    def _enum(self, schema: dict) -> Converter:
        symbols = set(schema["symbols"])

        def enum(value: Any, path: str) -> str:
            if type(value) is not str or value not in symbols:
                raise fail(path, f"{value!r} is not a symbol of enum {schema['name']}")
            return value

        return enum

    def _fixed(self, schema: dict) -> Converter:
        size = schema["size"]

        def fixed(value: Any, path: str) -> bytes:
            if type(value) is not bytes or len(value) != size:
                raise fail(path, f"expected {size} bytes for fixed {schema['name']}, got a {kind_of(value)}")
            return value

        return fixed

    def _array(self, schema: dict) -> Converter:
        items = self._compile(schema["items"])

        def array(value: Any, path: str) -> list:
            if not isinstance(value, list):
                raise fail(path, f"expected a list or set, got a {kind_of(value)}")
            return [items(element, f"{path}[{index}]") for index, element in enumerate(value)]

        return array

    def _map(self, schema: dict) -> Converter:
        values = self._compile(schema["values"])

        def mapping(value: Any, path: str) -> dict:
            if not isinstance(value, dict):
                raise fail(path, f"expected a map, got a {kind_of(value)}")
            return {name: values(element, f"{path}.{name}") for name, element in value.items()}

        return mapping

    def _union(self, branches: list) -> Converter:
        compiled = [(_branch_name(b, self.named), _natural(b, self.named), self._compile(b)) for b in branches]

        def union(value: Any, path: str) -> Any:
            if value is None and any(name == "null" for name, *_ in compiled):
                return None
            kind = type(value)
            candidates = sorted(
                ((name, _matches(kind, natural), convert) for name, natural, convert in compiled if name != "null"),
                key=lambda entry: not entry[1],
            )
            errors = []
            for name, _natural, convert in candidates:
                try:
                    return (name, convert(value, path))
                except PoisonRecordError as error:
                    errors.append(error)
            natural_errors = [error for error, entry in zip(errors, candidates, strict=True) if entry[1]]
            if len(errors) == 1 or len(natural_errors) == 1:  # one plausible branch: its own, deeper reason
                raise errors[0] if len(errors) == 1 else natural_errors[0]
            reasons = "; ".join(f"{entry[0]}: {error.reason}" for error, entry in zip(errors, candidates, strict=True))
            raise fail(path, f"fits no branch of the union ({reasons})")

        return union

    _builders: ClassVar[dict[str, Callable[[ItemCoercer, dict], Converter]]] = {
        "record": _record,
        "enum": _enum,
        "fixed": _fixed,
        "array": _array,
        "map": _map,
    }


def _matches(kind: type, natural: type) -> bool:
    """Whether a value of `kind` is what a branch takes without conversion (a bool is no number here)."""
    return kind is natural if kind is bool or natural is int else issubclass(kind, natural)


def _resolve(schema: Any, named: dict[str, dict]) -> Any:
    return named.get(schema, schema) if isinstance(schema, str) else schema


def _branch_name(schema: Any, named: dict[str, dict]) -> str:
    """The name fastavro's tuple notation uses for a union branch: full name, or the type's name."""
    schema = _resolve(schema, named)
    if isinstance(schema, str):
        return schema
    return schema["name"] if schema["type"] in ("record", "enum", "fixed") else schema["type"]


def _natural(schema: Any, named: dict[str, dict]) -> type:
    schema = _resolve(schema, named)
    if isinstance(schema, str):
        return _NATURAL[schema]
    if schema.get("logicalType") == "decimal":
        return Decimal
    return _NATURAL.get(schema["type"], object)


def _default(schema: Any, default: Any) -> Any:
    """A field's JSON default as a datum (bytes and fixed defaults are Latin-1 text in Avro JSON)."""
    if isinstance(schema, list):
        schema = schema[0]
    kind = schema.get("type") if isinstance(schema, dict) else schema
    if kind in ("bytes", "fixed") and isinstance(default, str):
        return default.encode("latin-1")
    return default


def item_record(envelope: dict) -> dict:
    """The parsed item record schema inside a parsed typed envelope (the non-null branch of `before`)."""
    before = next(f for f in envelope["fields"] if f["name"] == "before")["type"]
    return next(branch for branch in before if branch != "null")


def is_typed(envelope: dict) -> bool:
    """Whether a parsed envelope holds typed items (records) rather than the generic AttributeValue map."""
    record = item_record(envelope)
    return isinstance(record, dict) and record.get("type") == "record"


def plain_typed(value: Any) -> Any:
    """A typed item as fastavro reads it with `return_record_name=True`, without union branch names."""
    if isinstance(value, tuple):
        return plain_typed(value[1])
    if isinstance(value, dict):
        return {name: plain_typed(v) for name, v in value.items()}
    if isinstance(value, list):
        return [plain_typed(v) for v in value]
    return value
