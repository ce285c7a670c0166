"""Hypothesis strategies for DynamoDB attribute values as the low-level boto3 client sends and returns them.

Numbers cover DynamoDB's whole range (up to 38 significant digits, magnitudes from 1E-130 to
9.99...E+125, int64 edges); binary covers every byte value; strings include the empty string; maps and
lists may be empty or nested up to DynamoDB's 32 levels; all three set kinds appear.
"""

from __future__ import annotations

import base64
from decimal import Decimal

from boto3.dynamodb.types import Binary, TypeDeserializer
from hypothesis import strategies as st

from bridge.normalize import DynamoSet

EXTREME_NUMBERS = [
    "0",
    "1E-130",
    "-1E-130",
    "9.9999999999999999999999999999999999999E+125",
    "-9.9999999999999999999999999999999999999E+125",
    "99999999999999999999999999999999999999",
    "-0.00000000000000000000000000000000000001",
    "12345678901234567890123456789012345678E-150",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "10.0",
    "1.50",
]


@st.composite
def _scientific(draw) -> str:
    """A number DynamoDB accepts: 1-38 significant digits, adjusted exponent in [-130, 125], last digit >= 1E-165."""
    adjusted = draw(st.integers(-130, 125))
    count = draw(st.integers(1, min(38, adjusted + 166)))
    digits = draw(st.sampled_from("123456789")) + draw(st.text("0123456789", min_size=count - 1, max_size=count - 1))
    sign = draw(st.sampled_from(["", "-"]))
    if draw(st.booleans()):
        return f"{sign}{digits[0]}.{digits[1:]}E{adjusted}" if count > 1 else f"{sign}{digits}E{adjusted}"
    return str(Decimal((int(sign == "-"), tuple(int(d) for d in digits), adjusted - (count - 1))))


numbers = st.one_of(
    st.sampled_from(EXTREME_NUMBERS),
    st.integers(-(2**63), 2**63 - 1).map(str),
    _scientific(),
)
names = st.text(min_size=1, max_size=12)
binaries = st.one_of(st.binary(max_size=40), st.just(bytes(range(256))))

scalars = st.one_of(
    st.builds(lambda s: {"S": s}, st.text(max_size=30)),
    st.builds(lambda n: {"N": n}, numbers),
    st.builds(lambda b: {"B": b}, binaries),
    st.builds(lambda b: {"BOOL": b}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda v: {"SS": v}, st.lists(st.text(max_size=10), min_size=1, max_size=5, unique=True)),
    st.builds(lambda v: {"NS": v}, st.lists(numbers, min_size=1, max_size=5, unique_by=Decimal)),
    st.builds(lambda v: {"BS": v}, st.lists(binaries, min_size=1, max_size=4, unique=True)),
)

# JSON of any shape, type tags included where they do not belong: what a malformed attribute value may be
malformed_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5), st.binary(max_size=3)),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.sampled_from(["S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS", "x"]), children, max_size=2
        ),
    ),
    max_leaves=8,
)


def _containers(children):
    return st.one_of(
        st.builds(lambda v: {"L": v}, st.lists(children, max_size=4)),
        st.builds(lambda v: {"M": v}, st.dictionaries(names, children, max_size=4)),
    )


def _nest(value: dict, depth: int, list_levels: int) -> dict:
    """`value` nested `depth` levels deep; bit i of `list_levels` makes level i a list, else a map."""
    for level in range(depth):
        value = {"L": [value]} if list_levels >> level & 1 else {"M": {"deeper": value}}
    return value


deep_values = st.builds(_nest, scalars, st.integers(20, 31), st.integers(0, 2**31 - 1))
attribute_values = st.one_of(st.recursive(scalars, _containers, max_leaves=12), deep_values)
items = st.dictionaries(names, attribute_values, max_size=6)


def as_stream_json(value: dict) -> dict:
    """An attribute value as raw stream JSON / Lambda events carry it: binary as base64 text."""
    ((tag, inner),) = value.items()
    if tag == "B":
        return {"B": base64.b64encode(inner).decode()}
    if tag == "BS":
        return {"BS": [base64.b64encode(b).decode() for b in inner]}
    if tag == "M":
        return {"M": {k: as_stream_json(v) for k, v in inner.items()}}
    if tag == "L":
        return {"L": [as_stream_json(v) for v in inner]}
    return value


def oracle(value: dict) -> object:
    """What boto3's own `TypeDeserializer` makes of an attribute value."""
    return TypeDeserializer().deserialize(value)


def comparable(value: object) -> object:
    """A form in which equal DynamoDB values compare equal: numbers as Decimal, sets as tagged frozensets."""
    if isinstance(value, set | frozenset | DynamoSet):
        return ("set", frozenset(comparable(v) for v in value))
    if isinstance(value, Binary):
        return ("bytes", bytes(value.value))
    if isinstance(value, bytes):
        return ("bytes", value)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | Decimal):
        return ("number", Decimal(value))
    if isinstance(value, float):
        return ("double", value)
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    raise TypeError(f"unexpected {type(value).__name__}")
