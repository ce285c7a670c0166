"""Poison records under each `on_poison` policy, made real: an item too large for `max_request_size`.

The table gets a small item, then one whose record exceeds the sink's `max_request_size`, then another
small item. `fail` stops before the big one (and stays stopped on a rerun); `dlq` puts it on `<topic>.dlq`
or in a file with its reason and position and goes on; `skip` logs it and goes on.
"""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from bridge.config import parse_config
from bridge.errors import FatalError
from bridge.pipeline import Pipeline
from bridge.source.clients import aws_clients
from tests.bridge_process import run_bridge
from tests.fault.bridge_runner import bridge_config
from tests.fault.changes import TABLE, CorruptingStreams, create_table
from tests.fault.delivery import topic_records
from tests.fault.recording_sink import GatedSink

MAX_REQUEST = 4000


def _write_small_big_small(endpoint: str) -> str:
    """Returns the sequence number of the big item's stream record."""
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    client.put_item(TableName=TABLE, Item={"pk": {"S": "small-1"}})
    client.put_item(TableName=TABLE, Item={"pk": {"S": "big"}, "blob": {"S": "x" * 3 * MAX_REQUEST}})
    client.put_item(TableName=TABLE, Item={"pk": {"S": "small-2"}})
    streams = boto3.client("dynamodbstreams", endpoint_url=endpoint, region_name="us-east-1")
    arn = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1").describe_table(TableName=TABLE)[
        "Table"
    ]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    return records[1]["dynamodb"]["SequenceNumber"]


def _setup(tmp_path, dynamodb, moto_endpoint, kafka_bootstrap, **table):
    create_table(dynamodb)
    topic = f"poison-{uuid.uuid4().hex[:8]}"
    sink = {"max_request_size": MAX_REQUEST}
    config = bridge_config(tmp_path / "bridge.yaml", moto_endpoint, kafka_bootstrap, topic, table=table, sink=sink)
    return config, topic, _write_small_big_small(moto_endpoint)


def _keys(bootstrap: str, topic: str) -> list[str]:
    return sorted(r.key.decode() for r in topic_records(bootstrap, topic))


def test_fail_policy_stops_before_the_poison_record_and_names_it(dynamodb, moto_endpoint, kafka_bootstrap, tmp_path):
    config, topic, sequence = _setup(tmp_path, dynamodb, moto_endpoint, kafka_bootstrap)

    result = run_bridge("run", "--config", str(config), "--until-caught-up")

    assert result.returncode == 1, result.stderr
    assert f"sequence number {sequence}" in result.stderr and "too large" in result.stderr
    assert "Traceback" not in result.stderr
    assert _keys(kafka_bootstrap, topic) == ["small-1"]
    again = run_bridge("run", "--config", str(config), "--until-caught-up")
    assert again.returncode == 1, "the checkpoint must not pass the poison record"
    assert set(_keys(kafka_bootstrap, topic)) == {"small-1"}


def test_dlq_policy_sends_the_raw_record_reason_and_position_to_the_dlq_topic(
    dynamodb, moto_endpoint, kafka_bootstrap, tmp_path
):
    config, topic, sequence = _setup(tmp_path, dynamodb, moto_endpoint, kafka_bootstrap, on_poison="dlq")

    result = run_bridge("run", "--config", str(config), "--until-caught-up")

    assert result.returncode == 0, result.stderr
    assert _keys(kafka_bootstrap, topic) == ["small-1", "small-2"]
    (letter,) = topic_records(kafka_bootstrap, f"{topic}.dlq")
    body = json.loads(letter.value)
    assert body["position"]["sequence_number"] == sequence
    assert "too large" in body["reason"] and body["stage"] == "KafkaSink"
    # Too large for Kafka means too large for its DLQ as well: the letter keeps the record's identity.
    assert body["record_truncated"] is True
    assert body["record"]["dynamodb"] == {"Keys": {"pk": {"S": "big"}}, "SequenceNumber": sequence}


