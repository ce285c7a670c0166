"""The fake Schema Registry (tests/schema_registry.py) answers as Confluent documents, raw HTTP and through
confluent-kafka's own client."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.schema_registry import CONTENT_TYPE, RegistryError, read_errors

USER = {
    "type": "record",
    "name": "User",
    "namespace": "test",
    "fields": [{"name": "id", "type": "long"}, {"name": "email", "type": "string"}],
}


def _with_field(schema: dict, **new_field) -> dict:
    return {**schema, "fields": [*schema["fields"], new_field]}


def _call(registry, method: str, path: str, body=None, headers: dict | None = None) -> tuple[int, object]:
    """(status, JSON answer) of one request; a non-JSON answer comes back as bytes."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(registry.url + path, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", CONTENT_TYPE)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def _register(registry, subject: str, schema, query: str = "") -> tuple[int, object]:
    return _call(registry, "POST", f"/subjects/{subject}/versions{query}", {"schema": json.dumps(schema)})


def test_the_same_schema_has_one_global_id_across_subjects(registry):
    status, answer = _register(registry, "a-value", USER)
    respaced = json.dumps(USER, indent=4)
    reordered = {"fields": USER["fields"], "namespace": "test", "name": "User", "type": "record"}

    assert status == 200 and answer.keys() == {"id"}
    assert _call(registry, "POST", "/subjects/a-value/versions", {"schema": respaced}) == (200, answer)
    assert _register(registry, "b-value", reordered) == (200, answer)
    other = _register(registry, "a-value", _with_field(USER, name="age", type="int", default=0))
    assert other[0] == 200 and other[1]["id"] > answer["id"]
    assert _call(registry, "GET", "/subjects/b-value/versions") == (200, [1])
    assert _call(registry, "GET", "/subjects/a-value/versions") == (200, [1, 2])
    assert _call(registry, "GET", "/subjects") == (200, ["a-value", "b-value"])


def test_lookup_answers_the_version_or_says_what_is_missing(registry):
    schema_id = registry.register("a-value", USER)

    found = _call(registry, "POST", "/subjects/a-value", {"schema": json.dumps(USER)})
    no_subject = _call(registry, "POST", "/subjects/nope", {"schema": json.dumps(USER)})
    no_schema = _call(registry, "POST", "/subjects/a-value", {"schema": '"string"'})

    compact = json.dumps(USER, separators=(",", ":"))
    assert found == (200, {"subject": "a-value", "id": schema_id, "version": 1, "schema": compact})
    assert no_subject == (404, {"error_code": 40401, "message": "Subject 'nope' not found."})
    assert no_schema == (404, {"error_code": 40403, "message": "Schema not found"})


def test_schemas_by_id_and_versions_by_number(registry):
    schema_id = registry.register("a-value", USER)

    assert json.loads(_call(registry, "GET", f"/schemas/ids/{schema_id}")[1]["schema"]) == USER
    assert _call(registry, "GET", f"/schemas/ids/{schema_id + 100}")[1]["error_code"] == 40403
    latest = _call(registry, "GET", "/subjects/a-value/versions/latest")[1]
    assert (latest["subject"], latest["version"], latest["id"]) == ("a-value", 1, schema_id)
    assert _call(registry, "GET", "/subjects/a-value/versions/1/schema") == (200, USER)
    assert _call(registry, "GET", "/subjects/a-value/versions/2")[1]["error_code"] == 40402
    assert _call(registry, "GET", "/subjects/a-value/versions/zero")[1]["error_code"] == 42202
    assert _call(registry, "GET", "/subjects/nope/versions")[1]["error_code"] == 40401


def test_compatibility_levels_global_and_per_subject(registry):
    assert _call(registry, "GET", "/config") == (200, {"compatibilityLevel": "BACKWARD"})
    assert _call(registry, "PUT", "/config", {"compatibility": "full"}) == (200, {"compatibility": "FULL"})
    assert _call(registry, "GET", "/config/a-value")[1]["error_code"] == 40408
    assert _call(registry, "GET", "/config/a-value?defaultToGlobal=true") == (200, {"compatibilityLevel": "FULL"})
    assert _call(registry, "PUT", "/config/a-value", {"compatibility": "NONE"}) == (200, {"compatibility": "NONE"})
    assert _call(registry, "GET", "/config/a-value") == (200, {"compatibilityLevel": "NONE"})
    assert _call(registry, "PUT", "/config", {"compatibility": "SIDEWAYS"})[1]["error_code"] == 42203


def test_backward_refuses_a_new_field_without_default_with_409_naming_subject_and_field(registry):
    registry.register("a-value", USER)

    status, answer = _register(registry, "a-value", _with_field(USER, name="address", type="string"))

    assert status == 409 and answer["error_code"] == 409
    assert 'incompatible with an earlier schema for subject "a-value"' in answer["message"]
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in answer["message"] and "'address'" in answer["message"]
    assert registry.latest("a-value")["version"] == 1


