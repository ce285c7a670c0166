"""Tables found by `discover:` against the real moto server (ListTables, DynamoDB tags) and the real broker: a
table created and tagged while the bridge runs is picked up and replicated, an untagged one is not, a tag removed
stops the reads once the table's stream is drained, a table without a stream is warned about once and found when
it gets one, and `validate --connect` and `status` list what was found."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.codec.avro import decode_value
from bridge.config import parse_config
from bridge.pipeline import Pipeline
from bridge.source.clients import aws_clients
from tests.bridge_process import Bridge, kafka_config, run_bridge, write_config
from tests.kafka_topic import read_topic
from tests.polling import wait_for
from tests.services import free_port
from tests.stream_harness import MemorySink, PipelineThread
from tests.tables import create_stream_table


def _arn(dynamodb, table: str) -> str:
    return dynamodb.describe_table(TableName=table)["Table"]["TableArn"]


def _tag(dynamodb, table: str) -> None:
    dynamodb.tag_resource(ResourceArn=_arn(dynamodb, table), Tags=[{"Key": "cdc", "Value": "enabled"}])


def _put(dynamodb, table: str, *keys: str) -> None:
    for key in keys:
        dynamodb.put_item(TableName=table, Item={"pk": {"S": key}, "v": {"N": "1"}})


def _values(kafka_bootstrap: str, topic: str) -> list[dict]:
    return [decode_value(record.value) for record in read_topic(kafka_bootstrap, topic, committed=True)]


def _keys(kafka_bootstrap: str, topic: str) -> list[str]:
    return sorted(value["after"]["pk"] for value in _values(kafka_bootstrap, topic))


def _samples(port: int, name: str) -> list:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return [
        sample for family in text_string_to_metric_families(text) if family.name == name for sample in family.samples
    ]


def _gauge(port: int) -> float | None:
    (sample,) = _samples(port, "cdc_bridge_discovered_tables")
    return sample.value


def _lag_tables(port: int) -> set[str]:
    return {sample.labels["table"] for sample in _samples(port, "cdc_bridge_iterator_age_seconds")}


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
def test_tables_tagged_while_running_are_replicated_and_a_removed_tag_stops_reads_after_draining(
    dynamodb, moto_endpoint, kafka_bootstrap, tmp_path, delivery
):
    run_id = uuid.uuid4().hex[:8]
    topics = f"found-{run_id}.{{table}}"
    store = {"store": "kafka", "topic": f"found-{run_id}-checkpoints"} if delivery == "exactly_once" else {}
    create_stream_table(dynamodb, "orders-a")
    _tag(dynamodb, "orders-a")
    _put(dynamodb, "orders-a", "a1", "a2", "a3")
    port = free_port()
    source = {"endpoint_url": moto_endpoint, "poll_interval_ms": 50, "discovery_interval_s": 0.3}
    discover = {"include": ["orders-*"], "tags": {"cdc": "enabled"}, "template": {"snapshot": "never"}}
    config = kafka_config(
        tmp_path / "bridge.yaml",
        moto_endpoint,
        kafka_bootstrap,
        topics,
        [],
        checkpoint={"interval_s": 0.2, **store},
        source=source,
        discover=discover,
        delivery=delivery,
        metrics={"host": "127.0.0.1", "port": port},
    )
    topic_a, topic_b, topic_c = (topics.format(table=name) for name in ("orders-a", "orders-b", "orders-c"))

    bridge = Bridge(config)
    try:
        bridge.expect(lambda: _keys(kafka_bootstrap, topic_a) == ["a1", "a2", "a3"], "orders-a's changes")
        assert _gauge(port) == 1
        create_stream_table(dynamodb, "orders-c")  # untagged: never found
        _put(dynamodb, "orders-c", "c1")
        create_stream_table(dynamodb, "orders-b")
        _tag(dynamodb, "orders-b")
        _put(dynamodb, "orders-b", "b1", "b2")
        bridge.expect(lambda: _keys(kafka_bootstrap, topic_b) == ["b1", "b2"], "orders-b's changes")
        assert _gauge(port) == 2
        _put(dynamodb, "orders-a", "a4")
        bridge.expect(lambda: "a4" in _keys(kafka_bootstrap, topic_a), "orders-a's change after orders-b was found")

        _put(dynamodb, "orders-a", "a5")  # written while the table is still tagged: delivered
        dynamodb.untag_resource(ResourceArn=_arn(dynamodb, "orders-a"), TagKeys=["cdc"])
        bridge.expect(lambda: "table orders-a removed" in bridge.stderr, "orders-a to be removed")
        _put(dynamodb, "orders-a", "a6")  # written after it was removed: never read
        _put(dynamodb, "orders-b", "b3")
        bridge.expect(lambda: "b3" in _keys(kafka_bootstrap, topic_b), "orders-b's change after the removal")
        assert _gauge(port) == 1
        assert _lag_tables(port) == {"orders-b"}  # no iterator age of a table no longer read
    finally:
        code = bridge.stop()

    assert code == 0, bridge.stderr
    assert _keys(kafka_bootstrap, topic_a) == ["a1", "a2", "a3", "a4", "a5"]  # each once, a6 never
    assert _keys(kafka_bootstrap, topic_b) == ["b1", "b2", "b3"]
    assert read_topic(kafka_bootstrap, topic_c) == []
    assert "orders-c" not in bridge.stderr
    assert "table orders-b found by discover: replicating it" in bridge.stderr

    dynamodb.tag_resource(ResourceArn=_arn(dynamodb, "orders-a"), Tags=[{"Key": "cdc", "Value": "enabled"}])
    again = run_bridge("run", "--config", str(config), "--until-caught-up")  # both found; each resumes

    assert again.returncode == 0, again.stderr
    assert "discover found 2 table(s): orders-a, orders-b" in again.stderr
    assert _keys(kafka_bootstrap, topic_a) == ["a1", "a2", "a3", "a4", "a5", "a6"]
    assert _keys(kafka_bootstrap, topic_b) == ["b1", "b2", "b3"]


def test_a_table_without_a_stream_is_warned_about_once_and_found_once_it_has_one(
    dynamodb, moto_endpoint, tmp_path, caplog
):
    create_stream_table(dynamodb, "fixed")
    dynamodb.create_table(
        TableName="later",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    data = {
        "source": {"endpoint_url": moto_endpoint, "poll_interval_ms": 20, "discovery_interval_s": 0.1},
        "tables": [{"name": "fixed", "snapshot": "never"}],  # a snapshot cut short would stay in the metrics
        "discover": {"include": ["*"], "template": {"snapshot": "never"}},
        "sinks": [{"type": "stdout"}],
        "checkpoint": {"path": str(tmp_path / "checkpoints.json"), "interval_s": 0.05},
    }
    config = parse_config(json.dumps(data))
    client, streams = aws_clients(config)
    described: list[str] = []
    client.meta.events.register(
        "provide-client-params.dynamodb.DescribeTable", lambda params, **_: described.append(params["TableName"])
    )
    sink = MemorySink()
    with PipelineThread(Pipeline(config, dynamodb=client, streams=streams, sinks=[sink])) as run:
        wait_for(lambda: described.count("later") >= 4, 30, "four discoveries of the table without a stream")
        dynamodb.update_table(
            TableName="later", StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        )
        _put(dynamodb, "later", "l1")
        _put(dynamodb, "fixed", "f1")
        wait_for(run.delivered(sink, 2), 30, "the changes of both tables")

    assert sorted((event.table, event.key) for event in sink.events) == [("fixed", "f1"), ("later", "l1")]
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "table later" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "has no stream enabled" in warnings[0].getMessage()


def test_validate_connect_and_status_list_the_tables_found(dynamodb, moto_endpoint, tmp_path):
    for name in ("shop-orders", "shop-carts", "shop-tmp", "other"):
        create_stream_table(dynamodb, name)
    data = {
        "source": {"endpoint_url": moto_endpoint},
        "tables": [{"name": "shop-orders"}],  # named: its own entry wins, it is not "found"
        "discover": {"include": ["shop-*"], "exclude": ["*-tmp"]},
        "sinks": [{"type": "stdout"}],
        "checkpoint": {"path": str(tmp_path / "checkpoints.json")},
    }
    config = write_config(tmp_path / "bridge.yaml", data)

    validated = run_bridge("validate", "--config", str(config), "--connect")
    status = run_bridge("status", "--config", str(config))
    status_json = run_bridge("status", "--config", str(config), "--format", "json")

    assert validated.returncode == 0, validated.stderr
    assert "discover: 1 table(s) found: shop-carts" in validated.stdout.splitlines()
    assert any(
        line.startswith("DynamoDB") and "table shop-carts has stream" in line for line in validated.stdout.splitlines()
    )
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[0] == "discover found 1 table(s): shop-carts"
    assert "shop-carts" in status.stdout and "shop-tmp" not in status.stdout and "other" not in status.stdout
    document = json.loads(status_json.stdout)
    assert document["discovered"] == ["shop-carts"]
    assert {shard["table"] for shard in document["shards"]} == {"shop-orders", "shop-carts"}


def test_a_pattern_that_cannot_match_a_table_name_is_a_config_error(moto_endpoint, tmp_path):
    data = {"discover": {"include": ["orders/*"]}, "sinks": [{"type": "stdout"}]}
    config = write_config(tmp_path / "bridge.yaml", data)

    result = run_bridge("run", "--config", str(config))

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "discover.include[0]: 'orders/*' is not a pattern of table names" in result.stderr
