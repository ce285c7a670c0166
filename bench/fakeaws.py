"""A local HTTP endpoint that answers like DynamoDB and DynamoDB Streams for the benchmark corpus.

It speaks AWS JSON 1.0 (`POST /`, `X-Amz-Target: DynamoDB_20120810.DescribeTable` or
`DynamoDBStreams_20120810.DescribeStream | GetShardIterator | GetRecords`), so boto3 talks to it exactly as
to AWS (signing is accepted, not checked). The corpus (`bench/corpus.py`) is split over its shards by item;
`GetRecords` pages hold at most 1,000 records and 1 MB, like AWS, and are serialized once at startup so
that serving costs the benchmark as little CPU as possible. Shards stay open: past the end, `GetRecords`
returns no records and the same iterator, as AWS does for an open shard that is caught up.

Run: `python -m bench.fakeaws --records 100000` prints `READY <port>` once the pages are built.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import sys
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


class Endpoint:
    """The state behind the HTTP handler: one table, one stream, its shards."""

    def __init__(self, records: int) -> None:
        by_shard: list[list[dict]] = [[] for _ in range(corpus.SHARDS)]
        for shard, record in corpus.records(records):
            by_shard[shard].append(record)
        self.shards = [Shard(r) for r in by_shard]

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
            }
        }

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
        "DynamoDBStreams_20120810.DescribeStream": endpoint.describe_stream,
        "DynamoDBStreams_20120810.GetShardIterator": endpoint.get_shard_iterator,
        "DynamoDBStreams_20120810.GetRecords": endpoint.get_records,
    }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

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
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--manifest", help='write {"last": {shard id: last sequence number}, "pages": {shard id: pages}} to this file'
    )
    args = parser.parse_args(argv)
    endpoint = Endpoint(args.records)
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
