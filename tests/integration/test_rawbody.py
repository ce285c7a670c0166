"""rawbody: GetRecords read through the raw-body handler gives the same change events as boto3's parser."""

from __future__ import annotations

from decimal import Decimal

import boto3
import pytest
from botocore.exceptions import ClientError

from bridge.normalize import RawImage, to_change_event
from bridge.source import rawbody

ITEM = {
    "id": {"S": "a"},
    "blob": {"B": bytes(range(256))},
    "blobs": {"BS": [b"\x00", b"\xff\xfe"]},
    "n": {"N": "12345678901234567890123456789012345678"},
    "f": {"N": "-1.5E-7"},
    "nested": {"M": {"l": {"L": [{"S": "é"}, {"NULL": True}, {"BOOL": False}, {"NS": ["2", "1"]}]}}},
}


@pytest.fixture
def stream(dynamodb):
    table = dynamodb.create_table(
        TableName="Raw",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]
    dynamodb.put_item(TableName="Raw", Item=ITEM)
    dynamodb.update_item(
        TableName="Raw",
        Key={"id": {"S": "a"}},
        UpdateExpression="SET n = :n",
        ExpressionAttributeValues={":n": {"N": "7"}},
    )
    return table["LatestStreamArn"], dynamodb.meta.endpoint_url


def _client(endpoint: str, raw: bool):
    client = boto3.client("dynamodbstreams", endpoint_url=endpoint, region_name="us-east-1")
    if raw:
        rawbody.install(client)
    return client


def _read(client, arn: str) -> tuple[str, dict]:
    shard = client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = client.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    return shard, client.get_records(ShardIterator=iterator["ShardIterator"])


def test_raw_records_normalize_to_the_same_events_as_boto3_records(stream):
    arn, endpoint = stream
    shard, parsed = _read(_client(endpoint, raw=False), arn)
    _, raw = _read(_client(endpoint, raw=True), arn)

    assert len(raw["Records"]) == len(parsed["Records"]) == 2
    image = raw["Records"][0]["dynamodb"]["NewImage"]
    assert type(image) is RawImage  # left as JSON text for the transcoder
    assert isinstance(image.parsed()["blob"]["B"], str)  # base64 text, not bytes
    assert "NextShardIterator" in raw and "ResponseMetadata" in raw

    def events(response):
        return [to_change_event(r, table="Raw", stream_arn=arn, shard_id=shard) for r in response["Records"]]

    raw_events, parsed_events = events(raw), events(parsed)
    assert raw_events == parsed_events
    assert raw_events[0].after["blob"] == bytes(range(256))
    assert raw_events[1].before["n"] == Decimal("12345678901234567890123456789012345678")


def test_errors_still_come_back_as_botocore_client_errors(stream):
    _, endpoint = stream
    client = _client(endpoint, raw=True)
    with pytest.raises(ClientError) as caught:
        client.get_records(ShardIterator="not-an-iterator")
    assert caught.value.response["Error"]["Code"] != ""
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] >= 400
