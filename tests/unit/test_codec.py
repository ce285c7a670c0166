"""codec: Avro envelopes, single-object framing, exact JSON text and Kafka keys."""

from __future__ import annotations

import dataclasses
import io
import json
from decimal import Decimal
from pathlib import Path

import fastavro
import pytest
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from bridge.codec import text
from bridge.codec.avro import (
    EnvelopeCodec,
    crc64_avro,
    decode_value,
    encode_event,
    envelope,
    envelope_schema,
    fingerprint,
)
from bridge.codec.keys import kafka_key
from bridge.normalize import ChangeEvent, DynamoSet, Position


def _event(after: dict, keys: dict | None = None) -> ChangeEvent:
    return ChangeEvent(
        op="c",
        table="T",
        keys=keys or {"id": "a"},
        before=None,
        after=after,
        position=Position("arn", "shard-1", "42"),
        event_id="e",
        approximate_creation_ms=5,
        ttl_expired=False,
        view_type="NEW_IMAGE",
        region="us-east-1",
    )


def test_fingerprint_matches_fastavro_crc64_avro():
    canonical = to_parsing_canonical_form(envelope_schema())
    assert crc64_avro(canonical.encode()).to_bytes(8, "little").hex() == fastavro_fingerprint(canonical, "CRC-64-AVRO")


def test_crc64_avro_matches_the_avro_specification_test_vector():
    # Avro's share/test/data/schema-tests.txt: the 64-bit Rabin fingerprint of `"null"` is 7195948357588979594
    assert crc64_avro(b'"null"') == 7195948357588979594


def test_fingerprint_is_the_same_for_the_schema_file_and_the_parsed_schema():
    raw = json.loads(Path("schemas/envelope.avsc").read_text())
    assert fingerprint(raw) == fingerprint(envelope_schema()) == EnvelopeCodec().fingerprint


def test_encode_event_and_decode_value_are_the_public_consumer_helpers():
    event = _event({"n": Decimal("1.5"), "s": DynamoSet("SS", ["x"])})
    value = encode_event(event)
    assert value[:2] == b"\xc3\x01"
    assert decode_value(value)["after"] == {"n": Decimal("1.5"), "s": ["x"]}
    assert decode_value(encode_event(event, wire_format="raw"))["after"]["n"] == Decimal("1.5")


def test_exact_numbers_use_long_within_int64_and_variable_scale_decimal_beyond():
    schema = fastavro.parse_schema(json.loads(Path("schemas/envelope.avsc").read_text()))
    item = {"small": 2**63 - 1, "big": Decimal(2**63), "fraction": Decimal("-0.05"), "huge": Decimal("1E+125")}
    value = EnvelopeCodec().encode(_event(item), ts_ms=1)
    record = fastavro.schemaless_reader(io.BytesIO(value[10:]), schema, None, return_record_name=True)
    after = {name: wrapper["value"] for name, wrapper in record["after"].items()}
    assert after["small"] == 2**63 - 1
    assert after["big"] == ("io.cdcbridge.VariableScaleDecimal", {"scale": 0, "value": (2**63).to_bytes(9, "big")})
    assert after["fraction"] == ("io.cdcbridge.VariableScaleDecimal", {"scale": 2, "value": b"\xfb"})
    assert after["huge"] == ("io.cdcbridge.VariableScaleDecimal", {"scale": -125, "value": b"\x01"})


def test_every_value_kind_survives_encode_and_decode_exactly():
    item = {
        "s": "x",
        "n": 7,
        "big": Decimal("123456789012345678901234567890.12345678"),
        "tiny": Decimal("1E-130"),
        "huge": Decimal("-9.9999999999999999999999999999999999999E+125"),
        "b": b"\x00\xff",
        "t": True,
        "none": None,
        "l": [1, "a", [Decimal("0.5")]],
        "m": {"inner": {"deep": "y"}},
        "ss": DynamoSet("SS", ["b", "a"]),
        "ns": DynamoSet("NS", [3, Decimal("1.25")]),
        "bs": DynamoSet("BS", [b"\x02", b"\x01"]),
    }
    decoded = decode_value(EnvelopeCodec().encode(_event(item), ts_ms=1))
    assert decoded["after"] == item
    assert str(decoded["after"]["big"]) == "123456789012345678901234567890.12345678"
    assert decoded["after"]["ns"].kind == "NS" and decoded["after"]["ss"].kind == "SS"
    assert decoded["source"]["sequence_number"] == "42" and decoded["ts_ms"] == 1


def test_single_object_value_decodes_with_plain_fastavro_and_the_schema_file():
    value = EnvelopeCodec().encode(_event({"n": 1}), ts_ms=1)
    schema = fastavro.parse_schema(json.loads(Path("schemas/envelope.avsc").read_text()))
    assert value[:2] == b"\xc3\x01"
    record = fastavro.schemaless_reader(io.BytesIO(value[10:]), schema, None)
    assert record["after"] == {"n": {"value": 1}} and record["op"] == "c"


