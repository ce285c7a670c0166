"""A local HTTP endpoint that answers like DynamoDB and DynamoDB Streams for the benchmark corpus.

It speaks AWS JSON 1.0 (`POST /`, `X-Amz-Target: DynamoDB_20120810.DescribeTable | Scan` or
`DynamoDBStreams_20120810.DescribeStream | GetShardIterator | GetRecords`), so boto3 talks to it exactly as
to AWS (signing is accepted, not checked). The corpus (`bench/corpus.py`) is split over its shards by item;
`GetRecords` pages hold at most 1,000 records and 1 MB, like AWS, and are serialized once at startup so
that serving costs the benchmark as little CPU as possible. Shards stay open: past the end, `GetRecords`
returns no records and the same iterator, as AWS does for an open shard that is caught up. With
`--records 0` the stream is idle: four open shards that never hand on a record.

The table holds `--items` items (`corpus.table_item`, default none) for `Scan`: see `ScanTable`.

Run: `python -m bench.fakeaws --records 100000` prints `READY <port>` once the pages are built.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import hashlib
import json
import math
import sys
from array import array
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson

from bench import corpus

PAGE_BYTES = 1_000_000
PAGE_RECORDS = 1_000


class Shard:
    """The records of one shard as pre-serialized `GetRecords` pages."""

    def __init__(self, records: list[dict]) -> None:
        self.pages: list[bytes] = []
        self.first_sequence: list[int] = []  # of each page, for AFTER_SEQUENCE_NUMBER
        self.records = records
        self.page_start: list[int] = []
        page: list[bytes] = []
        size = 0
        for index, record in enumerate(records):
            data = orjson.dumps(record)
            if page and (size + len(data) + 1 > PAGE_BYTES or len(page) >= PAGE_RECORDS):
                self._close(page)
                page, size = [], 0
            if not page:
                self.page_start.append(index)
                self.first_sequence.append(int(record["dynamodb"]["SequenceNumber"]))
            page.append(data)
            size += len(data) + 1
        if page:
            self._close(page)

    def _close(self, page: list[bytes]) -> None:
        self.pages.append(b"[" + b",".join(page) + b"]")

    def page_after(self, sequence: int) -> int:
        """The index of the first record after `sequence`."""
        numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in self.records]
        return bisect.bisect_right(numbers, sequence)


SCAN_PAGE_BYTES = 1 << 20  # of item JSON per Scan answer, like AWS's 1 MB (AWS counts its own, smaller, item size)
HASH_SPACE = 1 << 32
UNSUPPORTED_SCAN = (
    "IndexName",
    "AttributesToGet",
    "ScanFilter",
    "ConditionalOperator",
    "ProjectionExpression",
    "FilterExpression",
)


class ScanTable:
    """The items of the table as `Scan` answers them, built from a few pre-serialized parts.

    Item `n` is `corpus.table_item(n)`: its own attributes (`corpus.table_varying`) serialized when a page is
    built, the rest one of `corpus.POOL` fragments serialized at start-up, so 400,000 items take a few MB here
    instead of 500. Items are ordered by a stable 32-bit hash of their partition key, as DynamoDB orders a Scan;
    segment `s` of `TotalSegments` `t` is the hash range `[s * 2**32 / t, (s + 1) * 2**32 / t)`, so the
    segments of any `t` cover every item exactly once. A page holds items up to 1 MB of their JSON (or
    `Limit` items) and says where it ended in `LastEvaluatedKey`; the last page of a segment has none.
    """

    def __init__(self, items: int) -> None:
        pool = corpus.table_pool()
        # every pool order without its own attributes, as the tail of an object: `"email":...}`
        self.fragments = [
            orjson.dumps({k: v for k, v in order.items() if k not in corpus.TABLE_VARYING})[1:] for order in pool
        ]
        hashes = array("I", map(self._hash, range(items)))
        self.order = array("I", sorted(range(items), key=hashes.__getitem__))  # item number at each place
        self.hashes = array("I", (hashes[n] for n in self.order))  # ascending
        self.place = array("I", bytes(4 * items))  # place in hash order of each item number
        self.ends = array("q", [0])  # ends[i]: JSON bytes of the items before place i
        for place, number in enumerate(self.order):
            self.place[number] = place
            self.ends.append(self.ends[-1] + len(self.item_json(number)))

    @staticmethod
    def _hash(number: int) -> int:
        key = corpus.table_key(number)["pk"]["S"].encode()
        return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "big")

    def __len__(self) -> int:
        return len(self.order)

    @property
    def size_bytes(self) -> int:
        return self.ends[-1]

    def item_json(self, number: int) -> bytes:
        """Item `number` as attribute-value JSON (B/BS base64 text), as a Scan answer holds it."""
        return orjson.dumps(corpus.table_varying(number))[:-1] + b"," + self.fragments[number % len(self.fragments)]

    def scan(self, request: dict) -> bytes:
        """The `Scan` answer to `request`, or `_Error` (ValidationException) for a request AWS would refuse."""
        unsupported = [name for name in UNSUPPORTED_SCAN if name in request]
        if unsupported or request.get("Select", "ALL_ATTRIBUTES") != "ALL_ATTRIBUTES":
            raise _Error("ValidationException", f"the benchmark endpoint does not support {unsupported or 'Select'}")
        first, end = self._segment(request.get("Segment"), request.get("TotalSegments"))
        start = request.get("ExclusiveStartKey")
        if start is not None:
            first = self._after(start, first, end)
        last = first
        if first < end:
            last = bisect.bisect_right(self.ends, self.ends[first] + SCAN_PAGE_BYTES, first + 1, end + 1) - 1
            last = max(last, first + 1)  # an item larger than a page still comes alone
        limit = request.get("Limit")
        if limit is not None:
            if type(limit) is not int or limit < 1:
                raise _Error("ValidationException", "Limit must be at least 1")
            last = min(last, first + limit)
        numbers = self.order[first:last]
        body = [
            b'{"Items":[',
            b",".join(map(self.item_json, numbers)),
            b'],"Count":%d,"ScannedCount":%d'
            % (
                len(numbers),
                len(numbers),
            ),
        ]
        if last < end:
            body.append(b',"LastEvaluatedKey":' + orjson.dumps(corpus.table_key(numbers[-1])))
        if request.get("ReturnConsumedCapacity", "NONE") != "NONE":
            consistent = request.get("ConsistentRead") is True
            units = math.ceil((self.ends[last] - self.ends[first]) / 4096) / (1 if consistent else 2)
            consumed = {"TableName": corpus.TABLE, "CapacityUnits": float(units)}
            if request["ReturnConsumedCapacity"] == "INDEXES":
                consumed["Table"] = {"CapacityUnits": float(units)}
            body.append(b',"ConsumedCapacity":' + orjson.dumps(consumed))
        body.append(b"}")
        return b"".join(body)

    def _segment(self, segment, total) -> tuple[int, int]:
        """The places `[first, end)` of the items of one segment (the whole table without segments)."""
        if segment is None and total is None:
            return 0, len(self.order)
        if type(segment) is not int or type(total) is not int or not 1 <= total <= 1_000_000:
            raise _Error("ValidationException", "Segment and TotalSegments go together; 1 <= TotalSegments <= 1000000")
        if not 0 <= segment < total:
            raise _Error("ValidationException", f"Segment {segment} is not below TotalSegments {total}")
        low, high = -(-segment * HASH_SPACE // total), -(-(segment + 1) * HASH_SPACE // total)
        return bisect.bisect_left(self.hashes, low), bisect.bisect_left(self.hashes, high)

    def _after(self, key, first: int, end: int) -> int:
        """The place after the item of `key` (an ExclusiveStartKey), which must lie in `[first, end)`."""
        try:
            number = int(key["pk"]["S"].removeprefix("customer#"))
            if key != corpus.table_key(number) or not 0 <= number < len(self.order):
                raise ValueError(key)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise _Error("ValidationException", "The provided starting key is invalid") from None
        place = self.place[number]
        if not first <= place < end:
            raise _Error("ValidationException", "The provided starting key is outside the segment")
        return place + 1


class Endpoint:
    """The state behind the HTTP handler: one table (`items` items for Scan), one stream, its shards."""

    def __init__(self, records: int, items: int = 0) -> None:
        by_shard: list[list[dict]] = [[] for _ in range(corpus.SHARDS)]
        for shard, record in corpus.records(records):
            by_shard[shard].append(record)
        self.shards = [Shard(r) for r in by_shard]
        self.table = ScanTable(items)

    def describe_table(self, request: dict) -> dict:
        if request.get("TableName") != corpus.TABLE:
            raise _Error(
                "ResourceNotFoundException", f"Requested resource not found: Table: {request.get('TableName')}"
            )
        return {
            "Table": {
                "TableName": corpus.TABLE,
                "TableStatus": "ACTIVE",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
                "LatestStreamArn": corpus.STREAM_ARN,
                "LatestStreamLabel": corpus.STREAM_ARN.rsplit("/", 1)[-1],
                "ItemCount": len(self.table),
                "TableSizeBytes": self.table.size_bytes,
            }
        }

    def scan(self, request: dict) -> bytes:
        if request.get("TableName") != corpus.TABLE:
            raise _Error(
                "ResourceNotFoundException", f"Requested resource not found: Table: {request.get('TableName')}"
            )
        return self.table.scan(request)

    def describe_stream(self, request: dict) -> dict:
        self._stream(request)
        shards = [
            {
                "ShardId": corpus.shard_id(index),
                "SequenceNumberRange": {"StartingSequenceNumber": str(shard.first_sequence[0] if shard.pages else 0)},
            }
            for index, shard in enumerate(self.shards)
        ]
        return {
            "StreamDescription": {
                "StreamArn": corpus.STREAM_ARN,
                "StreamLabel": corpus.STREAM_ARN.rsplit("/", 1)[-1],
                "StreamStatus": "ENABLED",
                "StreamViewType": "NEW_AND_OLD_IMAGES",
                "TableName": corpus.TABLE,
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                "Shards": shards,
            }
        }

    def get_shard_iterator(self, request: dict) -> dict:
        self._stream(request)
        index = self._shard_index(request.get("ShardId", ""))
        shard = self.shards[index]
        kind = request.get("ShardIteratorType")
        if kind == "TRIM_HORIZON":
            position = 0
        elif kind == "LATEST":
            position = len(shard.records)
        elif kind in ("AFTER_SEQUENCE_NUMBER", "AT_SEQUENCE_NUMBER"):
            sequence = int(request["SequenceNumber"]) - (kind == "AT_SEQUENCE_NUMBER")
            position = shard.page_after(sequence)
        else:
            raise _Error("ValidationException", f"bad ShardIteratorType {kind!r}")
        return {"ShardIterator": f"{index}/{position}"}

    def get_records(self, request: dict) -> bytes:
        try:
            index, position = (int(part) for part in request["ShardIterator"].split("/"))
            shard = self.shards[index]
        except (KeyError, ValueError, IndexError):
            raise _Error("ValidationException", "Invalid ShardIterator") from None
        page = bisect.bisect_left(shard.page_start, position)
        if page < len(shard.pages) and shard.page_start[page] == position:
            body = shard.pages[page]
            following = shard.page_start[page + 1] if page + 1 < len(shard.pages) else len(shard.records)
        elif position >= len(shard.records):
            body, following = b"[]", position
        else:  # a resume in the middle of a page: serialize what is left of it
            end = min(len(shard.records), position + PAGE_RECORDS // 4)
            body, following = orjson.dumps(shard.records[position:end]), end
        return b'{"NextShardIterator":"%d/%d","Records":%s}' % (index, following, body)

    def _stream(self, request: dict) -> None:
        if request.get("StreamArn") != corpus.STREAM_ARN:
            raise _Error(
                "ResourceNotFoundException", f"Requested resource not found: Stream: {request.get('StreamArn')}"
            )

    def _shard_index(self, shard_id: str) -> int:
        for index in range(len(self.shards)):
            if corpus.shard_id(index) == shard_id:
                return index
        raise _Error("ResourceNotFoundException", f"Requested resource not found: Shard: {shard_id}")


class _Error(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def handler(endpoint: Endpoint) -> type[BaseHTTPRequestHandler]:
    operations = {
        "DynamoDB_20120810.DescribeTable": endpoint.describe_table,
        "DynamoDB_20120810.Scan": endpoint.scan,
        "DynamoDBStreams_20120810.DescribeStream": endpoint.describe_stream,
        "DynamoDBStreams_20120810.GetShardIterator": endpoint.get_shard_iterator,
        "DynamoDBStreams_20120810.GetRecords": endpoint.get_records,
    }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY: the handler writes the headers, then the body; with Nagle's algorithm the body of a
        # small answer waits for the client's delayed ACK of the headers (~40 ms a call on a kept-alive
        # connection), a stall AWS's endpoints do not have
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            request = orjson.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            target = self.headers.get("X-Amz-Target", "")
            try:
                operation = operations.get(target)
                if operation is None:
                    raise _Error("UnknownOperationException", f"unknown operation {target!r}")
                result = operation(request)
                self._send(200, result if isinstance(result, bytes) else orjson.dumps(result))
            except _Error as error:
                self._send(
                    400,
                    orjson.dumps(
                        {"__type": f"com.amazonaws.dynamodb.v20120810#{error.code}", "message": error.message}
                    ),
                )

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amzn-RequestId", "bench")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="stream records (0: an idle stream)")
    parser.add_argument("--items", type=int, default=0, help="items in the table, for Scan")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--manifest", help='write {"last": {shard id: last sequence number}, "pages": {shard id: pages}} to this file'
    )
    args = parser.parse_args(argv)
    endpoint = Endpoint(args.records, args.items)
    if args.manifest:
        last = {
            corpus.shard_id(i): shard.records[-1]["dynamodb"]["SequenceNumber"]
            for i, shard in enumerate(endpoint.shards)
            if shard.records
        }
        pages = {corpus.shard_id(i): len(shard.pages) for i, shard in enumerate(endpoint.shards)}
        Path(args.manifest).write_text(json.dumps({"last": last, "pages": pages}))
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(endpoint))
    server.daemon_threads = True
    print(f"READY {server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
