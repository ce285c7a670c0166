"""The default Kafka path transcodes images (bridge/codec/transcode.py) and still catches poison up front.

With only Kafka sinks on the generic exact envelope, the pipeline builds lazy events and writes their images
from attribute-value JSON straight to Avro; a malformed image must still be routed by the table's policy at
the `normalize` stage, before any sink sees it, and the other records must arrive exactly as normalized.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import boto3

from bridge.codec import decode_value
from bridge.config import parse_config
from bridge.pipeline import Pipeline
from bridge.source.clients import aws_clients
from tests.fault.changes import TABLE, CorruptingStreams, create_table
from tests.kafka_topic import read_topic


def test_kafka_path_transcodes_images_and_routes_a_malformed_one_to_the_dead_letters(
    dynamodb, moto_endpoint, kafka_bootstrap, tmp_path
):
    create_table(dynamodb)
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    item = {"v": {"N": "1"}, "price": {"N": "12.50"}, "tags": {"SS": ["b", "a"]}, "blob": {"B": b"\x00\xff"}}
    for key in ("good-1", "bad", "good-2"):
        client.put_item(TableName=TABLE, Item={"pk": {"S": key}, **item})
    topic, dead = f"transcode-{uuid.uuid4().hex[:8]}", tmp_path / "dead.jsonl"
    config = parse_config(
        f"""
source: {{endpoint_url: "{moto_endpoint}", poll_interval_ms: 50}}
tables: [{{name: {TABLE}, on_poison: dlq, dead_letter_path: "{dead}", snapshot: never}}]
sinks: [{{type: kafka, bootstrap_servers: "{kafka_bootstrap}", topic: {topic}, create_topics: true}}]
checkpoint: {{path: "{tmp_path / "checkpoints.json"}"}}
"""
    )
    dynamodb_client, streams = aws_clients(config)
    corrupting = CorruptingStreams(streams, {"M": {"deep": {"N": "12abc"}}})
    pipeline = Pipeline(config, dynamodb=dynamodb_client, streams=corrupting)

    pipeline.run(until_caught_up=True)

    assert pipeline.routes[TABLE].transcoder is not None, "the Kafka path did not take the transcoder"
    (line,) = dead.read_text().splitlines()
    letter = json.loads(line)
    assert letter["stage"] == "normalize"
    assert letter["reason"] == "NewImage.v.deep: not a DynamoDB number: '12abc'"
    values = [decode_value(record.value) for record in read_topic(kafka_bootstrap, topic)]
    assert [value["keys"]["pk"] for value in values] == ["good-1", "good-2"]
    for value in values:
        expected = {
            "pk": value["keys"]["pk"],
            "v": 1,
            "price": Decimal("12.5"),
            "tags": ["a", "b"],
            "blob": b"\x00\xff",
        }
        assert value["after"] == expected
        assert str(value["after"]["price"]) == "12.50"  # the scale is kept, as normalize keeps it
