"""Typed tables: items coerced to a table's Avro record schema, refusals with field paths, schema files."""

from __future__ import annotations

import dataclasses
import io
import json
from decimal import Decimal
from pathlib import Path

import fastavro
import pytest

from bridge.codec import SCHEMAS, EnvelopeCodec, SchemaLookup, decode_value, fingerprint
from bridge.errors import ConfigError, PoisonRecordError
from bridge.normalize import ChangeEvent, DynamoSet, Position

GADGET = "tests/schemas/gadget.avsc"
VALID = {
    "pk": "a",
    "count": 3,
    "price": Decimal("12.5"),
    "ratio": Decimal("0.1"),
    "blob": b"\x00",
    "flag": True,
    "tags": DynamoSet("SS", ["b", "a"]),
    "scores": [1, 2],
    "attrs": {"k": "v"},
    "exact": Decimal("1E-130"),
}


def _event(after: dict | None, before: dict | None = None) -> ChangeEvent:
    return ChangeEvent(
        op="u" if before else "c",
        table="T",
        keys={"pk": "a"},
        before=before,
        after=after,
        position=Position("arn", "shard-1", "42"),
        event_id="e",
        approximate_creation_ms=5,
        ttl_expired=False,
        view_type="NEW_AND_OLD_IMAGES",
        region="us-east-1",
    )


def _refusal(item: dict) -> PoisonRecordError:
    with pytest.raises(PoisonRecordError) as caught:
        EnvelopeCodec(item_schema=GADGET).encode(_event(item))
    return caught.value


def test_typed_item_is_coerced_to_field_types_and_decodes_as_the_record():
    decoded = decode_value(EnvelopeCodec(item_schema=GADGET).encode(_event(VALID), ts_ms=1))
    after = decoded["after"]
    assert after["price"] == Decimal("12.5") and str(after["price"]) == "12.5000000000"
    assert after["ratio"] == 0.1 and after["tags"] == ["a", "b"] and after["exact"] == "1E-130"
    assert after["small"] is None and after["specs"] is None and after["cents"] is None
    assert decoded["keys"] == {"pk": "a"} and decoded["before"] is None


def test_typed_value_decodes_with_plain_fastavro_and_the_printed_writer_schema():
    codec = EnvelopeCodec(item_schema=GADGET)
    value = codec.encode(_event({**VALID, "specs": {"ram": 8}}, before=VALID), ts_ms=1)
    schema = fastavro.parse_schema(json.loads(json.dumps(codec.schema_json)))
    record = fastavro.schemaless_reader(io.BytesIO(value[10:]), schema, None)
    assert value[2:10] == fingerprint(codec.schema_json)
    assert record["after"]["specs"] == {"ram": 8, "note": None} and record["before"]["count"] == 3


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        ({"count": Decimal("1.5")}, "after.count", "not a whole number"),
        ({"count": 2**63}, "after.count", "out of the long range"),
        ({"small": 2**31}, "after.small", "out of the int range"),
        ({"price": Decimal("0.00000000001")}, "after.price", "more than 10 decimal places"),
        ({"price": Decimal("1E+28")}, "after.price", "more than 38 digits"),
        ({"cents": Decimal("0.001")}, "after.cents", "more than 2 decimal places"),
        ({"flag": "yes"}, "after.flag", "expected a boolean"),
        ({"flag": None}, "after.flag", "expected a boolean, got a null"),
        ({"blob": "text"}, "after.blob", "expected binary"),
        ({"tags": DynamoSet("BS", [b"x"])}, "after.tags[0]", "expected a string"),
        ({"attrs": {"k": True}}, "after.attrs.k", "expected a string"),
        ({"specs": {"ram": "8GB"}}, "after.specs.ram", "expected a number for long"),
        ({"specs": {"ram": 8, "cpu": "x"}}, "after.specs.cpu", "not a field of record test.typed.Specs"),
        ({"anything": True}, "after.anything", "fits no branch of the union"),
        ({"Unknown": 1}, "after.Unknown", "not a field of record test.typed.Gadget"),
    ],
)
def test_value_that_does_not_fit_is_poison_naming_the_field_path_and_reason(change, path, reason):
    error = _refusal({**VALID, **change})
    assert error.path == path
    assert reason in error.reason


def test_typed_envelope_carries_source_current_item():
    codec = EnvelopeCodec(item_schema=GADGET)
    source = next(f for f in codec.schema_json["fields"] if f["name"] == "source")["type"]
    names = [f["name"] for f in source["fields"]]
    assert names[names.index("snapshot") + 1] == "current_item"
    assert source["fields"][names.index("current_item")]["default"] is False
    for current_item in (False, True):
        value = codec.encode(dataclasses.replace(_event(VALID), current_item=current_item), ts_ms=1)
        assert decode_value(value)["source"]["current_item"] is current_item


