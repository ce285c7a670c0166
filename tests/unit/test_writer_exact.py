"""writer: the fast envelope writer produces exactly fastavro's bytes, and fastavro's reader decodes them.

The oracle is fastavro itself: the test names every union branch (so fastavro guesses nothing) and
compares `fastavro.schemaless_writer`'s bytes with `EnvelopeWriter.body` for arbitrary events.
"""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.codec.avro import EnvelopeCodec, decimal_to_vsd, envelope_schema
from bridge.codec.writer import EnvelopeWriter, uvarint, zigzag
from bridge.normalize import INT64_MAX, INT64_MIN, ChangeEvent, DynamoSet, Position

SCHEMA = envelope_schema()
VSD = "io.cdcbridge.VariableScaleDecimal"
SETS = {"SS": "io.cdcbridge.StringSet", "NS": "io.cdcbridge.NumberSet", "BS": "io.cdcbridge.BinarySet"}


def _number(value: int | Decimal, numbers: str) -> tuple[str, Any]:
    if numbers == "double":
        return ("double", float(value))
    if numbers == "string":
        return ("string", str(value))
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return ("long", value)
    return (VSD, decimal_to_vsd(value))


def _hinted(value: Any, numbers: str) -> dict:
    """The AttributeValue datum with its union branch named, as fastavro's tuple notation takes it."""
    if isinstance(value, DynamoSet):
        values = [{"value": _number(v, numbers)} for v in value] if value.kind == "NS" else list(value)
        return {"value": (SETS[value.kind], {"values": values})}
    if isinstance(value, bool):
        return {"value": ("boolean", value)}
    if isinstance(value, int | Decimal):
        return {"value": _number(value, numbers)}
    if isinstance(value, dict):
        return {"value": ("map", {k: _hinted(v, numbers) for k, v in value.items()})}
    if isinstance(value, list):
        return {"value": ("array", [_hinted(v, numbers) for v in value])}
    branch = {str: "string", bytes: "bytes", float: "double", type(None): "null"}[type(value)]
    return {"value": (branch, value)}


def fastavro_body(event: ChangeEvent, ts_ms: int, numbers: str = "exact") -> bytes:
    def item(values: dict) -> dict:
        return {k: _hinted(v, numbers) for k, v in values.items()}

    datum = {
        "op": event.op,
        "keys": item(event.keys),
        "before": ("null", None) if event.before is None else ("map", item(event.before)),
        "after": ("null", None) if event.after is None else ("map", item(event.after)),
        "source": {
            "table": event.table,
            "region": event.region,
            "stream_arn": event.position.stream_arn,
            "shard_id": event.position.shard_id,
            "sequence_number": event.position.sequence_number,
            "event_id": event.event_id,
            "approximate_creation_ms": event.approximate_creation_ms,
            "ttl_expired": event.ttl_expired,
            "snapshot": event.op == "r",
            "current_item": event.current_item,
            "view_type": event.view_type,
        },
        "ts_ms": ts_ms,
    }
    out = io.BytesIO()
    fastavro.schemaless_writer(out, SCHEMA, datum)
    return out.getvalue()


decimals = st.builds(
    lambda digits, exponent, negative: Decimal((int(negative), tuple(int(c) for c in digits), exponent)),
    st.text("0123456789", min_size=1, max_size=38),
    st.integers(-130, 125),
    st.booleans(),
)
int64 = st.integers(INT64_MIN, INT64_MAX)
numbers = st.one_of(int64, st.integers(-(10**38), 10**38), decimals)
scalars = st.one_of(
    st.text(max_size=40),
    numbers,
    st.binary(max_size=40),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
)
sets = st.one_of(
    st.lists(st.text(max_size=10), min_size=1, max_size=5, unique=True).map(lambda v: DynamoSet("SS", v)),
    st.lists(int64, min_size=1, max_size=5, unique=True).map(lambda v: DynamoSet("NS", v)),
    st.lists(decimals, min_size=1, max_size=5).map(lambda v: DynamoSet("NS", list(set(v)))),
    st.lists(st.binary(max_size=10), min_size=1, max_size=5, unique=True).map(lambda v: DynamoSet("BS", v)),
)
values = st.recursive(
    st.one_of(scalars, sets),
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)
items = st.dictionaries(st.text(max_size=12), values, max_size=8)
events = st.builds(
    ChangeEvent,
    op=st.sampled_from(["c", "u", "d", "r"]),
    table=st.text(max_size=20),
    keys=st.dictionaries(
        st.text(max_size=8), st.one_of(st.text(), int64, decimals, st.binary()), min_size=1, max_size=2
    ),
    before=st.one_of(st.none(), items),
    after=st.one_of(st.none(), items),
    position=st.builds(Position, st.text(max_size=60), st.text(max_size=30), st.text("0123456789", max_size=40)),
    event_id=st.text(max_size=40),
    approximate_creation_ms=int64,
    ttl_expired=st.booleans(),
    view_type=st.sampled_from(["NEW_AND_OLD_IMAGES", "NEW_IMAGE", "OLD_IMAGE", "KEYS_ONLY", ""]),
    region=st.text(max_size=15),
    current_item=st.booleans(),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=events, ts_ms=int64, numbers=st.sampled_from(["exact", "double", "string"]))