def test_dlq_policy_with_a_file_appends_one_json_line_per_poison_record(
    dynamodb, moto_endpoint, kafka_bootstrap, tmp_path
):
    dead = tmp_path / "dead" / "letters.jsonl"
    config, topic, sequence = _setup(
        tmp_path, dynamodb, moto_endpoint, kafka_bootstrap, on_poison="dlq", dead_letter_path=str(dead)
    )

    result = run_bridge("run", "--config", str(config), "--until-caught-up")

    assert result.returncode == 0, result.stderr
    assert _keys(kafka_bootstrap, topic) == ["small-1", "small-2"]
    (line,) = dead.read_text().splitlines()
    body = json.loads(line)
    assert body["table"] == TABLE and body["position"]["sequence_number"] == sequence
    assert body["record"]["eventName"] == "INSERT" and body["record_truncated"] is False
    assert len(body["record"]["dynamodb"]["NewImage"]["blob"]["S"]) == 3 * MAX_REQUEST, "a file keeps it whole"


def test_skip_policy_logs_the_poison_record_and_goes_on(dynamodb, moto_endpoint, kafka_bootstrap, tmp_path):
    config, topic, sequence = _setup(tmp_path, dynamodb, moto_endpoint, kafka_bootstrap, on_poison="skip")

    result = run_bridge("run", "--config", str(config), "--until-caught-up")

    assert result.returncode == 0, result.stderr
    assert _keys(kafka_bootstrap, topic) == ["small-1", "small-2"]
    assert f"sequence number {sequence}: poison record (KafkaSink) SKIPPED" in result.stderr
    again = run_bridge("run", "--config", str(config), "--until-caught-up")
    assert again.returncode == 0 and "SKIPPED" not in again.stderr, "the checkpoint moved past the skipped record"


def _pipeline(tmp_path, moto_endpoint, **table):
    create_table_yaml = ", ".join(f"{k}: {v}" for k, v in {"name": TABLE, "snapshot": "never", **table}.items())
    config = parse_config(
        f"""
source: {{endpoint_url: "{moto_endpoint}", poll_interval_ms: 50}}
tables: [{{{create_table_yaml}}}]
sinks: [{{type: stdout}}]
checkpoint: {{path: "{tmp_path / "checkpoints.json"}"}}
"""
    )
    dynamodb, streams = aws_clients(config)
    sink = GatedSink()
    sink.gate.set()
    return Pipeline(config, dynamodb=dynamodb, streams=CorruptingStreams(streams, {"N": "12abc"}), sinks=[sink]), sink


def _good_bad_good(endpoint: str) -> None:
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    for key in ("good-1", "bad", "good-2"):
        client.put_item(TableName=TABLE, Item={"pk": {"S": key}, "v": {"N": "1"}})


def test_a_record_that_cannot_be_normalized_stops_the_bridge_under_fail(dynamodb, moto_endpoint, tmp_path):
    create_table(dynamodb)
    _good_bad_good(moto_endpoint)
    pipeline, _sink = _pipeline(tmp_path, moto_endpoint)

    with pytest.raises(FatalError, match=r"poison record \(normalize\): .*NewImage\.v"):
        pipeline.run(until_caught_up=True)
    assert not (tmp_path / "checkpoints.json").exists()


def test_a_record_that_cannot_be_normalized_goes_to_the_dead_letter_file_under_dlq(dynamodb, moto_endpoint, tmp_path):
    create_table(dynamodb)
    _good_bad_good(moto_endpoint)
    dead = tmp_path / "dead.jsonl"
    pipeline, sink = _pipeline(tmp_path, moto_endpoint, on_poison="dlq", dead_letter_path=f'"{dead}"')

    pipeline.run(until_caught_up=True)

    assert [e.keys["pk"] for e in sink.events] == ["good-1", "good-2"]
    (line,) = dead.read_text().splitlines()
    letter = json.loads(line)
    assert letter["stage"] == "normalize" and "NewImage.v" in letter["reason"]
    assert letter["record"]["dynamodb"]["NewImage"]["v"] == {"N": "12abc"}