def test_missing_required_field_is_poison_and_missing_optional_field_is_null():
    error = _refusal({k: v for k, v in VALID.items() if k != "count"})
    assert error.path == "after.count" and "required field" in error.reason
    assert _refusal_free({k: v for k, v in VALID.items()})["small"] is None


def _refusal_free(item: dict) -> dict:
    return decode_value(EnvelopeCodec(item_schema=GADGET).encode(_event(item)))["after"]


def test_union_takes_the_branch_that_matches_the_value_kind():
    assert _refusal_free({**VALID, "anything": 7})["anything"] == 7
    assert _refusal_free({**VALID, "anything": "7"})["anything"] == "7"
    assert _refusal_free({**VALID, "anything": b"7"})["anything"] == b"7"


def test_before_image_is_checked_too():
    with pytest.raises(PoisonRecordError) as caught:
        EnvelopeCodec(item_schema=GADGET).encode(_event(VALID, before={**VALID, "flag": 1}))
    assert caught.value.path == "before.flag"


def test_phones_schema_ships_and_its_values_are_found_by_fingerprint():
    codec = EnvelopeCodec(item_schema="schemas/phones.avsc")
    item = {"Company": "Acme", "Model": "X", "Size": 9, "Colors": DynamoSet("SS", ["Red", "Blue"])}
    value = codec.encode(_event(item))
    fresh = SchemaLookup()
    fresh.add_folder("schemas")
    assert fresh.find(value[2:10]) is not None and SCHEMAS.find(value[2:10]) is not None
    assert decode_value(value, fresh.find(value[2:10]))["after"] == {**item, "Colors": ["Blue", "Red"]}


def test_unknown_fingerprint_is_a_clear_error():
    value = EnvelopeCodec().encode(_event({"n": 1}))
    with pytest.raises(ValueError, match="unknown writer schema fingerprint 0000000000000000"):
        decode_value(value[:2] + bytes(8) + value[10:])


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot be read"),
        ("{not json", "not valid JSON"),
        ('"string"', "must be an Avro record"),
        ('{"type": "record", "name": "P", "fields": [{"name": "a", "type": "lng"}]}', "not a valid Avro schema"),
        ('{"type": "record", "name": "Source", "namespace": "io.cdcbridge", "fields": []}', "inside the change"),
    ],
)
def test_bad_item_schema_file_is_a_config_error_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "items.avsc"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        EnvelopeCodec(item_schema=str(path))
    assert str(path) in str(caught.value) and problem in str(caught.value)


def test_typed_envelope_keeps_the_generic_envelope_apart_from_the_item_type():
    generic = json.loads(Path("schemas/envelope.avsc").read_text())
    typed = EnvelopeCodec(item_schema=GADGET).schema_json
    assert [f["name"] for f in typed["fields"]] == [f["name"] for f in generic["fields"]]
    assert typed["fields"][1] == generic["fields"][1]  # keys stay the generic map
    assert typed["fields"][2]["type"][1]["name"] == "Gadget" and typed["fields"][3]["type"] == [
        "null",
        "test.typed.Gadget",
    ]


def test_named_types_are_reused_by_name_and_records_may_nest_themselves(tmp_path):
    money = {"type": "fixed", "name": "Money", "size": 8, "logicalType": "decimal", "precision": 18, "scale": 2}
    schema = {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "price", "type": money},
            {"name": "tax", "type": "Money"},
            {"name": "next", "type": ["null", "Node"], "default": None},
        ],
    }
    path = tmp_path / "node.avsc"
    path.write_text(json.dumps(schema))
    item = {"price": Decimal("1.25"), "tax": 2, "next": {"price": 3, "tax": Decimal("0.5")}}
    after = decode_value(EnvelopeCodec(item_schema=str(path)).encode(_event(item)))["after"]
    assert after == {"price": Decimal("1.25"), "tax": 2, "next": {"price": 3, "tax": Decimal("0.5"), "next": None}}
    with pytest.raises(PoisonRecordError) as caught:
        EnvelopeCodec(item_schema=str(path)).encode(_event({**item, "next": {"price": 1, "tax": Decimal("0.001")}}))
    assert caught.value.path == "after.next.tax"


def test_raw_typed_value_decodes_with_the_writer_schema_passed_in():
    codec = EnvelopeCodec(wire_format="raw", item_schema="schemas/phones.avsc")
    value = codec.encode(_event({"Company": "Acme", "Model": "X"}))
    assert value[:2] != b"\xc3\x01"
    assert decode_value(value, codec.schema)["after"] == {"Company": "Acme", "Model": "X", "Size": None, "Colors": None}
