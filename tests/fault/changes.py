"""A DynamoDB table with a stream, a paced writer of inserts/updates/deletes, and the stream as written.

The writer remembers, per key, the operations it made in order; `stream_changes` reads back what
DynamoDB Streams recorded (event ids in stream order), which is the truth the Kafka topic is checked against.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import boto3
import orjson

from bridge.normalize import RawImage
from tests.tables import create_stream_table

TABLE = "Faults"
OPS = {"INSERT": "c", "MODIFY": "u", "REMOVE": "d"}


def create_table(dynamodb, name: str = TABLE) -> None:
    """A table keyed by `pk` (S) with a NEW_AND_OLD_IMAGES stream."""
    create_stream_table(dynamodb, name)


@dataclass
class ChangeWriter:
    """Writes `count` changes over `keys` keys, paced to last about `duration` seconds, in a thread."""

    endpoint: str
    count: int
    keys: int
    duration: float
    seed: int
    table: str = TABLE
    ops_by_key: dict[str, list[str]] = field(default_factory=dict)
    written: int = 0
    error: BaseException | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="change-writer", daemon=True)
        self.thread.start()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError(f"writer still running after {timeout} s ({self.written} of {self.count} written)")
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            self._write_all()
        except BaseException as error:  # reported by join()
            self.error = error

    def _write_all(self) -> None:
        client = boto3.client("dynamodb", endpoint_url=self.endpoint, region_name="us-east-1")
        rng = random.Random(self.seed)
        live: set[str] = set()
        start = time.monotonic()
        for i in range(self.count):
            key = f"k{rng.randrange(self.keys):04d}"
            if key in live and rng.random() < 0.25:
                client.delete_item(TableName=self.table, Key={"pk": {"S": key}})
                live.discard(key)
                op = "d"
            else:
                item = {"pk": {"S": key}, "v": {"N": str(i)}, "pad": {"S": "x" * rng.randrange(10, 200)}}
                client.put_item(TableName=self.table, Item=item)
                op = "u" if key in live else "c"
                live.add(key)
            self.ops_by_key.setdefault(key, []).append(op)
            self.written += 1
            pause = start + (i + 1) * self.duration / self.count - time.monotonic()
            if pause > 0:
                time.sleep(pause)


def stream_changes(endpoint: str, table: str = TABLE) -> list[tuple[str, str, str]]:
    """Every record of the table's stream as (event_id, key, op), in stream order."""
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    streams = boto3.client("dynamodbstreams", endpoint_url=endpoint, region_name="us-east-1")
    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    changes = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = streams.get_records(ShardIterator=iterator, Limit=1000)
            records = response["Records"]
            if not records:
                break
            for record in records:
                key = record["dynamodb"]["Keys"]["pk"]["S"]
                changes.append((record["eventID"], key, OPS[record["eventName"]]))
            iterator = response.get("NextShardIterator")
    return changes


class CorruptingStreams:
    """The real moto Streams client, except that the new image of item `bad` gets attribute `v` = `malformed`:
    a record that cannot be normalized, which moto itself never produces."""

    def __init__(self, client, malformed: dict) -> None:
        self.client = client
        self.malformed = malformed

    def __getattr__(self, name: str):
        return getattr(self.client, name)

    def get_records(self, **kwargs):
        response = self.client.get_records(**kwargs)
        for record in response["Records"]:
            if record["dynamodb"]["Keys"]["pk"] == {"S": "bad"}:
                image = record["dynamodb"]["NewImage"]
                raw = type(image) is RawImage  # the fast read path keeps images as JSON text: keep it so
                image = image.parsed() if raw else image
                image["v"] = self.malformed
                record["dynamodb"]["NewImage"] = RawImage(orjson.dumps(image)) if raw else image
        return response


def assert_stream_holds_the_writes(changes: list[tuple[str, str, str]], writer: ChangeWriter, count: int) -> None:
    """The stream holds one record per write of `writer` (`count` in all), in write order per key."""
    assert len(changes) == count, "the stream must hold one record per write"
    stream_ops: dict[str, list[str]] = {}
    for _, key, op in changes:
        stream_ops.setdefault(key, []).append(op)
    assert stream_ops == writer.ops_by_key, "the stream must hold every write in write order per key"