@pytest.mark.parametrize(
    ("reader", "writer", "error"),
    [
        (_with_field(USER, name="age", type="int", default=0), USER, None),  # added with a default
        ({**USER, "fields": USER["fields"][:1]}, USER, None),  # removed
        (
            {**USER, "fields": [{"name": "id", "type": "double"}]},
            {**USER, "fields": [{"name": "id", "type": "int"}]},
            None,
        ),
        ({**USER, "fields": [{"name": "email", "type": "bytes"}]}, USER, None),  # string -> bytes
        ({**USER, "fields": [{"name": "id", "type": "int"}]}, USER, "TYPE_MISMATCH"),  # long -> int narrows
        ({**USER, "name": "Person"}, USER, "NAME_MISMATCH"),
        ({**USER, "name": "Person", "aliases": ["test.User"]}, USER, None),
        ({**USER, "fields": [{"name": "id", "type": ["null", "long", "string"]}]}, USER, None),
        (
            {**USER, "fields": [{"name": "id", "type": "long"}]},
            {**USER, "fields": [{"name": "id", "type": ["null", "long"]}]},
            "TYPE_MISMATCH",
        ),
        ({**USER, "fields": [{"name": "id", "type": ["null", "string"]}]}, USER, "MISSING_UNION_BRANCH"),
        (
            {"type": "enum", "name": "E", "symbols": ["A"]},
            {"type": "enum", "name": "E", "symbols": ["A", "B"]},
            "MISSING_ENUM_SYMBOLS",
        ),
        (
            {"type": "enum", "name": "E", "symbols": ["A"], "default": "A"},
            {"type": "enum", "name": "E", "symbols": ["A", "B"]},
            None,
        ),
        ({"type": "fixed", "name": "F", "size": 8}, {"type": "fixed", "name": "F", "size": 4}, "FIXED_SIZE_MISMATCH"),
        ({"type": "map", "values": "long"}, {"type": "map", "values": "int"}, None),
        ({"type": "array", "items": "int"}, {"type": "array", "items": "long"}, "TYPE_MISMATCH"),
    ],
)
def test_reader_writer_resolution(reader, writer, error):
    errors = read_errors(reader, writer)

    assert [e.error_type for e in errors][:1] == ([error] if error else [])


def test_nested_and_recursive_records_are_checked_with_the_path_of_the_field():
    node = {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "children", "type": {"type": "array", "items": "Node"}},
            {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [{"name": "n", "type": "long"}]}},
        ],
    }
    changed = json.loads(json.dumps(node).replace('"n", "type": "long"', '"n", "type": "string"'))

    assert read_errors(node, node) == []
    [error] = read_errors(changed, node)
    assert (error.error_type, error.path) == ("TYPE_MISMATCH", "/fields/1/type/fields/0/type")


def test_forward_full_and_none_levels(registry):
    added = _with_field(USER, name="address", type="string")  # forward: old readers skip it
    removed = {**USER, "fields": USER["fields"][:1]}  # forward: old readers miss `email`, which has no default
    registry.set_compatibility("FORWARD", "fwd")
    registry.set_compatibility("FULL", "full")
    registry.set_compatibility("NONE", "none")
    for subject in ("fwd", "full", "none"):
        registry.register(subject, USER)

    assert _register(registry, "fwd", added)[0] == 200
    assert _register(registry, "fwd", removed)[0] == 409
    assert _register(registry, "full", added)[0] == 409
    assert _register(registry, "none", {"type": "string"})[0] == 200


def test_compatibility_check_answers_with_messages_when_verbose(registry):
    registry.register("a-value", USER)
    bad = {"schema": json.dumps(_with_field(USER, name="address", type="string"))}
    good = {"schema": json.dumps(_with_field(USER, name="address", type="string", default=""))}

    quiet = _call(registry, "POST", "/compatibility/subjects/a-value/versions/latest", bad)
    verbose = _call(registry, "POST", "/compatibility/subjects/a-value/versions/1?verbose=true", bad)

    assert quiet == (200, {"is_compatible": False})
    assert verbose[1]["is_compatible"] is False
    assert any("READER_FIELD_MISSING_DEFAULT_VALUE" in m for m in verbose[1]["messages"])
    assert _call(registry, "POST", "/compatibility/subjects/a-value/versions/latest", good) == (
        200,
        {"is_compatible": True},
    )
    assert _call(registry, "POST", "/compatibility/subjects/new/versions/latest", bad) == (200, {"is_compatible": True})
    assert _call(registry, "POST", "/compatibility/subjects/new/versions/1", bad)[1]["error_code"] == 40401


