"""A snapshot row the topic cannot take (larger than `max_request_size`) goes by the table's `on_poison`.

The table holds two small items and one too large for the sink; the bridge takes its initial snapshot into
the real broker. `dlq` sends the row's key to `<topic>.dlq` and writes the rest; `fail` stops naming the
table, the segment and the item, and the snapshot stays unfinished for the next run.
"""

from __future__ import annotations

import json
import uuid

import boto3

from bridge.checkpoint import CheckpointStore
from tests.bridge_process import run_bridge
from tests.fault.bridge_runner import bridge_config
from tests.fault.changes import TABLE, create_table
from tests.fault.delivery import topic_records

MAX_REQUEST = 4000


def _setup(tmp_path, dynamodb, moto_endpoint, kafka_bootstrap, on_poison: str):
    create_table(dynamodb)
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    for key in ("small-1", "small-2"):
        client.put_item(TableName=TABLE, Item={"pk": {"S": key}})
    client.put_item(TableName=TABLE, Item={"pk": {"S": "big"}, "blob": {"S": "x" * 3 * MAX_REQUEST}})
    topic = f"snapshot-poison-{uuid.uuid4().hex[:8]}"
    table = {"snapshot": "initial_only", "on_poison": on_poison}
    sink = {"max_request_size": MAX_REQUEST}
    return bridge_config(tmp_path / "b.yaml", moto_endpoint, kafka_bootstrap, topic, table=table, sink=sink), topic


def test_a_snapshot_row_too_large_for_the_topic_goes_to_the_dlq_with_its_key(
    dynamodb, moto_endpoint, kafka_bootstrap, tmp_path
):
    config, topic = _setup(tmp_path, dynamodb, moto_endpoint, kafka_bootstrap, "dlq")

    result = run_bridge("run", "--config", str(config))

    assert result.returncode == 0, result.stderr
    assert sorted(r.key.decode() for r in topic_records(kafka_bootstrap, topic)) == ["small-1", "small-2"]
    (letter,) = topic_records(kafka_bootstrap, f"{topic}.dlq")
    body = json.loads(letter.value)
    assert body["record"] == {"pk": {"S": "big"}} and body["record_truncated"] is True
    assert body["position"]["shard_id"].startswith("snapshot-segment-") and "too large" in body["reason"]
    assert CheckpointStore(tmp_path / "checkpoints.json").read()[1][TABLE].done


def test_under_fail_a_snapshot_row_too_large_stops_the_run_naming_it_and_the_snapshot_stays_unfinished(
    dynamodb, moto_endpoint, kafka_bootstrap, tmp_path
):
    config, topic = _setup(tmp_path, dynamodb, moto_endpoint, kafka_bootstrap, "fail")

    result = run_bridge("run", "--config", str(config))

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"table {TABLE}, snapshot segment-" in result.stderr and "'pk': {'S': 'big'}" in result.stderr
    assert "too large" in result.stderr
    assert "big" not in {r.key.decode() for r in topic_records(kafka_bootstrap, topic)}
    snapshots = CheckpointStore(tmp_path / "checkpoints.json").read()[1]
    assert TABLE not in snapshots or not snapshots[TABLE].done
