"""A typed item schema proposed from sample items (`cdc-bridge schema infer`).

Each attribute's observed values decide its Avro type: strings `string`, binary `bytes`, booleans
`boolean`, numbers `long` when every one is a whole number within int64, else `decimal(38, s)` on bytes
with `s` the most decimal places seen (or `string`, the exact text, when 38 digits cannot hold them all),
lists and sets `array`, maps nested records (an Avro `map` when a key is not a valid Avro name). An
attribute missing from some items, or null in some, is optional (`["null", ...]`, default null); one seen
with several types gets a union. The proposal only covers what the sample shows: review it before use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bridge.errors import ConfigError
from bridge.normalize import INT64_MAX, INT64_MIN, normalize_item

_AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_DIGITS = 38  # DynamoDB's number precision


@dataclass
class _Numbers:
    whole: bool = True
    int_digits: int = 0
    scale: int = 0

    def add(self, value: int | Decimal) -> None:
        if type(value) is int and INT64_MIN <= value <= INT64_MAX:
            self.int_digits = max(self.int_digits, len(str(abs(value))))
            return
        self.whole = False
        number = Decimal(value).normalize()
        _, digits, exponent = number.as_tuple()
        self.int_digits = max(self.int_digits, len(digits) + exponent)
        self.scale = max(self.scale, -exponent)

    def merge(self, other: _Numbers) -> None:
        self.whole = self.whole and other.whole
        self.int_digits = max(self.int_digits, other.int_digits)
        self.scale = max(self.scale, other.scale)


@dataclass
class _Shape:
    """Everything seen at one attribute path."""

    kinds: set[str] = field(default_factory=set)
    numbers: _Numbers | None = None
    elements: _Shape | None = None
    fields: dict[str, _Shape] | None = None
    present: dict[str, int] = field(default_factory=dict)
    maps: int = 0

    def add(self, value: Any) -> None:
        kind = type(value)
        if value is None:
            self.kinds.add("null")
        elif kind is bool:
            self.kinds.add("boolean")
        elif kind is str:
            self.kinds.add("string")
        elif kind is bytes:
            self.kinds.add("bytes")
        elif kind is int or kind is Decimal:
            self.numbers = self.numbers or _Numbers()
            self.numbers.add(value)
        elif isinstance(value, list):
            self.elements = self.elements or _Shape()
            for element in value:
                self.elements.add(element)
        elif isinstance(value, dict):
            self.fields = {} if self.fields is None else self.fields
            self.maps += 1
            for name, element in value.items():
                self.fields.setdefault(name, _Shape()).add(element)
                self.present[name] = self.present.get(name, 0) + 1
        else:
            raise TypeError(f"cannot infer an Avro type for {kind.__name__}")

    def merge(self, other: _Shape) -> None:
        self.kinds |= other.kinds
        if other.numbers:
            self.numbers = self.numbers or _Numbers()
            self.numbers.merge(other.numbers)
        if other.elements:
            self.elements = self.elements or _Shape()
            self.elements.merge(other.elements)
        if other.fields is not None:
            self.fields = {} if self.fields is None else self.fields
            self.maps += other.maps
            for name, shape in other.fields.items():
                self.fields.setdefault(name, _Shape()).merge(shape)
                self.present[name] = self.present.get(name, 0) + other.present[name]


def avro_name(text: str) -> str:
    """`text` made into a valid Avro name (other characters become `_`)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return name if _AVRO_NAME.fullmatch(name) else f"_{name}"


def _number_type(numbers: _Numbers) -> Any:
    if numbers.whole:
        return "long"
    if numbers.int_digits + numbers.scale > MAX_DIGITS:
        return "string"
    return {"type": "bytes", "logicalType": "decimal", "precision": MAX_DIGITS, "scale": numbers.scale}


def _avro_type(shape: _Shape, name: str, optional: bool) -> Any:
    branches: list[Any] = []
    if optional or "null" in shape.kinds:
        branches.append("null")
    if "boolean" in shape.kinds:
        branches.append("boolean")
    if shape.numbers:
        branches.append(_number_type(shape.numbers))
    if "string" in shape.kinds and "string" not in branches:
        branches.append("string")
    if "bytes" in shape.kinds:
        branches.append("bytes")
    if shape.elements is not None:
        items = _avro_type(shape.elements, f"{name}_item", False) if _seen(shape.elements) else "string"
        branches.append({"type": "array", "items": items})
    if shape.fields is not None:
        branches.append(_record_or_map(shape, name))
    if not branches:
        return "null"
    return branches[0] if len(branches) == 1 else branches


def _seen(shape: _Shape) -> bool:
    return bool(shape.kinds or shape.numbers or shape.elements is not None or shape.fields is not None)


def _record_or_map(shape: _Shape, name: str) -> dict:
    assert shape.fields is not None
    if all(_AVRO_NAME.fullmatch(key) for key in shape.fields):
        return _record(shape, name, ())
    values = _Shape()
    for element in shape.fields.values():
        values.merge(element)
    return {"type": "map", "values": _avro_type(values, f"{name}_value", False) if _seen(values) else "string"}


def _record(shape: _Shape, name: str, first: tuple[str, ...]) -> dict:
    assert shape.fields is not None
    order = [n for n in first if n in shape.fields] + [n for n in shape.fields if n not in first]
    fields = []
    for field_name in order:
        child = shape.fields[field_name]
        optional = shape.present[field_name] < shape.maps
        avro_type = _avro_type(child, f"{name}_{avro_name(field_name)}", optional)
        entry: dict[str, Any] = {"name": field_name, "type": avro_type}
        if isinstance(avro_type, list) and avro_type[0] == "null":
            entry["default"] = None
        fields.append(entry)
    return {"type": "record", "name": name, "fields": fields}


def infer_item_schema(items: Iterable[dict], table: str, key_names: tuple[str, ...] = ()) -> dict:
    """An Avro record schema (JSON object) that every one of the plain `items` fits; key attributes first.

    Raises `ConfigError` when there are no items, or a top-level attribute name cannot be an Avro field name.
    """
    shape = _Shape(fields={})
    count = 0
    for item in items:
        shape.add(item)
        count += 1
    if not count:
        raise ConfigError(f"table {table}: no items to infer a schema from (the scan found none)")
    bad = [name for name in shape.fields or {} if not _AVRO_NAME.fullmatch(name)]
    if bad:
        raise ConfigError(
            f"table {table}: attribute {bad[0]!r} is not a valid Avro field name ([A-Za-z_][A-Za-z0-9_]*), "
            "so no typed schema can hold it; use the generic encoding (no `schema:`) for this table"
        )
    schema = _record(shape, avro_name(table), key_names)
    schema["doc"] = f"Items of DynamoDB table {table}, inferred by cdc-bridge from {count} item(s)."
    return schema


def scan_items(dynamodb: Any, table: str, limit: int, page_size: int = 1000) -> Iterator[dict]:
    """Up to `limit` items of `table` as plain values, read with Scan page by page."""
    request: dict[str, Any] = {"TableName": table}
    remaining = limit
    while remaining > 0:
        page = dynamodb.scan(**request, Limit=min(page_size, remaining))
        for image in page.get("Items", [])[:remaining]:
            yield normalize_item(image)
            remaining -= 1
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
