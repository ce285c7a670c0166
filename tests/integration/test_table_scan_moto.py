"""TableScan against the real moto server through a real boto3 client with the raw Scan parser installed.

A table with binary keys, scanned in 4 segments, gives every item exactly once, as the wire JSON a plain boto3
Scan gives (re-encoded); a scan resumed mid-segment from a page's LastEvaluatedKey gives exactly the rest of
that segment. moto 5.2.5 cannot split a table with a binary partition key into segments (HTTP 500), so the
parallel scans use a binary sort key, and the binary partition key is scanned and resumed in one segment.
"""

from __future__ import annotations

import time

import boto3
import pytest
from botocore.config import Config as BotoConfig

from bridge.checkpoint import SegmentPosition
from bridge.source.clients import AWS_TIMEOUTS
from bridge.source.scan import ScanPage, TableScan
from tests.dynamo_values import as_stream_json

TABLE, HASH_KEYS, PER_HASH = "Snapshot", 1000, 3


def _binary(h: int, r: int) -> bytes:
    return bytes([0xFF, h % 256, 0x00, h // 256, r]) + b"\x80\xfe"  # not UTF-8, has a NUL: base64 must be right


def _item(h: int, r: int, binary_hash: bool) -> dict:
    keys = {"pk": {"B": _binary(h, 0)}, "sk": {"N": str(r)}}
    if not binary_hash:
        keys = {"pk": {"S": f"customer-{h}"}, "sk": {"B": _binary(h, r)}}
    return {
        **keys,
        "body": {"S": f"item {h}/{r} " + "x" * 800},
        "blob": {"B": bytes(range(h % 7, 120))},
        "blobs": {"BS": [b"\x00", bytes([h % 256, 1])]},
        "nested": {"M": {"l": {"L": [{"N": "1.5"}, {"NULL": True}, {"B": b"\xff"}]}}},
    }


def _create(dynamodb, binary_hash: bool) -> None:
    hash_type, range_type = ("B", "N") if binary_hash else ("S", "B")
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": hash_type},
            {"AttributeName": "sk", "AttributeType": range_type},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    items = [_item(h, r, binary_hash) for h in range(HASH_KEYS) for r in range(PER_HASH)]
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        dynamodb.batch_write_item(RequestItems={TABLE: batch})


@pytest.fixture
def binary_range_table(dynamodb):
    """String partition key, binary sort key: moto can split it into segments."""
    _create(dynamodb, binary_hash=False)
    return dynamodb


@pytest.fixture
def binary_hash_table(dynamodb):
    """Binary partition key, number sort key: moto 5.2.5 answers a segmented Scan of it with HTTP 500 (it
    hashes the key value as text), so it is scanned in one segment (no Segment/TotalSegments sent)."""
    _create(dynamodb, binary_hash=True)
    return dynamodb


def _client(endpoint: str):
    config = BotoConfig(retries={"mode": "standard", "max_attempts": 3}, **AWS_TIMEOUTS)
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", config=config)


def _plain_scan(dynamodb) -> list[dict]:
    items = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=TABLE, ConsistentRead=True):
        items += [{name: as_stream_json(value) for name, value in item.items()} for item in page["Items"]]
    return items


def _read(scan: TableScan, timeout: float = 60.0) -> list[ScanPage]:
    pages: list[ScanPage] = []
    scan.start()
    deadline = time.monotonic() + timeout
    try:
        while not scan.finished():
            assert time.monotonic() < deadline, "the scan did not finish"
            if (page := scan.get(0.1)) is not None:
                pages.append(page)
    finally:
        scan.stop(timeout=5)
    return pages


def _key(item: dict) -> tuple[str, str]:
    ((_, pk),) = item["pk"].items()
    ((_, sk),) = item["sk"].items()
    return pk, sk


def _items(pages: list[ScanPage]) -> list[dict]:
    return [item for page in pages for item in page.items]


def test_parallel_scan_gives_every_item_once_as_a_plain_scan_gives_it(binary_range_table, moto_endpoint):
    expected = sorted(_plain_scan(binary_range_table), key=_key)
    assert len(expected) == HASH_KEYS * PER_HASH

    pages = _read(TableScan(_client(moto_endpoint), TABLE, [SegmentPosition()] * 4, page_limit=100))

    items = _items(pages)
    assert len({_key(item) for item in items}) == len(items) == len(expected)  # every item exactly once
    assert sorted(items, key=_key) == expected  # equal as wire JSON
    for segment in range(4):
        mine = [page for page in pages if page.segment == segment]
        assert len(mine) > 2 and mine[-1].last_key is None  # each segment has items, over several pages
        assert all(page.last_key is not None for page in mine[:-1])


def test_parallel_scan_resumed_from_a_mid_segment_key_gives_exactly_the_rest(binary_range_table, moto_endpoint):
    client = _client(moto_endpoint)
    segment = [p for p in _read(TableScan(client, TABLE, [SegmentPosition()] * 4, page_limit=100)) if p.segment == 1]
    resume_at = segment[1].last_key  # after the second page: mid-segment, with a binary sort key
    assert resume_at is not None and "B" in resume_at["sk"]

    positions = [SegmentPosition(done=True)] * 4
    positions[1] = SegmentPosition(last_key=resume_at, items=200)
    resumed = _read(TableScan(client, TABLE, positions, page_limit=100))

    assert {page.segment for page in resumed} == {1}
    assert _items(resumed) == _items(segment[2:])


def test_binary_partition_key_table_is_scanned_and_resumed_exactly(binary_hash_table, moto_endpoint):
    client = _client(moto_endpoint)
    expected = sorted(_plain_scan(binary_hash_table), key=_key)

    pages = _read(TableScan(client, TABLE, [SegmentPosition()], page_limit=500))
    assert sorted(_items(pages), key=_key) == expected and len(_items(pages)) == len(expected)

    resume_at = pages[2].last_key
    assert resume_at is not None and "B" in resume_at["pk"]
    resumed = _read(TableScan(client, TABLE, [SegmentPosition(last_key=resume_at)], page_limit=500))
    assert _items(resumed) == _items(pages[3:])
