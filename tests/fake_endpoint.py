"""`FakeAWS` behind a real HTTP endpoint, so that boto3's own clients (signing, parsing, retries, the bridge's
raw GetRecords parser) talk to the scripted world exactly as to AWS - and so that a test can damage the
bytes of an answer: cut the body short, send nothing, or close the connection in the middle of it.

It speaks AWS JSON 1.0 (`POST /`, `X-Amz-Target: DynamoDB_20120810.DescribeTable` or
`DynamoDBStreams_20120810.DescribeStream | GetShardIterator | GetRecords`); errors come back as AWS sends
them (`{"__type": code, "message": ...}` with status 400, or 500 for server codes).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.exceptions import ClientError

from tests.fake_streams import FakeAWS

Damage = Callable[[bytes], tuple[bytes, int]]  # the body -> (bytes to send, Content-Length to announce)


def cut_short(body: bytes) -> tuple[bytes, int]:
    """Half of the body, announced as that length: a 200 whose JSON ends in the middle."""
    half = body[: len(body) // 2]
    return half, len(half)


def empty(body: bytes) -> tuple[bytes, int]:
    """A 200 with no body at all."""
    return b"", 0


def closed_mid_body(body: bytes) -> tuple[bytes, int]:
    """Half of the body, with the whole length announced: the connection closes in the middle."""
    return body[: len(body) // 2], len(body)


def without_records(body: bytes) -> tuple[bytes, int]:
    """A 200 that is whole JSON but has lost its `Records`: only the next iterator is left."""
    answer = json.loads(body)
    answer.pop("Records", None)
    text = json.dumps(answer).encode()
    return text, len(text)


def _plain(value):
    if isinstance(value, dt.datetime):
        return value.timestamp()
    raise TypeError(f"cannot serialize {type(value).__name__}")


class FakeEndpoint:
    """Serves `aws` on a free loopback port until `close()`; `damage_next` spoils answers of one operation."""

    def __init__(self, aws: FakeAWS) -> None:
        self.aws = aws
        self.damages: list[list] = []  # [operation, damage, times left]
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                endpoint._serve(self)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def damage_next(self, operation: str, damage: Damage, times: int = 1) -> None:
        """The next `times` successful answers to `operation` are sent as `damage` makes them."""
        with self.lock:
            self.damages.append([operation, damage, times])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _damage(self, operation: str) -> Damage | None:
        with self.lock:
            for scripted in self.damages:
                if scripted[0] == operation and scripted[2] > 0:
                    scripted[2] -= 1
                    return scripted[1]
        return None

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        operation = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        args = json.loads(request.rfile.read(int(request.headers.get("Content-Length", 0))) or b"{}")
        client = self.aws.dynamodb if operation == "DescribeTable" else self.aws.streams
        method = {
            "DescribeTable": "describe_table",
            "DescribeStream": "describe_stream",
            "GetShardIterator": "get_shard_iterator",
            "GetRecords": "get_records",
        }.get(operation)
        status, damage = 200, None
        try:
            if method is None:
                raise ValueError(f"operation {operation!r} is not served")
            answer = getattr(client, method)(**args)
            damage = self._damage(operation)
        except ClientError as error:
            status = error.response["ResponseMetadata"]["HTTPStatusCode"]
            answer = {"__type": error.response["Error"]["Code"], "message": error.response["Error"]["Message"]}
        body = json.dumps(answer, default=_plain).encode()
        sent, length = damage(body) if damage else (body, len(body))
        request.send_response(status)
        request.send_header("Content-Type", "application/x-amz-json-1.0")
        request.send_header("Content-Length", str(length))
        request.end_headers()
        request.wfile.write(sent)
        if len(sent) < length:
            request.close_connection = True
