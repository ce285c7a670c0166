"""A schema registry that refuses or stumbles, seen from the real bridge (subprocess, moto, the real broker):
refused credentials stop the start with one line and exit 2; a registry that answers 503 and garbage first
is waited for (the bridge is not ready meanwhile) and then everything is delivered, framed with its id;
Avro keys decode with the key schema registered under `<topic>-key`."""

from __future__ import annotations

import io
import json
import uuid

import fastavro

from bridge.codec import decode_value
from bridge.codec.registry import SchemaRegistry
from bridge.commands.demo import create_phones
from bridge.config import SchemaRegistryConfig
from tests.bridge_process import kafka_config, run_bridge
from tests.kafka_topic import read_topic

PHONES_CHANGES = 6


def config(tmp_path, moto_endpoint, kafka_bootstrap, registry, **settings):
    topic = f"reg-{uuid.uuid4().hex[:8]}.{{table}}"
    registry_settings = {"url": registry.url, "timeout_s": 2, **settings}
    path = kafka_config(
        tmp_path / "bridge.yaml",
        moto_endpoint,
        kafka_bootstrap,
        topic,
        [{"name": "Phones"}],
        schema_registry=registry_settings,
    )
    return path, topic.format(table="Phones")


def test_refused_credentials_stop_the_start_with_one_line(dynamodb, tmp_path, moto_endpoint, kafka_bootstrap, registry):
    create_phones(dynamodb)
    registry.require_basic_auth("bridge", "right")
    path, topic = config(
        tmp_path, moto_endpoint, kafka_bootstrap, registry, basic_auth_user="bridge", basic_auth_password="wrong"
    )
    result = run_bridge("run", "--config", str(path), "--until-caught-up", timeout=60)
    assert result.returncode == 2, result.stderr
    assert "refused the credentials (HTTP 401" in result.stderr and "Traceback" not in result.stderr
    assert "wrong" not in result.stderr, "the password is never printed"
    assert read_topic(kafka_bootstrap, topic) == [], "nothing written without a schema id"


def test_a_stumbling_registry_is_waited_for_then_every_change_is_framed_with_its_id(
    dynamodb, tmp_path, moto_endpoint, kafka_bootstrap, registry
):
    create_phones(dynamodb)
    registry.script(503, times=2, path="/subjects/*")
    registry.script(200, b"<html>a proxy page</html>", path="/subjects/*")
    path, topic = config(tmp_path, moto_endpoint, kafka_bootstrap, registry)
    result = run_bridge("run", "--config", str(path), "--until-caught-up", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "not ready (attempt 3)" in result.stderr and "Traceback" not in result.stderr
    records = read_topic(kafka_bootstrap, topic)
    assert len(records) == PHONES_CHANGES
    schema_id = registry.latest(f"{topic}-value")["id"]
    assert all(r.value[:5] == b"\x00" + schema_id.to_bytes(4, "big") for r in records)
    client = SchemaRegistry(SchemaRegistryConfig(url=registry.url))
    assert {decode_value(r.value, registry=client)["source"]["table"] for r in records} == {"Phones"}


def test_avro_keys_are_registered_under_topic_key_and_decode(
    dynamodb, tmp_path, moto_endpoint, kafka_bootstrap, registry
):
    create_phones(dynamodb)
    path, topic = config(tmp_path, moto_endpoint, kafka_bootstrap, registry, key_format="avro")
    result = run_bridge("run", "--config", str(path), "--until-caught-up", timeout=120)
    assert result.returncode == 0, result.stderr
    key = registry.latest(f"{topic}-key")
    schema = fastavro.parse_schema(json.loads(key["schema"]))
    records = read_topic(kafka_bootstrap, topic)
    assert len(records) == PHONES_CHANGES
    companies = []
    for record in records:
        assert record.key[:5] == b"\x00" + key["id"].to_bytes(4, "big")
        companies.append(fastavro.schemaless_reader(io.BytesIO(record.key[5:]), schema, None)["Company"])
    assert sorted(companies) == sorted(["Motorola", "Motorola", "Goole", "Google", "Motorola", "Goole"])