@pytest.mark.parametrize("current_item", [False, True])
def test_source_current_item_round_trips_through_fastavro(current_item):
    event = dataclasses.replace(_event({"n": 1}), current_item=current_item)
    value = EnvelopeCodec().encode(event, ts_ms=1)
    schema = fastavro.parse_schema(json.loads(Path("schemas/envelope.avsc").read_text()))
    record = fastavro.schemaless_reader(io.BytesIO(value[10:]), schema, None)
    assert record["source"]["current_item"] is current_item and record["source"]["snapshot"] is False
    assert decode_value(value)["source"]["current_item"] is current_item
    assert envelope(event, 1)["source"]["current_item"] is current_item  # the plain values (stdout, file sinks)
    datum = {**envelope(event, 1), "keys": {"id": {"value": "a"}}, "after": {"n": {"value": 1}}}
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, datum)
    assert value[10:] == out.getvalue()  # the fast writer's bytes are fastavro's


def test_values_written_before_current_item_existed_read_it_as_false():
    old_json = json.loads(Path("schemas/envelope.avsc").read_text())
    source = next(f for f in old_json["fields"] if f["name"] == "source")["type"]
    source["fields"] = [f for f in source["fields"] if f["name"] != "current_item"]
    old = fastavro.parse_schema(old_json)
    datum = envelope(_event({"n": 1}), 1)
    del datum["source"]["current_item"]
    datum.update(keys={"id": {"value": "a"}}, after={"n": {"value": 1}})
    out = io.BytesIO()
    fastavro.schemaless_writer(out, old, datum)
    out.seek(0)
    record = fastavro.schemaless_reader(out, old, envelope_schema())  # writer schema old, reader schema new
    assert record["source"]["current_item"] is False and record["source"]["view_type"] == "NEW_IMAGE"


def test_raw_wire_format_has_no_header():
    value = EnvelopeCodec(wire_format="raw").encode(_event({"n": 1}), ts_ms=1)
    assert value[:2] != b"\xc3\x01"
    assert decode_value(value)["after"] == {"n": 1}


def test_double_and_string_number_modes():
    item = {"n": Decimal("1.5")}
    assert decode_value(EnvelopeCodec(numbers="double").encode(_event(item)))["after"] == {"n": 1.5}
    assert decode_value(EnvelopeCodec(numbers="string").encode(_event(item)))["after"] == {"n": "1.5"}


def test_json_text_keeps_every_digit_and_pretty_indents():
    value = {"n": Decimal("0.10000000000000000000000000000000000001"), "b": b"\x01", "l": [], "x": None}
    assert text.dumps(value) == '{"n":0.10000000000000000000000000000000000001,"b":"AQ==","l":[],"x":null}'
    assert json.loads(text.dumps(value, indent=2)) == json.loads(text.dumps(value))
    assert text.dumps({"a": [1]}, indent=2) == '{\n  "a": [\n    1\n  ]\n}'


def test_kafka_key_is_the_partition_key_or_canonical_primary_key():
    assert kafka_key(_event({}, {"Company": "Acme", "Model": "X"})) == b"Acme"
    assert kafka_key(_event({}, {"id": Decimal("1.50")})) == b"1.5"
    assert kafka_key(_event({}, {"id": b"\x00"})) == b"\x00"
    primary = kafka_key(_event({}, {"pk": "a", "sk": Decimal("1E+2")}), "primary")
    assert primary == b'{"pk":"a","sk":100}'


def _readme_mapping() -> dict[str, str]:
    """DynamoDB tag -> the generic Avro column of README's "Data mapping" table."""
    section = Path("README.md").read_text().split("## Data mapping", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| `")]
    return {row[0].strip("| `"): row[2] for row in rows}


def _written_branch(value, numbers: str = "exact") -> str:
    encoded = EnvelopeCodec(numbers=numbers).encode(_event({"v": value}), ts_ms=1)
    record = fastavro.schemaless_reader(io.BytesIO(encoded[10:]), envelope_schema(), None, return_record_name=True)
    written = record["after"]["v"]["value"]
    if isinstance(written, tuple):
        return written[0].rsplit(".", 1)[1]
    kinds = {str: "string", bool: "boolean", int: "long", float: "double", bytes: "bytes", dict: "map", list: "array"}
    return "null" if written is None else kinds[type(written)]


def test_readme_mapping_table_names_the_generic_branch_each_dynamodb_type_is_written_as():
    table = _readme_mapping()
    samples = {
        "S": [("x", "exact")],
        "N": [(7, "exact"), (Decimal("1.5"), "exact"), (Decimal("1.5"), "double"), (Decimal("1.5"), "string")],
        "B": [(b"\x00", "exact")],
        "BOOL": [(True, "exact")],
        "NULL": [(None, "exact")],
        "M": [({"a": 1}, "exact")],
        "L": [([1], "exact")],
        "SS": [(DynamoSet("SS", ["a"]), "exact")],
        "NS": [(DynamoSet("NS", [1]), "exact")],
        "BS": [(DynamoSet("BS", [b"a"]), "exact")],
    }
    assert sorted(table) == sorted(samples)
    for tag, cases in samples.items():
        for value, numbers in cases:
            assert f"`{_written_branch(value, numbers)}" in table[tag], (tag, numbers)