def test_writer_bytes_equal_fastavro_bytes_and_decode_with_fastavro(event, ts_ms, numbers):
    body = EnvelopeWriter(SCHEMA, numbers).body(event, ts_ms)
    assert body == fastavro_body(event, ts_ms, numbers)
    decoded = fastavro.schemaless_reader(io.BytesIO(body), SCHEMA, None, return_record_name=True)
    assert decoded["op"] == event.op and decoded["ts_ms"] == ts_ms
    assert decoded["source"]["sequence_number"] == event.position.sequence_number
    assert (decoded["after"] is None) == (event.after is None)
    assert decoded["source"]["current_item"] is event.current_item


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=events, ts_ms=int64, numbers=st.sampled_from(["exact", "double", "string"]))
def test_generic_codec_values_are_fastavro_bytes_behind_the_single_object_header(event, ts_ms, numbers):
    codec = EnvelopeCodec(numbers=numbers)
    value = codec.encode(event, ts_ms)
    assert value[:10] == b"\xc3\x01" + codec.fingerprint
    assert value[10:] == fastavro_body(event, ts_ms, numbers)


def test_long_strings_and_large_collections_use_multi_byte_lengths():
    text = "é" * 20_000
    event = ChangeEvent(
        "u", "T", {"id": text}, {"l": list(range(10_000))}, {"m": {str(i): i for i in range(9_000)}},
        Position("arn", "shard", "1"), "e", 1, False, "NEW_AND_OLD_IMAGES", "r",
    )  # fmt: skip
    assert EnvelopeWriter(SCHEMA).body(event, 2**40) == fastavro_body(event, 2**40)


@pytest.mark.parametrize("n", [0, 1, -1, 63, -64, 64, 8191, -8192, 8192, INT64_MAX, INT64_MIN])
def test_zigzag_matches_the_avro_spec(n):
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, "long", n)
    assert zigzag(n) == buffer.getvalue()
    assert uvarint(300) == b"\xac\x02"


def test_writer_refuses_an_envelope_of_another_shape():
    schema = {**SCHEMA, "fields": [f for f in SCHEMA["fields"] if f["name"] != "ts_ms"]}
    with pytest.raises(ValueError, match="generic envelope"):
        EnvelopeWriter(schema)
    swapped = [{**f, "type": list(reversed(f["type"]))} if f["name"] == "after" else f for f in SCHEMA["fields"]]
    assert EnvelopeWriter.for_schema({**SCHEMA, "fields": swapped}) is None
    assert EnvelopeWriter.for_schema(EnvelopeCodec().schema) is not None  # the codec's generic schema qualifies


def _with_source_fields(reorder) -> dict:
    fields = [
        {**f, "type": {**f["type"], "fields": reorder(f["type"]["fields"])}} if f["name"] == "source" else f
        for f in SCHEMA["fields"]
    ]
    return {**SCHEMA, "fields": fields}


def test_writer_refuses_source_fields_it_would_write_in_another_order_or_not_at_all():
    moved = _with_source_fields(lambda fields: sorted(fields, key=lambda f: f["name"] == "current_item"))
    assert [f["name"] for f in moved["fields"][4]["type"]["fields"]][-2:] == ["view_type", "current_item"]
    assert EnvelopeWriter.for_schema(moved) is None
    without = _with_source_fields(lambda fields: [f for f in fields if f["name"] != "current_item"])
    assert EnvelopeWriter.for_schema(without) is None


def test_writer_refuses_values_that_are_no_dynamodb_type():
    event = ChangeEvent("c", "T", {"id": "a"}, None, {"t": (1, 2)}, Position("a", "s", "1"), "e", 1, False, "", "")
    with pytest.raises(TypeError, match="tuple"):
        EnvelopeWriter(SCHEMA).body(event, 1)
