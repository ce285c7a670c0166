"""The Lambda handler in AWS's runtime (aws-lambda-rie + awslambdaric) on a real broker and moto: AWS's sample
DynamoDB event, a whole stream played as the event source mapping would, and a bad config at cold start."""

from __future__ import annotations

import copy
import uuid
from collections import defaultdict

import boto3

from bridge.codec.avro import decode_value
from tests.bridge_process import write_config
from tests.kafka_topic import read_topic
from tests.lambda_runtime import EventSourceMapping, esm_records
from tests.tables import create_stream_table

# The example event of "Using AWS Lambda with Amazon DynamoDB" (Lambda developer guide), as the guide prints it:
# eventVersion 1.0, no ApproximateCreationDateTime, a numeric key `Id`.
SAMPLE_EVENT = {
    "Records": [
        {
            "eventID": "1",
            "eventVersion": "1.0",
            "dynamodb": {
                "Keys": {"Id": {"N": "101"}},
                "NewImage": {"Message": {"S": "New item!"}, "Id": {"N": "101"}},
                "StreamViewType": "NEW_AND_OLD_IMAGES",
                "SequenceNumber": "111",
                "SizeBytes": 26,
            },
            "awsRegion": "us-west-2",
            "eventName": "INSERT",
            "eventSourceARN": "arn:aws:dynamodb:us-west-2:111122223333:table/TestTable/stream/2015-05-11T21:21:33.291",
            "eventSource": "aws:dynamodb",
        },
        {
            "eventID": "2",
            "eventVersion": "1.0",
            "dynamodb": {
                "OldImage": {"Message": {"S": "New item!"}, "Id": {"N": "101"}},
                "SequenceNumber": "222",
                "Keys": {"Id": {"N": "101"}},
                "SizeBytes": 59,
                "NewImage": {"Message": {"S": "This item has changed"}, "Id": {"N": "101"}},
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
            "awsRegion": "us-west-2",
            "eventName": "MODIFY",
            "eventSourceARN": "arn:aws:dynamodb:us-west-2:111122223333:table/TestTable/stream/2015-05-11T21:21:33.291",
            "eventSource": "aws:dynamodb",
        },
        {
            "eventID": "3",
            "eventVersion": "1.0",
            "dynamodb": {
                "Keys": {"Id": {"N": "101"}},
                "SizeBytes": 38,
                "SequenceNumber": "333",
                "OldImage": {"Message": {"S": "This item has changed"}, "Id": {"N": "101"}},
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
            "awsRegion": "us-west-2",
            "eventName": "REMOVE",
            "eventSourceARN": "arn:aws:dynamodb:us-west-2:111122223333:table/TestTable/stream/2015-05-11T21:21:33.291",
            "eventSource": "aws:dynamodb",
        },
    ]
}


def lambda_config(tmp_path, moto_endpoint, kafka_bootstrap, table: str, **table_settings) -> tuple:
    """A Lambda config for `table` with a fresh topic (created by the sink); returns (path, topic)."""
    topic = f"lambda-{uuid.uuid4().hex[:8]}"
    data = {
        "source": {"endpoint_url": moto_endpoint, "region": "us-east-1"},
        "tables": [{"name": table, **table_settings}],
        "sinks": [{"type": "kafka", "bootstrap_servers": kafka_bootstrap, "topic": topic, "create_topics": True}],
    }
    return write_config(tmp_path / "lambda.yaml", data), topic


def envelopes(bootstrap: str, topic: str) -> list[dict]:
    return [decode_value(record.value) for record in read_topic(bootstrap, topic)]


def create_sample_table(dynamodb) -> None:
    """The table of the guide's sample event: `TestTable`, numeric key `Id`, with a stream."""
    dynamodb.create_table(
        TableName="TestTable",
        KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def test_the_sample_event_of_the_lambda_guide_becomes_its_three_changes(
    dynamodb, moto_endpoint, kafka_bootstrap, tmp_path, lambda_function
):
    create_sample_table(dynamodb)
    config, topic = lambda_config(tmp_path, moto_endpoint, kafka_bootstrap, "TestTable")
    function = lambda_function(config)

    answer = function.invoke(copy.deepcopy(SAMPLE_EVENT))

    assert not answer.error, answer.payload
    assert answer.failures == []
    changes = envelopes(kafka_bootstrap, topic)
    assert [(c["op"], c["before"], c["after"]) for c in changes] == [
        ("c", None, {"Id": 101, "Message": "New item!"}),
        ("u", {"Id": 101, "Message": "New item!"}, {"Id": 101, "Message": "This item has changed"}),
        ("d", {"Id": 101, "Message": "This item has changed"}, None),
    ]
    sources = [c["source"] for c in changes]
    assert [s["sequence_number"] for s in sources] == ["111", "222", "333"]
    assert [s["event_id"] for s in sources] == ["1", "2", "3"]
    assert {(s["table"], s["region"], s["stream_arn"]) for s in sources} == {
        ("TestTable", "us-west-2", SAMPLE_EVENT["Records"][0]["eventSourceARN"])
    }
    (metrics,) = function.metric_lines()
    assert (metrics["Table"], metrics["Records"], metrics["Events"], metrics["Failed"]) == ("TestTable", 3, 3, 0)
    assert "LagMs" not in metrics  # the sample's records carry no ApproximateCreationDateTime


def _write_changes(endpoint: str, table: str, count: int, keys: int) -> dict[str, list[str]]:
    """Inserts, updates and deletes over `keys` keys; each key's stream of values, in write order."""
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    written: dict[str, list[str]] = defaultdict(list)
    for i in range(count):
        key = f"k{i % keys}"
        if i % 7 == 6 and written[key] and written[key][-1] != "deleted":  # a delete of nothing is no change
            client.delete_item(TableName=table, Key={"pk": {"S": key}})
            written[key].append("deleted")
        else:
            client.put_item(TableName=table, Item={"pk": {"S": key}, "v": {"N": str(i)}, "b": {"B": b"\x00\xff"}})
            written[key].append(str(i))
    return written


def _per_key(changes: list[dict]) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = defaultdict(list)
    for change in changes:
        key = (change["after"] or change["before"])["pk"]
        seen[key].append("deleted" if change["op"] == "d" else str(change["after"]["v"]))
    return seen


def test_a_stream_played_through_the_esm_reaches_the_topic_once_in_per_key_order(
    dynamodb, moto_endpoint, kafka_bootstrap, tmp_path, lambda_function
):
    create_stream_table(dynamodb, "Orders")
    written = _write_changes(moto_endpoint, "Orders", 300, keys=5)
    records = esm_records(moto_endpoint, "Orders")
    config, topic = lambda_config(tmp_path, moto_endpoint, kafka_bootstrap, "Orders")
    esm = EventSourceMapping(lambda_function(config), records, batch_size=100)

    esm.run()

    assert [answer.failures for answer in esm.answers] == [[], [], []]
    changes = envelopes(kafka_bootstrap, topic)
    assert sorted(c["source"]["sequence_number"] for c in changes) == sorted(
        r["dynamodb"]["SequenceNumber"] for r in records
    )
    assert _per_key(changes) == written
    assert {c["after"]["b"] for c in changes if c["after"]} == {b"\x00\xff"}  # binary arrived as base64 text
    lines = esm.function.metric_lines()
    assert [line["Records"] for line in lines] == [100, 100, 100]
    assert all(0 <= line["LagMs"] < 600_000 for line in lines)


def test_a_bad_config_fails_each_invocation_with_its_one_line_message(tmp_path, lambda_function, moto_endpoint):
    config = tmp_path / "lambda.yaml"
    config.write_text("tables:\n  - name: Orders\nsinks:\n  - type: stdout\n")
    function = lambda_function(config)

    answers = [function.invoke(copy.deepcopy(SAMPLE_EVENT)) for _ in range(2)]

    for answer in answers:
        assert answer.error
        assert answer.payload["errorType"] == "ConfigError"
        assert answer.payload["errorMessage"].startswith(f"{config}: sinks[0]: on AWS Lambda the bridge writes to")
    logs = function.logs()
    assert "[ERROR]\t" in logs and "on AWS Lambda the bridge writes to exactly one sink" in logs
    # awslambdaric logs each failed invocation's error on one line; its stack is the handler's frame only
    assert logs.count('File "') == 2 == logs.count(", in handler")
