"""Coercion of one plain value to one primitive Avro type or a `decimal`: exact, or refused with a reason.

Each converter takes `(value, path)` and returns the Avro datum, or raises `PoisonRecordError(reason, path)`.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bridge.errors import PoisonRecordError

Converter = Callable[[Any, str], Any]
_INT_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_FLOAT_MAX = {"float": 3.4028234663852886e38, "double": math.inf}
_WIDE = decimal.Context(prec=400, Emin=-999999, Emax=999999)


def fail(path: str, reason: str) -> PoisonRecordError:
    """The refusal of the value at `path`."""
    return PoisonRecordError(reason, path)


_KINDS = {type(None): "null", bool: "boolean", int: "number", Decimal: "number", str: "string", bytes: "binary"}


def kind_of(value: Any) -> str:
    """What a plain value is, in DynamoDB's words, for refusal reasons."""
    if type(value) in _KINDS:
        return _KINDS[type(value)]
    return "map" if isinstance(value, dict) else "list" if isinstance(value, list) else type(value).__name__


def is_number(value: Any) -> bool:
    """Whether `value` is a DynamoDB number as `normalize` gives it (int or Decimal, never bool)."""
    return type(value) is int or type(value) is Decimal


def primitive(kind: str) -> Converter:
    """The converter to the primitive Avro type `kind` (`null`, `boolean`, `int`, `long`, `float`, `double`, ...)."""
    if kind == "null":

        def null(value: Any, path: str) -> None:
            if value is not None:
                raise fail(path, f"expected null, got a {kind_of(value)}")

        return null
    if kind == "boolean":

        def boolean(value: Any, path: str) -> bool:
            if type(value) is not bool:
                raise fail(path, f"expected a boolean, got a {kind_of(value)}")
            return value

        return boolean
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]

        def whole(value: Any, path: str) -> int:
            if not is_number(value):
                raise fail(path, f"expected a number for {kind}, got a {kind_of(value)}")
            if type(value) is Decimal:
                if value != value.to_integral_value():
                    raise fail(path, f"{value} is not a whole number, so it does not fit {kind}")
                value = int(value)
            if not low <= value <= high:
                raise fail(path, f"{value} is out of the {kind} range [{low}, {high}]")
            return value

        return whole
    if kind in _FLOAT_MAX:
        limit = _FLOAT_MAX[kind]

        def floating(value: Any, path: str) -> float:
            if not (is_number(value) or type(value) is float):
                raise fail(path, f"expected a number for {kind}, got a {kind_of(value)}")
            number = float(value)
            if math.isinf(number) or abs(number) > limit:
                raise fail(path, f"{value} is out of the {kind} range")
            return number

        return floating
    if kind == "string":

        def string(value: Any, path: str) -> str:
            if type(value) is str:
                return value
            if is_number(value):
                return str(value)
            raise fail(path, f"expected a string, got a {kind_of(value)}")

        return string
    if kind == "bytes":

        def binary(value: Any, path: str) -> bytes:
            if type(value) is not bytes:
                raise fail(path, f"expected binary, got a {kind_of(value)}")
            return value

        return binary
    raise ValueError(f"unknown Avro type {kind!r}")


def exact_decimal(schema: dict) -> Converter:
    """The converter to a `decimal` logical type on `bytes` or `fixed`: exact, or refused."""
    precision, scale = schema["precision"], schema.get("scale", 0)
    size = schema.get("size")
    what = f"decimal({precision}, {scale})"

    def convert(value: Any, path: str) -> Decimal:
        if not is_number(value):
            raise fail(path, f"expected a number for {what}, got a {kind_of(value)}")
        scaled = _WIDE.scaleb(Decimal(value), scale)
        if scaled != scaled.to_integral_value():
            raise fail(path, f"{value} has more than {scale} decimal places, so it does not fit {what}")
        unscaled = int(scaled)
        if len(str(abs(unscaled))) > precision:
            raise fail(path, f"{value} has more than {precision} digits at scale {scale}, so it does not fit {what}")
        if size is not None and unscaled.bit_length() + 1 > size * 8:
            raise fail(path, f"{value} does not fit {size} bytes")
        digits = tuple(int(c) for c in str(abs(unscaled)))
        return Decimal((int(unscaled < 0), digits, -scale))

    return convert
