"""The benchmark's local AWS endpoint answers boto3 like DynamoDB Streams: pages, iterators, resumes, errors."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer

import boto3
import pytest
from botocore.exceptions import ClientError

from bench import corpus, fakeaws
from bridge.normalize import to_change_event
from bridge.source import rawbody

RECORDS = 60


@pytest.fixture(scope="module")
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), fakeaws.handler(fakeaws.Endpoint(RECORDS)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _client(service: str, endpoint: str, raw: bool = False):
    client = boto3.client(
        service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    if raw:
        rawbody.install(client)
    return client


def _read_shard(client, shard_id: str, **start) -> list[dict]:
    args = {"ShardIteratorType": "TRIM_HORIZON", **start}
    iterator = client.get_shard_iterator(StreamArn=corpus.STREAM_ARN, ShardId=shard_id, **args)["ShardIterator"]
    records = []
    while True:
        page = client.get_records(ShardIterator=iterator)
        if not page["Records"]:
            return records
        records += page["Records"]
        iterator = page["NextShardIterator"]


def test_every_corpus_record_is_read_once_in_order_through_boto3(endpoint):
    table = _client("dynamodb", endpoint).describe_table(TableName=corpus.TABLE)["Table"]
    assert table["LatestStreamArn"] == corpus.STREAM_ARN
    streams = _client("dynamodbstreams", endpoint, raw=True)
    shards = streams.describe_stream(StreamArn=corpus.STREAM_ARN)["StreamDescription"]["Shards"]
    read = {shard["ShardId"]: _read_shard(streams, shard["ShardId"]) for shard in shards}

    expected: dict[str, list[str]] = {}
    for index, record in corpus.records(RECORDS):
        expected.setdefault(corpus.shard_id(index), []).append(record["eventID"])
    assert {shard: [r["eventID"] for r in records] for shard, records in read.items()} == expected


def test_raw_and_parsed_reads_of_the_endpoint_normalize_alike(endpoint):
    shard = corpus.shard_id(0)
    raw = _read_shard(_client("dynamodbstreams", endpoint, raw=True), shard)
    parsed = _read_shard(_client("dynamodbstreams", endpoint), shard)
    assert isinstance(parsed[0]["dynamodb"]["NewImage"]["signature"]["B"], bytes)

    def events(records):
        return [to_change_event(r, table=corpus.TABLE, stream_arn="a", shard_id=shard) for r in records]

    assert events(raw) == events(parsed)


def test_after_sequence_number_resumes_after_that_record(endpoint):
    streams = _client("dynamodbstreams", endpoint, raw=True)
    shard = corpus.shard_id(1)
    everything = _read_shard(streams, shard)
    middle = everything[5]["dynamodb"]["SequenceNumber"]
    rest = _read_shard(streams, shard, ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=middle)
    assert rest == everything[6:]


def test_unknown_stream_is_a_resource_not_found_client_error(endpoint):
    with pytest.raises(ClientError) as caught:
        _client("dynamodbstreams", endpoint, raw=True).describe_stream(
            StreamArn=corpus.STREAM_ARN.replace("Orders", "Nope")
        )
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
