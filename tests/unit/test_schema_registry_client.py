"""The schema registry client against the fake registry (tests/schema_registry.py): ids registered once and
cached, every kind of refusal a clear error of the right class, several URLs tried in turn; and the
`schema --register` / `--check` commands."""

from __future__ import annotations

import io
import json

import pytest

from bridge.codec import EnvelopeCodec, decode_value
from bridge.codec.registry import SchemaRegistry, Subject, frame, register_value, schema_text
from bridge.commands.schema import registry_command
from bridge.config import SchemaRegistryConfig
from bridge.errors import ConfigError, RetriableError
from bridge.secret import Secret
from tests.change_events import change

SUBJECT = Subject("orders-value", "Orders", "the generic envelope (schemas/envelope.avsc)")


def client(registry, **settings) -> SchemaRegistry:
    return SchemaRegistry(SchemaRegistryConfig(url=registry.url, timeout_s=2, **settings))


def test_a_schema_is_registered_once_and_values_carry_its_id(registry):
    codec = EnvelopeCodec(wire_format="confluent")
    registry_client = client(registry)
    schema_id = register_value(registry_client, codec, "orders", "Orders")
    again = register_value(registry_client, EnvelopeCodec(wire_format="confluent"), "orders", "Orders")
    assert again == schema_id and registry.count("/subjects/*/versions", "POST") == 1, "cached for the run"
    value = codec.encode(change(1), 1)
    assert value[:5] == frame(schema_id) == b"\x00" + schema_id.to_bytes(4, "big")
    decoded = decode_value(value, registry=registry_client)
    assert decoded == decode_value(EnvelopeCodec(wire_format="raw").encode(change(1), 1))
    decode_value(value, registry=registry_client)
    assert registry.count("/schemas/ids/*", "GET") == 1, "the schema is fetched once per id"


def test_an_unregistered_codec_refuses_to_write():
    with pytest.raises(Exception, match="not registered"):
        EnvelopeCodec(wire_format="confluent").encode(change(1), 1)


def test_incompatible_schema_names_subject_table_file_and_the_registrys_message(registry):
    registry.script(
        409, {"error_code": 409, "message": "Schema being registered is incompatible: READER_FIELD_MISSING"}
    )
    with pytest.raises(ConfigError) as error:
        client(registry).writer_id(SUBJECT, schema_text(EnvelopeCodec().schema_json))
    text = str(error.value)
    assert "orders-value" in text and "Orders" in text and "envelope.avsc" in text and "READER_FIELD_MISSING" in text


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_a_config_error(registry, status):
    registry.require_basic_auth("bridge", "right")
    registry_client = client(registry, basic_auth_user="bridge", basic_auth_password=Secret("wrong"))
    if status == 403:
        registry.script(403)
    with pytest.raises(ConfigError, match=f"refused the credentials \\(HTTP {status}") as error:
        registry_client.writer_id(SUBJECT, schema_text(EnvelopeCodec().schema_json))
    assert "wrong" not in str(error.value)


def test_basic_auth_and_bearer_tokens_are_sent(registry):
    registry.require_basic_auth("bridge", "s3cret")
    good = client(registry, basic_auth_user="bridge", basic_auth_password=Secret("s3cret"))
    assert good.writer_id(SUBJECT, schema_text(EnvelopeCodec().schema_json)) >= 0
    registry.reset()
    registry.require_bearer_token("tok")
    assert (
        client(registry, bearer_token=Secret("tok")).writer_id(SUBJECT, schema_text(EnvelopeCodec().schema_json)) >= 0
    )


@pytest.mark.parametrize(
    "answer",
    [(500, None), (503, None), (200, b"<html>proxy</html>"), (200, {"identifier": 3}), (200, {"id": "3"})],
)
def test_a_registry_that_is_down_or_answers_garbage_is_retried(registry, answer):
    registry.script(answer[0], answer[1])
    with pytest.raises(RetriableError):
        client(registry).writer_id(SUBJECT, schema_text(EnvelopeCodec().schema_json))
    assert client(registry).writer_id(SUBJECT, schema_text(EnvelopeCodec().schema_json)) >= 0, "then it works"


def test_an_unreachable_registry_is_retried_and_the_next_url_is_tried(registry):
    with pytest.raises(RetriableError, match="did not answer"):
        SchemaRegistry(SchemaRegistryConfig(url="http://127.0.0.1:9", timeout_s=1)).writer_id(SUBJECT, "{}")
    both = SchemaRegistry(SchemaRegistryConfig(url=f"http://127.0.0.1:9, {registry.url}", timeout_s=1))
    assert both.writer_id(SUBJECT, schema_text(EnvelopeCodec().schema_json)) >= 0


