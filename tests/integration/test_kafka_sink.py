"""The Kafka sink against a real broker: startup checks, headers, compression, tombstones."""

from __future__ import annotations

import uuid

import boto3

from tests.bridge_process import run_bridge, write_config
from tests.kafka_topic import read_topic


def _table(dynamodb, name: str, sort_key: bool = False) -> None:
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attributes = [{"AttributeName": "pk", "AttributeType": "S"}]
    if sort_key:
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
        attributes.append({"AttributeName": "sk", "AttributeType": "S"})
    dynamodb.create_table(
        TableName=name,
        KeySchema=keys,
        AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def _config(tmp_path, moto_endpoint, kafka_bootstrap, table: dict, **sink) -> tuple:
    topic = f"sink-{uuid.uuid4().hex[:8]}"
    data = {
        "source": {"endpoint_url": moto_endpoint, "poll_interval_ms": 50},
        "tables": [table],
        "sinks": [{"type": "kafka", "bootstrap_servers": kafka_bootstrap, "topic": topic, **sink}],
        "checkpoint": {"path": str(tmp_path / "checkpoints.json")},
    }
    return write_config(tmp_path / "bridge.yaml", data), topic


def test_missing_topic_is_a_config_error_at_startup_naming_the_topic(
    dynamodb, moto_endpoint, kafka_bootstrap, tmp_path
):
    _table(dynamodb, "Orders")
    config, topic = _config(tmp_path, moto_endpoint, kafka_bootstrap, {"name": "Orders"}, create_topics=False)

    result = run_bridge("run", "--config", str(config), "--until-caught-up")

    assert result.returncode == 2, result.stderr
    assert f"Kafka topic(s) {topic} do not exist" in result.stderr and "create_topics: true" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_record_carries_the_headers_and_gzip_batches_decode(dynamodb, moto_endpoint, kafka_bootstrap, tmp_path):
    _table(dynamodb, "Orders")
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.put_item(TableName="Orders", Item={"pk": {"S": "o-1"}, "total": {"N": "12.50"}})
    client.put_item(TableName="Orders", Item={"pk": {"S": "o-1"}, "total": {"N": "13"}})
    config, topic = _config(
        tmp_path, moto_endpoint, kafka_bootstrap, {"name": "Orders"}, create_topics=True, compression="gzip"
    )

    result = run_bridge("run", "--config", str(config), "--until-caught-up")

    assert result.returncode == 0, result.stderr
    records = read_topic(kafka_bootstrap, topic)
    assert [dict(r.headers)["op"] for r in records] == [b"c", b"u"]
    for record in records:
        headers = dict(record.headers)
        assert headers["table"] == b"Orders" and record.key == b"o-1"
        assert headers["content_type"] == b"application/vnd.apache.avro"
        assert headers["schema_fingerprint"] == record.value[2:10].hex().encode()
        assert len(headers["event_id"]) > 0 and headers["sequence_number"].isdigit()
    assert records[0].headers != records[1].headers


def test_a_delete_is_followed_by_a_tombstone_with_the_same_key(dynamodb, moto_endpoint, kafka_bootstrap, tmp_path):
    _table(dynamodb, "Carts", sort_key=True)
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.put_item(TableName="Carts", Item={"pk": {"S": "u1"}, "sk": {"S": "a"}})
    client.delete_item(TableName="Carts", Key={"pk": {"S": "u1"}, "sk": {"S": "a"}})
    table = {"name": "Carts", "key": "primary"}
    config, topic = _config(tmp_path, moto_endpoint, kafka_bootstrap, table, create_topics=True, tombstones=True)

    result = run_bridge("run", "--config", str(config), "--until-caught-up")

    assert result.returncode == 0, result.stderr
    records = read_topic(kafka_bootstrap, topic)
    assert [(dict(r.headers)["op"], r.value is None) for r in records] == [(b"c", False), (b"d", False), (b"d", True)]
    assert {r.key for r in records} == {b'{"pk":"u1","sk":"a"}'}


def test_tombstones_without_primary_key_are_a_config_error(moto_endpoint, kafka_bootstrap, tmp_path):
    config, _ = _config(tmp_path, moto_endpoint, kafka_bootstrap, {"name": "Carts"}, tombstones=True)

    result = run_bridge("run", "--config", str(config))

    assert result.returncode == 2
    assert "tombstones" in result.stderr and "key: primary" in result.stderr
