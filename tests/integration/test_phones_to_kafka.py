"""The walking skeleton end to end: moto server -> cdc-bridge (subprocess) -> real Kafka broker."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import fastavro
import pytest

from bridge.commands.demo import create_phones
from tests.bridge_process import kafka_config, run_bridge
from tests.kafka_topic import read_topic

SCHEMA = fastavro.parse_schema(json.loads(Path("schemas/envelope.avsc").read_text()))


def _decode(value: bytes) -> dict:
    assert value[:2] == b"\xc3\x01", "value is not Avro single-object encoded"
    return fastavro.schemaless_reader(io.BytesIO(value[10:]), SCHEMA, None)


def _plain(item: dict | None) -> dict | None:
    """The generic AttributeValue map as {name: (branch value)} for assertions on strings and longs."""
    if item is None:
        return None
    return {name: wrapper["value"] for name, wrapper in item.items()}


@pytest.fixture
def bridge_config(tmp_path, moto_endpoint, kafka_bootstrap):
    topic = f"it-{uuid.uuid4().hex[:8]}.{{table}}"
    config = kafka_config(tmp_path / "bridge.yaml", moto_endpoint, kafka_bootstrap, topic, [{"name": "Phones"}])
    return config, topic.format(table="Phones")


def test_phones_changes_reach_kafka_as_avro_in_write_order_per_key(dynamodb, bridge_config, kafka_bootstrap):
    config, topic = bridge_config
    create_phones(dynamodb)

    result = run_bridge("run", "--config", str(config), "--until-caught-up")

    assert result.returncode == 0, result.stderr
    records = read_topic(kafka_bootstrap, topic)
    events = [(r.key.decode(), _decode(r.value), r) for r in records]
    assert sorted(key for key, _, _ in events) == sorted(
        ["Motorola", "Motorola", "Goole", "Google", "Motorola", "Goole"]
    )
    by_key: dict[str, list] = {}
    for key, event, _record in sorted(events, key=lambda e: (e[2].partition, e[2].offset)):
        by_key.setdefault(key, []).append(event)
    motorola = by_key["Motorola"]
    assert [e["op"] for e in motorola] == ["c", "c", "u"]
    assert [_plain(e["after"])["Model"] for e in motorola] == ["Cool Phone", "Lame Phone", "Lame Phone"]
    update = motorola[2]
    assert _plain(update["before"])["Size"] == 9 and _plain(update["after"])["Size"] == 10
    goole = by_key["Goole"]
    assert [e["op"] for e in goole] == ["c", "d"]
    assert goole[1]["after"] is None and _plain(goole[1]["before"])["Model"] == "Awesome Phone"
    assert [e["op"] for e in by_key["Google"]] == ["c"]
    assert all(e["source"]["table"] == "Phones" for _, e, _ in events)
    headers = dict(records[0].headers)
    assert headers["table"] == b"Phones" and headers["content_type"] == b"application/vnd.apache.avro"


def test_restart_resumes_after_checkpoint_without_reemitting(dynamodb, bridge_config, kafka_bootstrap):
    config, topic = bridge_config
    create_phones(dynamodb)
    assert run_bridge("run", "--config", str(config), "--until-caught-up").returncode == 0
    assert len(read_topic(kafka_bootstrap, topic)) == 6

    second = run_bridge("run", "--config", str(config), "--until-caught-up")
    assert second.returncode == 0, second.stderr
    assert len(read_topic(kafka_bootstrap, topic)) == 6

    dynamodb.put_item(TableName="Phones", Item={"Company": {"S": "Nokia"}, "Model": {"S": "3310"}})
    third = run_bridge("run", "--config", str(config), "--until-caught-up")
    assert third.returncode == 0, third.stderr
    records = read_topic(kafka_bootstrap, topic)
    assert len(records) == 7
    assert [r.key for r in records].count(b"Nokia") == 1
