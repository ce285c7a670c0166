"""Property tests: whatever DynamoDB holds comes out of Avro exactly as boto3's own TypeDeserializer reads it.

The oracle is `boto3.dynamodb.types.TypeDeserializer`, which nobody here wrote; values are compared with
numbers as `Decimal` and sets as sets (so a set that came back as a plain list fails).
"""

from __future__ import annotations

import contextlib
from decimal import Context, Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.codec import EnvelopeCodec, decode_value
from bridge.codec.keys import canonical_number
from bridge.errors import PoisonRecordError
from bridge.normalize import normalize_item, normalize_value, to_change_event
from tests.dynamo_values import (
    as_stream_json,
    attribute_values,
    binaries,
    comparable,
    items,
    malformed_values,
    names,
    numbers,
    oracle,
)

EXAMPLES = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GENERIC = EnvelopeCodec()


def _record(old: dict | None, new: dict | None, view_type: str) -> dict:
    data = {"Keys": {"pk": {"S": "k"}}, "SequenceNumber": "1", "StreamViewType": view_type}
    if old is not None:
        data["OldImage"] = {"pk": {"S": "k"}, **old}
    if new is not None:
        data["NewImage"] = {"pk": {"S": "k"}, **new}
    return {"eventID": "e", "eventName": "MODIFY", "awsRegion": "us-east-1", "dynamodb": data}


def _roundtrip(record: dict, codec: EnvelopeCodec = GENERIC) -> dict:
    event = to_change_event(record, table="T", stream_arn="arn", shard_id="s")
    return decode_value(codec.encode(event, ts_ms=1))


@EXAMPLES
@given(item=items, raw_json=st.booleans())
def test_generic_envelope_returns_every_item_exactly_as_typedeserializer_reads_it(item, raw_json):
    old = {**item, "version": {"N": "1"}}
    record = _record(old, item, "NEW_AND_OLD_IMAGES")
    if raw_json:  # the record as raw stream JSON and Lambda events carry it: binary as base64 text
        data = record["dynamodb"]
        for side in ("OldImage", "NewImage"):
            data[side] = as_stream_json({"M": data[side]})["M"]
    decoded = _roundtrip(record)
    assert comparable(decoded["before"]) == comparable(oracle({"M": {"pk": {"S": "k"}, **old}}))
    assert comparable(decoded["after"]) == comparable(oracle({"M": {"pk": {"S": "k"}, **item}}))
    assert decoded["keys"] == {"pk": "k"}


@settings(max_examples=300, deadline=None)
@given(value=attribute_values)
def test_normalized_value_equals_typedeserializer_value(value):
    assert comparable(normalize_value(value)) == comparable(oracle(value))
    assert comparable(normalize_value(as_stream_json(value))) == comparable(oracle(value))


@settings(max_examples=300, deadline=None)
@given(view_type=st.sampled_from(["KEYS_ONLY", "OLD_IMAGE", "NEW_IMAGE"]), item=items)
def test_single_image_view_types_keep_what_the_stream_carries(view_type, item):
    old = item if view_type == "OLD_IMAGE" else None
    new = item if view_type == "NEW_IMAGE" else None
    decoded = _roundtrip(_record(old, new, view_type))
    expected = comparable(oracle({"M": {"pk": {"S": "k"}, **item}}))
    assert comparable(decoded["before"]) == (expected if old is not None else None)
    assert comparable(decoded["after"]) == (expected if new is not None else None)
    assert decoded["source"]["view_type"] == view_type


@settings(max_examples=500, deadline=None)
@given(number=numbers, mode=st.sampled_from(["double", "string"]))
def test_double_and_string_number_modes_follow_their_documented_conversion(number, mode):
    codec = EnvelopeCodec(numbers=mode)
    decoded = _roundtrip(_record(None, {"n": {"N": number}}, "NEW_IMAGE"), codec)["after"]["n"]
    exact = oracle({"N": number})
    if mode == "double":
        assert decoded == float(exact)  # nearest double: lossy by design
    else:
        assert Decimal(decoded) == exact and decoded == str(normalize_value({"N": number}))


