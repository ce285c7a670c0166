"""Kafka record keys: all changes of one item get the same key, so they land on one partition, in order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bridge.codec import text
from bridge.normalize import ChangeEvent


def canonical_number(number: int | Decimal) -> str:
    """A number's canonical decimal text: no exponent, no trailing zeros (`1.50` and `1.5` give `1.5`)."""
    if type(number) is int:
        return str(number)
    sign, digits, exponent = number.as_tuple()
    text = "".join(map(str, digits)).lstrip("0")
    significant = text.rstrip("0")
    if not significant:
        return "0"
    exponent += len(text) - len(significant)  # exact: no context rounding, unlike Decimal.normalize()
    if exponent >= 0:
        plain = significant + "0" * exponent
    elif len(significant) + exponent > 0:
        plain = significant[:exponent] + "." + significant[exponent:]
    else:
        plain = "0." + "0" * -(len(significant) + exponent) + significant
    return ("-" if sign else "") + plain


def key_bytes(value: Any) -> bytes:
    """One key attribute as bytes: S as UTF-8, N as its canonical decimal text, B as is."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return value
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return canonical_number(value).encode()
    raise TypeError(f"a DynamoDB key cannot be {type(value).__name__}")


def kafka_key(event: ChangeEvent, mode: str = "partition") -> bytes:
    """The Kafka key of `event`: the partition key value, or with `primary` the whole key as canonical JSON."""
    if mode == "partition":
        return key_bytes(event.partition_key)
    fields = []
    for name, value in sorted(event.keys.items()):
        number = isinstance(value, int | Decimal) and not isinstance(value, bool)
        fields.append(text.dumps(name) + ":" + (canonical_number(value) if number else text.dumps(value)))
    return ("{" + ",".join(fields) + "}").encode()
