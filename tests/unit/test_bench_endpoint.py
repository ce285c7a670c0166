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


# -- Scan of the snapshot table ----------------------------------------------------------------------------

ITEMS = 2_000  # about 2.5 MB of items: three 1 MB pages without segments


@pytest.fixture(scope="module")
def table_endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), fakeaws.handler(fakeaws.Endpoint(0, ITEMS)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _scan_pages(client, **request) -> list[dict]:
    pages = []
    while True:
        page = client.scan(TableName=corpus.TABLE, **request)
        pages.append(page)
        if "LastEvaluatedKey" not in page:
            return pages
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _number(item: dict) -> int:
    return int(item["pk"]["S"].removeprefix("customer#"))


@pytest.mark.parametrize("total", [1, 4, 7])
def test_scan_segments_hold_every_item_exactly_once_as_the_corpus_makes_it(table_endpoint, total):
    client = _client("dynamodb", table_endpoint)
    pool = corpus.table_pool(binary="bytes")  # boto3 parses B and BS to bytes
    by_segment = [
        [item for page in _scan_pages(client, Segment=s, TotalSegments=total) for item in page["Items"]]
        for s in range(total)
    ]
    numbers = sorted(_number(item) for items in by_segment for item in items)
    assert numbers == list(range(ITEMS))
    assert all(items for items in by_segment)  # the hash spreads items over every segment
    for items in by_segment:
        for item in items[:50]:
            assert item == corpus.table_item(_number(item), pool)


def test_scan_pages_hold_at_most_1_mb_of_items_and_count_them(table_endpoint):
    pages = _scan_pages(_client("dynamodb", table_endpoint))
    assert len(pages) == 3
    table = fakeaws.ScanTable(ITEMS)
    for page in pages:
        assert page["Count"] == page["ScannedCount"] == len(page["Items"]) > 0
        assert sum(len(table.item_json(_number(item))) for item in page["Items"]) <= 1 << 20
    assert "LastEvaluatedKey" not in pages[-1]
    assert all(page["LastEvaluatedKey"] == corpus.table_key(_number(page["Items"][-1])) for page in pages[:-1])


def test_scan_resumes_after_its_exclusive_start_key(table_endpoint):
    client = _client("dynamodb", table_endpoint)
    whole = [item for page in _scan_pages(client, Segment=2, TotalSegments=4) for item in page["Items"]]
    small = _scan_pages(client, Segment=2, TotalSegments=4, Limit=111)
    assert len(small) > 2
    assert [len(page["Items"]) for page in small[:-1]] == [111] * (len(small) - 1)
    assert [item for page in small for item in page["Items"]] == whole
    middle = len(whole) // 2
    start = corpus.table_key(_number(whole[middle]))
    rest = _scan_pages(client, Segment=2, TotalSegments=4, ExclusiveStartKey=start)
    assert [item for page in rest for item in page["Items"]] == whole[middle + 1 :]


def test_scan_reports_consumed_capacity_of_its_bytes_halved_for_eventual_reads(table_endpoint):
    client = _client("dynamodb", table_endpoint)
    table = fakeaws.ScanTable(ITEMS)
    request = {"Segment": 1, "TotalSegments": 4, "ReturnConsumedCapacity": "TOTAL"}
    strong = client.scan(TableName=corpus.TABLE, ConsistentRead=True, **request)
    eventual = client.scan(TableName=corpus.TABLE, ConsistentRead=False, **request)
    size = sum(len(table.item_json(_number(item))) for item in strong["Items"])
    assert strong["ConsumedCapacity"] == {"TableName": corpus.TABLE, "CapacityUnits": -(-size // 4096)}
    assert eventual["ConsumedCapacity"]["CapacityUnits"] == strong["ConsumedCapacity"]["CapacityUnits"] / 2
    assert "ConsumedCapacity" not in client.scan(TableName=corpus.TABLE, Segment=1, TotalSegments=4)


@pytest.mark.parametrize(
    "request_",
    [
        {"Segment": 4, "TotalSegments": 4},
        {"Segment": 0},
        {"Segment": 0, "TotalSegments": 4, "ExclusiveStartKey": {"pk": {"S": "nope"}, "sk": {"S": "nope"}}},
        {"FilterExpression": "version > :v"},
    ],
)
def test_scan_refuses_what_aws_refuses_or_the_endpoint_cannot_answer(table_endpoint, request_):
    with pytest.raises(ClientError) as caught:
        _client("dynamodb", table_endpoint).scan(TableName=corpus.TABLE, **request_)
    assert caught.value.response["Error"]["Code"] == "ValidationException"


def test_scan_refuses_a_start_key_of_another_segment(table_endpoint):
    client = _client("dynamodb", table_endpoint)
    other = client.scan(TableName=corpus.TABLE, Segment=3, TotalSegments=4, Limit=1)["Items"][0]
    with pytest.raises(ClientError) as caught:
        client.scan(
            TableName=corpus.TABLE, Segment=0, TotalSegments=4, ExclusiveStartKey=corpus.table_key(_number(other))
        )
    assert caught.value.response["Error"]["Code"] == "ValidationException"


def test_snapshot_table_has_an_item_count_and_an_idle_open_stream(table_endpoint):
    table = _client("dynamodb", table_endpoint).describe_table(TableName=corpus.TABLE)["Table"]
    assert table["ItemCount"] == ITEMS
    streams = _client("dynamodbstreams", table_endpoint)
    shards = streams.describe_stream(StreamArn=table["LatestStreamArn"])["StreamDescription"]["Shards"]
    assert len(shards) == corpus.SHARDS
    for shard in shards:
        assert "EndingSequenceNumber" not in shard["SequenceNumberRange"]
        iterator = streams.get_shard_iterator(
            StreamArn=corpus.STREAM_ARN, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
        )["ShardIterator"]
        page = streams.get_records(ShardIterator=iterator)
        assert page["Records"] == [] and page["NextShardIterator"]