def _fraction(max_scale: int, max_digits: int):
    """Number text with at most `max_scale` decimal places and `max_digits` digits at that scale."""

    def build(scale: int, unscaled: int) -> str:
        digits = tuple(int(c) for c in str(abs(unscaled)))
        return str(Decimal((int(unscaled < 0), digits, -scale)))

    return st.integers(0, max_scale).flatmap(
        lambda scale: st.integers(
            -(10 ** (max_digits - max_scale + scale)) + 1, 10 ** (max_digits - max_scale + scale) - 1
        ).map(lambda unscaled: build(scale, unscaled))
    )


_INT64 = st.integers(-(2**63), 2**63 - 1).map(lambda i: {"N": str(i)})
_ABSENT = st.just(None)
TYPED_ITEMS = st.fixed_dictionaries(
    {
        "pk": st.text(max_size=10).map(lambda s: {"S": s}),
        "count": _INT64,
        "price": _fraction(10, 38).map(lambda n: {"N": n}),
        "ratio": numbers.map(lambda n: {"N": n}),
        "blob": binaries.map(lambda b: {"B": b}),
        "flag": st.booleans().map(lambda b: {"BOOL": b}),
        "tags": st.one_of(
            st.lists(st.text(max_size=8), min_size=1, max_size=4, unique=True).map(lambda v: {"SS": v}),
            st.lists(st.text(max_size=8).map(lambda s: {"S": s}), max_size=4).map(lambda v: {"L": v}),
        ),
        "scores": st.one_of(
            st.lists(st.integers(-(2**63), 2**63 - 1).map(str), min_size=1, max_size=4, unique=True).map(
                lambda v: {"NS": v}
            ),
            st.lists(_INT64, max_size=4).map(lambda v: {"L": v}),
        ),
        "attrs": st.dictionaries(names, st.text(max_size=8).map(lambda s: {"S": s}), max_size=3).map(
            lambda v: {"M": v}
        ),
        "exact": numbers.map(lambda n: {"N": n}),
    },
    optional={
        "small": st.one_of(st.just({"NULL": True}), st.integers(-(2**31), 2**31 - 1).map(lambda i: {"N": str(i)})),
        "cents": _fraction(2, 18).map(lambda n: {"N": n}),
        "specs": st.one_of(
            st.just({"NULL": True}),
            st.fixed_dictionaries({"ram": _INT64}, optional={"note": st.text(max_size=8).map(lambda s: {"S": s})}).map(
                lambda v: {"M": v}
            ),
        ),
        "anything": st.one_of(
            st.just({"NULL": True}),
            _INT64,
            st.text(max_size=8).map(lambda s: {"S": s}),
            binaries.map(lambda b: {"B": b}),
        ),
    },
)
TYPED = EnvelopeCodec(item_schema="tests/schemas/gadget.avsc")


def _expected_typed(item: dict) -> dict:
    """The oracle's values as the Gadget record holds them: sets as sorted arrays, ratio as the nearest double."""
    plain = {name: oracle(value) for name, value in item.items()}
    for name in ("tags", "scores"):
        if isinstance(plain[name], set):
            plain[name] = sorted(plain[name])
    plain["ratio"] = float(plain["ratio"])
    for name in ("small", "cents", "specs", "anything"):
        plain.setdefault(name, None)
    if plain["specs"] is not None:
        plain["specs"].setdefault("note", None)
    return comparable(plain)


@EXAMPLES
@given(item=TYPED_ITEMS)
def test_typed_envelope_returns_every_field_as_typedeserializer_reads_it_coerced_to_the_schema(item):
    decoded = _roundtrip(_record(None, item, "NEW_IMAGE"), TYPED)["after"]
    assert isinstance(decoded["exact"], str)
    decoded["exact"] = Decimal(decoded["exact"])  # the number's exact text
    assert comparable(decoded) == _expected_typed(item)


@settings(max_examples=500, deadline=None)
@given(number=numbers)
def test_kafka_key_of_a_number_is_its_exact_canonical_text(number):
    exact = oracle({"N": number})
    key = canonical_number(normalize_value({"N": number}))
    assert Decimal(key) == exact and "E" not in key
    assert key == canonical_number(exact.normalize(Context(prec=40)))  # 1.50 and 1.5 share one key


@settings(max_examples=1000, deadline=None)
@given(garbage=st.one_of(malformed_values, st.dictionaries(names, malformed_values, max_size=3)))
def test_malformed_attribute_values_raise_only_poison_record_errors(garbage):
    for normalize in (normalize_value, normalize_item):
        with contextlib.suppress(PoisonRecordError):  # any other exception fails the test
            normalize(garbage)
