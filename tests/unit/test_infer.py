"""Schema inference from sample items, and the `cdc-bridge schema` command's printed writer schema."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import fastavro
import pytest

from bridge.codec import EnvelopeCodec, decode_value, fingerprint
from bridge.codec.infer import infer_item_schema
from bridge.commands.cli import main
from bridge.errors import ConfigError
from bridge.normalize import ChangeEvent, DynamoSet, Position

ITEMS = [
    {
        "id": "a",
        "n": 1,
        "price": Decimal("1.25"),
        "tags": DynamoSet("SS", ["x"]),
        "specs": {"ram": 8, "os": "linux"},
        "mixed": "text",
        "blob": b"\x00",
    },
    {"id": "b", "n": 2, "price": Decimal("3.125"), "specs": {"ram": 16}, "mixed": 5, "flag": True, "gone": None},
]


def _without_nulls(value):
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def _fields(schema: dict) -> dict:
    return {field["name"]: field for field in schema["fields"]}


def test_inferred_schema_types_each_attribute_from_its_values():
    fields = _fields(infer_item_schema(ITEMS, "Things", ("id",)))
    assert next(iter(fields)) == "id" and fields["id"]["type"] == "string"
    assert fields["n"]["type"] == "long"
    assert fields["price"]["type"] == {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 3}
    assert fields["blob"]["type"] == ["null", "bytes"]
    specs = fields["specs"]["type"]
    assert specs["type"] == "record" and _fields(specs)["ram"]["type"] == "long"
    assert _fields(specs)["os"] == {"name": "os", "type": ["null", "string"], "default": None}


def test_attributes_missing_from_some_items_are_optional_and_mixed_types_are_unions():
    fields = _fields(infer_item_schema(ITEMS, "Things", ("id",)))
    assert fields["tags"]["type"] == ["null", {"type": "array", "items": "string"}]
    assert fields["tags"]["default"] is None and fields["flag"]["type"] == ["null", "boolean"]
    assert fields["mixed"]["type"] == ["long", "string"] and "default" not in fields["mixed"]
    assert fields["gone"]["type"] == "null"


def test_every_sampled_item_fits_the_inferred_schema_and_comes_back_equal(tmp_path):
    path = tmp_path / "things.avsc"
    path.write_text(json.dumps(infer_item_schema(ITEMS, "Things", ("id",))))
    codec = EnvelopeCodec(item_schema=str(path))
    for item in ITEMS:
        event = ChangeEvent(
            "c", "Things", {"id": item["id"]}, None, item, Position("a", "s", "1"), "e", 1, False, "", ""
        )
        after = decode_value(codec.encode(event))["after"]
        assert _without_nulls(after) == _without_nulls(item)  # absent optional fields read back as null


def test_numbers_too_wide_for_38_digits_are_proposed_as_exact_text():
    schema = infer_item_schema([{"x": Decimal("1E+30")}, {"x": Decimal("1E-30")}], "T")
    assert _fields(schema)["x"]["type"] == "string"
    fastavro.parse_schema(schema)


def test_maps_whose_keys_are_not_avro_names_become_avro_maps():
    schema = infer_item_schema([{"m": {"a-b": 1, "c d": Decimal("0.5")}}], "T")
    assert _fields(schema)["m"]["type"] == {
        "type": "map",
        "values": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 1},
    }


def test_top_level_attribute_that_is_no_avro_name_is_a_clear_error():
    with pytest.raises(ConfigError, match="'first-name' is not a valid Avro field name"):
        infer_item_schema([{"first-name": "x"}], "T")


def test_inference_needs_at_least_one_item():
    with pytest.raises(ConfigError, match="no items to infer a schema from"):
        infer_item_schema([], "Empty")


def _config(tmp_path, table: dict) -> str:
    path = tmp_path / "bridge.yaml"
    path.write_text(json.dumps({"tables": [table], "sinks": [{"type": "stdout"}]}))
    return str(path)


def test_schema_command_prints_the_exact_writer_schema_of_a_typed_table(tmp_path, capsys):
    config = _config(tmp_path, {"name": "Phones", "schema": "schemas/phones.avsc"})
    assert main(["schema", "--config", config, "--table", "Phones"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert fingerprint(printed) == EnvelopeCodec(item_schema="schemas/phones.avsc").fingerprint
    assert printed["fields"][3]["type"] == ["null", "io.cdcbridge.demo.Phone"]


def test_schema_command_prints_the_generic_envelope_for_a_table_without_schema(tmp_path, capsys):
    assert main(["schema", "--config", _config(tmp_path, {"name": "T"}), "--table", "T"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(Path("schemas/envelope.avsc").read_text())


@pytest.mark.parametrize(
    ("table", "args", "message"),
    [
        ({"name": "T"}, ["--table", "Nope"], "no table 'Nope'"),
        ({"name": "T", "schema": "missing.avsc"}, ["--table", "T"], "schema file missing.avsc cannot be read"),
        ({"name": "T"}, ["infer", "--table", "T", "--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_schema_command_config_problems_exit_2(tmp_path, capsys, table, args, message):
    assert main(["schema", "--config", _config(tmp_path, table), *args]) == 2
    assert message in capsys.readouterr().err