def test_invalid_schemas_and_bodies_are_refused(registry):
    assert _call(registry, "POST", "/subjects/a/versions", {"schema": '{"type": "recrod"}'})[1]["error_code"] == 42201
    assert (
        _call(registry, "POST", "/subjects/a/versions", {"schema": "{}", "schemaType": "PROTOBUF"})[1]["error_code"]
        == 42201
    )
    assert _call(registry, "POST", "/subjects/a/versions", {"nothing": 1})[1]["error_code"] == 42201
    assert _call(registry, "GET", "/associations/resources/-/topic")[0] == 404
    assert _call(registry, "DELETE", "/subjects")[0] == 405


def test_scripted_answers_match_path_and_method_then_run_out(registry):
    registry.script(503, times=2, path="/schemas/ids/*")
    registry.script(200, b"<html>proxy error</html>", path="/subjects", content_type="text/html")
    registry.script(200, {"unexpected": "shape"}, method="POST")

    assert _call(registry, "GET", "/subjects") == (200, b"<html>proxy error</html>")
    assert _call(registry, "GET", "/schemas/ids/1") == (503, {"error_code": 503, "message": "Service Unavailable"})
    assert _call(registry, "GET", "/schemas/ids/1")[0] == 503
    assert _call(registry, "GET", "/schemas/ids/1")[1]["error_code"] == 40403  # scripts used up
    assert _register(registry, "a-value", USER) == (200, {"unexpected": "shape"})
    assert _register(registry, "a-value", USER)[1].keys() == {"id"}


def test_credentials_when_required(registry):
    registry.require_basic_auth("bridge", "s3cret")
    good = {"Authorization": "Basic YnJpZGdlOnMzY3JldA=="}

    assert _call(registry, "GET", "/subjects") == (401, {"error_code": 401, "message": "Unauthorized"})
    assert _call(registry, "GET", "/subjects", headers={"Authorization": "Basic d3Jvbmc6d3Jvbmc="})[0] == 401
    assert _call(registry, "GET", "/subjects", headers=good) == (200, [])
    registry.require_bearer_token("t0ken")
    assert _call(registry, "GET", "/subjects", headers={"Authorization": "Bearer t0ken"}) == (200, [])
    assert _call(registry, "GET", "/subjects", headers=good)[0] == 401


def test_requests_are_recorded_and_counted_per_path(registry):
    _register(registry, "a-value", USER, "?normalize=true")
    _call(registry, "GET", "/schemas/ids/1")
    _call(registry, "GET", "/schemas/ids/2")

    assert registry.count("/schemas/ids/*") == 2 and registry.count(method="POST") == 1
    [post] = [r for r in registry.requests if r.method == "POST"]
    assert post.query == {"normalize": "true"} and post.headers["content-type"] == CONTENT_TYPE
    assert json.loads(post.json()["schema"]) == USER


def test_a_stopped_registry_refuses_connections_and_comes_back_with_its_state(registry):
    schema_id = registry.register("a-value", USER)
    url = registry.url

    registry.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=2):
        pass
    registry.start()

    assert registry.url == url
    assert _call(registry, "GET", f"/schemas/ids/{schema_id}")[0] == 200


def test_in_process_register_raises_the_registry_error():
    from tests.schema_registry import FakeRegistry

    fake = FakeRegistry()
    fake.register("a-value", USER)

    with pytest.raises(RegistryError) as refused:
        fake.register("a-value", _with_field(USER, name="address", type="string"))
    assert refused.value.status == 409


def test_confluent_kafka_client_registers_looks_up_and_checks(registry):
    client = SchemaRegistryClient({"url": registry.url})
    schema = Schema(json.dumps(USER), "AVRO")

    schema_id = client.register_schema("a-value", schema)
    assert client.register_schema("b-value", Schema(json.dumps(USER), "AVRO")) == schema_id
    assert client.lookup_schema("a-value", schema).version == 1
    assert json.loads(client.get_schema(schema_id).schema_str) == USER
    assert client.get_compatibility() == "BACKWARD"
    new = Schema(json.dumps(_with_field(USER, name="address", type="string")), "AVRO")
    assert client.test_compatibility("a-value", new) is False
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema("a-value", new)
    assert (refused.value.http_status_code, refused.value.error_code) == (409, 409)


def test_confluent_kafka_avro_serde_round_trip_through_the_fake(registry):
    client = SchemaRegistryClient({"url": registry.url})
    context = SerializationContext("users", MessageField.VALUE)
    value = {"id": 7, "email": "a@example.com"}

    framed = AvroSerializer(client, json.dumps(USER))(value, context)
    decoded = AvroDeserializer(SchemaRegistryClient({"url": registry.url}))(framed, context)

    assert decoded == value
    assert framed[0] == 0 and int.from_bytes(framed[1:5], "big") == registry.latest("users-value")["id"]
    assert registry.subjects() == ["users-value"]
    assert registry.count("/associations/*") >= 1  # asked first; the 404 sends it to the topic strategy


def test_the_generic_envelope_reads_itself_through_its_recursive_attribute_value():
    generic = json.loads(Path("schemas/envelope.avsc").read_text())

    assert read_errors(generic, generic) == []