def test_without_auto_register_a_missing_schema_is_a_config_error_and_a_registered_one_is_found(registry):
    lookup = client(registry, auto_register=False)
    with pytest.raises(ConfigError, match="cdc-bridge schema --register"):
        lookup.writer_id(SUBJECT, schema_text(EnvelopeCodec().schema_json))
    registered = registry.register("orders-value", EnvelopeCodec().schema_json)
    assert lookup.writer_id(SUBJECT, schema_text(EnvelopeCodec().schema_json)) == registered
    assert registry.count("/subjects/*/versions", "POST") == 0, "looked up, never registered"


def test_subject_name_strategies(registry):
    codec = EnvelopeCodec(wire_format="confluent")
    for strategy, subject in [
        ("topic", "orders-value"),
        ("record", "io.cdcbridge.Envelope"),
        ("topic_record", "orders-io.cdcbridge.Envelope"),
    ]:
        register_value(client(registry, subject_name_strategy=strategy), codec, "orders", "Orders")
        assert subject in registry.subjects()


def test_an_unknown_id_is_a_clear_error(registry):
    with pytest.raises(ValueError, match="no schema with id 4242"):
        client(registry).schema(4242)


def config_file(tmp_path, registry, schema: str | None = None) -> str:
    table = {"name": "Orders", **({"schema": schema} if schema else {})}
    config = {
        "tables": [table],
        "sinks": [{"type": "kafka", "bootstrap_servers": "127.0.0.1:9", "topic": "dynamodb.{table}"}],
        "schema_registry": {"url": registry.url, "timeout_s": 2},
    }
    path = tmp_path / "bridge.yaml"
    path.write_text(json.dumps(config))
    return str(path)


def test_schema_register_then_check(registry, tmp_path):
    path = config_file(tmp_path, registry)
    out = io.StringIO()
    registry_command(path, None, out, check=False)
    assert "subject 'dynamodb.Orders-value' (table Orders" in out.getvalue() and "registered, id" in out.getvalue()
    out = io.StringIO()
    registry_command(path, "Orders", out, check=True)
    assert "compatible" in out.getvalue() and "INCOMPATIBLE" not in out.getvalue()


def test_schema_check_reports_an_incompatible_typed_schema(registry, tmp_path):
    avsc = tmp_path / "orders.avsc"
    avsc.write_text(json.dumps({"type": "record", "name": "Orders", "fields": [{"name": "pk", "type": "string"}]}))
    registry_command(config_file(tmp_path, registry, str(avsc)), None, io.StringIO(), check=False)
    fields = [{"name": "pk", "type": "string"}, {"name": "total", "type": "long"}]  # no default: not BACKWARD
    avsc.write_text(json.dumps({"type": "record", "name": "Orders", "fields": fields}))
    out = io.StringIO()
    with pytest.raises(ConfigError, match="not compatible"):
        registry_command(config_file(tmp_path, registry, str(avsc)), None, out, check=True)
    assert "INCOMPATIBLE" in out.getvalue()


def test_avro_keys_are_records_of_the_key_attributes_registered_under_topic_key(registry):
    import fastavro

    from bridge.codec.registry import avro_key, key_schema, register_key

    schema = key_schema("order-lines", (("OrderId", "S"), ("Line", "N"), ("Blob", "B")))
    assert [(f["name"], f["type"]) for f in schema["fields"]] == [
        ("OrderId", "string"),
        ("Line", "string"),
        ("Blob", "bytes"),
    ]
    header = register_key(client(registry), schema, "dynamodb.order-lines", "order-lines")
    assert "dynamodb.order-lines-key" in registry.subjects()
    from decimal import Decimal

    key = avro_key(header, ["o-1", Decimal("10.50"), b"\x00\xff"])
    assert key[:5] == header
    decoded = fastavro.schemaless_reader(io.BytesIO(key[5:]), fastavro.parse_schema(schema), None)
    assert decoded == {"OrderId": "o-1", "Line": "10.5", "Blob": b"\x00\xff"}, "N as canonical decimal text"


def test_avro_keys_need_avro_names_and_known_types():
    from bridge.codec.registry import key_schema

    with pytest.raises(ConfigError, match="not a valid Avro field name"):
        key_schema("T", (("order-id", "S"),))
    with pytest.raises(ConfigError, match="no S, N or B type"):
        key_schema("T", (("id", ""),))
