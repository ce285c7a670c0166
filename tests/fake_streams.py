"""A scripted in-process fake of boto3's `dynamodbstreams` and `dynamodb` clients, for what moto cannot do.

`FakeAWS` holds tables, their streams and shards. Its clients (`.streams`, `.dynamodb`) have boto3's method
names, argument names and response shapes, and fail with botocore `ClientError`s carrying AWS's error codes.
The test scripts the world: `write` records, `split` and `close` shards, `expire_iterators`, `trim`,
`fail_next` (throttling, 5xx), `answer_next` (a well-formed call answered with something else: a cut-off
page, a wrong type, paging that never ends, an answer that never comes), `new_stream` (disable the stream
and enable a new one with a new ARN), `drop_stream` (a stream disabled more than 24 h ago) and `delete_table`.

Behaviour follows AWS's DynamoDB Streams documentation: `DescribeStream` pages with `ExclusiveStartShardId`
/ `LastEvaluatedShardId`; a closed shard has an `EndingSequenceNumber`; `GetRecords` returns at most `Limit`
(<= 1000) records and no `NextShardIterator` once a closed shard is read to its end; an iterator positioned
before the trim horizon gets `TrimmedDataAccessException`; a disabled stream stays readable.

Items. A table also holds its current items: `write` of an INSERT or MODIFY puts the item equal to the
record's `NewImage`, a REMOVE deletes it (its record then has the removed item as `OldImage` and no
`NewImage`); `items_of` reads them. `Scan` answers as DynamoDB's does: `Segment` / `TotalSegments` split the
items by contiguous ranges of a stable hash of their key, and a segment is read in hash order, so an
`ExclusiveStartKey` is a position (the item may be gone since) and items written behind it are not seen. A
page holds at most `Limit` items and at most `scan_page_items` (standing in for the 1 MB cap); a page cut
by either has a `LastEvaluatedKey`, even when nothing follows (the next page is then empty and has none).
`ConsumedCapacity` (with `ReturnConsumedCapacity` TOTAL or INDEXES) charges the items' approximate size in
4 KB read units, at least one, half for eventually consistent reads. The answer is wire JSON (S/N as text):
like botocore, the client runs the `before-parse.dynamodb.Scan` handlers registered on `meta.events` (the
bridge's raw-body parser, `bridge.source.scanbody`) on the JSON body and merges what they leave; it does not
imitate botocore's own parsing (B as bytes) for a client without one. `answer_next("Scan", change)` may
return bytes: the body then is those bytes. Invalid requests are `ValidationException`s as in AWS.

Clocks. `clock` stamps the calls. `wall_clock` (epoch seconds) is when records are written: with it, a
record's `ApproximateCreationDateTime` is its write time rounded down to the second (as AWS sends it), and
`trim_older_than` trims by age (the stream's 24 h retention, shortened); without it, every record is
created at 2026-01-01 00:00 UTC.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import math
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import orjson
from botocore.exceptions import ClientError

REGION, ACCOUNT = "us-east-1", "123456789012"
FIXED_CREATION = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)  # every record's creation time without a `wall_clock`


def client_error(code: str, message: str, operation: str, status: int = 400) -> ClientError:
    """A botocore `ClientError` as boto3 raises it for an AWS error response."""
    response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)


@dataclass
class FakeShard:
    shard_id: str
    parent: str | None
    starting: str
    records: list[dict] = field(default_factory=list)
    ending: str | None = None
    trimmed: int = 0  # records before this index are gone
    listed: bool = True
    low: int = 0  # the range of key hashes written to this shard while it is open
    high: int = 2**32
    written_at: list[float] = field(default_factory=list)  # the wall-clock time of each record's write

    def description(self) -> dict:
        numbers = {"StartingSequenceNumber": self.starting}
        if self.ending is not None:
            numbers["EndingSequenceNumber"] = self.ending
        shard = {"ShardId": self.shard_id, "SequenceNumberRange": numbers}
        if self.parent:
            shard["ParentShardId"] = self.parent
        return shard


@dataclass
class FakeStream:
    arn: str
    table: str
    shards: dict[str, FakeShard] = field(default_factory=dict)  # in creation order
    status: str = "ENABLED"
    exists: bool = True


@dataclass
class FakeTable:
    name: str
    key_names: tuple[str, ...]
    stream_arn: str | None = None
    stream_enabled: bool = True
    items: dict[tuple, dict] = field(default_factory=dict)  # (key hash, key JSON) -> item (wire JSON)


@dataclass(frozen=True)
class Call:
    """One client call the fake answered (or refused): for assertions on what the bridge asked."""

    operation: str
    at: float  # when, by the fake's clock
    shard_id: str | None = None
    args: dict = field(default_factory=dict)
    records: int = 0
    error: str | None = None


class FakeAWS:
    """The scripted world behind both fake clients. Thread-safe: the bridge calls from many threads.

    `clock` stamps the calls (`Call.at`); give it the clock the bridge's source runs on to compare the two.
    `wall_clock` (epoch seconds) dates the records (see the module docstring); `scan_page_items` is the most
    items one Scan page holds.
    """

    def __init__(
        self,
        page_size: int = 100,
        clock: Callable[[], float] = time.monotonic,
        *,
        wall_clock: Callable[[], float] | None = None,
        scan_page_items: int = 100,
    ) -> None:
        self.lock = threading.RLock()
        self.page_size = page_size
        self.clock = clock
        self.wall_clock = wall_clock
        self.scan_page_items = scan_page_items
        self.tables: dict[str, FakeTable] = {}
        self.streams_by_arn: dict[str, FakeStream] = {}
        self.iterators: dict[str, tuple[str, str, int, int]] = {}  # token -> (arn, shard, index, epoch)
        self.epoch = 0
        self.numbers = itertools.count(1)
        self.ids = itertools.count(1)
        self.calls: list[Call] = []
        self.faults: list[list] = []  # [operation, shard_id | None, code, status, times left]
        self.answers: list[list] = []  # [operation, shard_id | None, change, times left]
        self.streams = FakeStreamsClient(self)
        self.dynamodb = FakeDynamoDBClient(self)

    # -- scripting ---------------------------------------------------------------------------------

    def create_table(self, name: str, key_names: tuple[str, ...] = ("pk",), shards: int = 1) -> str:
        """A table with an enabled stream of `shards` open shards (each a slice of the key hashes); returns the
        stream ARN."""
        with self.lock:
            self.tables[name] = FakeTable(name, key_names)
            return self._enable_stream(name, shards)

    def _enable_stream(self, name: str, shards: int = 1) -> str:
        label = (dt.datetime(2026, 1, 1) + dt.timedelta(seconds=next(self.ids))).isoformat(timespec="milliseconds")
        arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}/stream/{label}"
        self.streams_by_arn[arn] = FakeStream(arn, name)
        table = self.tables[name]
        table.stream_arn, table.stream_enabled = arn, True
        step = 2**32 // shards
        for index in range(shards):
            high = 2**32 if index == shards - 1 else (index + 1) * step
            self._new_shard(self.streams_by_arn[arn], None, index * step, high)
        return arn

    def _new_shard(self, stream: FakeStream, parent: str | None, low: int = 0, high: int = 2**32) -> str:
        shard_id = f"shardId-{next(self.ids):020d}-{zlib.crc32(stream.arn.encode()):08x}"
        stream.shards[shard_id] = FakeShard(shard_id, parent, self._sequence(), low=low, high=high)
        return shard_id

    def _sequence(self) -> str:
        return str(10**20 + next(self.numbers))

    def stream_of(self, table: str) -> FakeStream:
        return self.streams_by_arn[self.tables[table].stream_arn]

    def open_shards(self, table: str) -> list[str]:
        """Open shards of the table's current stream, in creation order (where new writes land)."""
        with self.lock:
            return [s.shard_id for s in self.stream_of(table).shards.values() if s.ending is None]

    def write(self, table: str, key: str, value: int, shard_id: str | None = None, event: str = "MODIFY") -> str:
        """One change of item `key` (new image `{pk: key, v: value}`). It lands on the open shard whose hash
        range holds the key's hash (as in DynamoDB, an item's changes go to one shard and then to one of its
        children), unless `shard_id` is given. INSERT and MODIFY put the item (equal to the new image); REMOVE
        deletes it and its record has the removed item (or only the key) as `OldImage` and no `NewImage`
        (`value` is unused). Returns the record's sequence number."""
        with self.lock:
            stream = self.stream_of(table)
            if shard_id is None:
                digest = zlib.crc32(key.encode())
                shard_id = next(
                    s.shard_id for s in stream.shards.values() if s.ending is None and s.low <= digest < s.high
                )
            shard = stream.shards[shard_id]
            assert shard.ending is None, f"{shard_id} is closed"
            key_name = self.tables[table].key_names[0]
            keys = {key_name: {"S": key}}
            sequence = self._sequence()
            now = (self.wall_clock or time.time)()
            created = FIXED_CREATION if self.wall_clock is None else dt.datetime.fromtimestamp(math.floor(now), dt.UTC)
            data = {"ApproximateCreationDateTime": created, "Keys": keys}
            items, slot = self.tables[table].items, _item_slot(keys)
            if event == "REMOVE":
                data["OldImage"] = items.pop(slot, keys)
            else:
                data["NewImage"] = {**keys, "v": {"N": str(value)}}
                items[slot] = copy.deepcopy(data["NewImage"])
            data.update(SequenceNumber=sequence, SizeBytes=20, StreamViewType="NEW_AND_OLD_IMAGES")
            record = {
                "eventID": f"ev-{sequence}",
                "eventName": event,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": REGION,
                "dynamodb": data,
            }
            shard.records.append(record)
            shard.written_at.append(now)
            return sequence

    def close(self, shard_id: str) -> None:
        """Close the shard: it gets an `EndingSequenceNumber`; reading it to its end yields no next iterator."""
        with self.lock:
            shard = self._shard(shard_id)
            if shard.ending is None:
                shard.ending = shard.records[-1]["dynamodb"]["SequenceNumber"] if shard.records else shard.starting

    def split(self, shard_id: str, children: int = 2) -> list[str]:
        """Close the shard and open `children` new shards whose `ParentShardId` is it; they share its hash range."""
        with self.lock:
            self.close(shard_id)
            stream = next(s for s in self.streams_by_arn.values() if shard_id in s.shards)
            parent = stream.shards[shard_id]
            step = (parent.high - parent.low) // children
            bounds = [parent.low + i * step for i in range(children)] + [parent.high]
            return [self._new_shard(stream, shard_id, bounds[i], bounds[i + 1]) for i in range(children)]

    def expire_iterators(self) -> None:
        """Every iterator handed out so far expires (as after 15 minutes)."""
        with self.lock:
            self.epoch += 1

    def trim(self, table_or_arn: str, before: str) -> None:
        """Remove records with a sequence number below `before`; closed shards left empty vanish from the listing."""
        with self.lock:
            stream = self.streams_by_arn.get(table_or_arn) or self.stream_of(table_or_arn)
            for shard in stream.shards.values():
                shard.trimmed = sum(1 for r in shard.records if int(r["dynamodb"]["SequenceNumber"]) < int(before))
                if shard.ending is not None and int(shard.ending) < int(before):
                    shard.listed = False

    def trim_older_than(self, table: str, seconds: float) -> None:
        """Retention: trim the records of the table's current stream written more than `seconds` ago (by
        `wall_clock`) - with `trim`'s effects, at the first record still young enough."""
        with self.lock:
            cutoff = (self.wall_clock or time.time)() - seconds
            kept = [
                int(record["dynamodb"]["SequenceNumber"])
                for shard in self.stream_of(table).shards.values()
                for record, at in zip(shard.records, shard.written_at, strict=True)
                if at >= cutoff
            ]
            self.trim(table, str(min(kept)) if kept else self._sequence())

    def items_of(self, table: str) -> dict[str, dict]:
        """The table's items now (wire JSON, copies), by partition key value."""
        with self.lock:
            name = self.tables[table].key_names[0]
            return {item[name]["S"]: copy.deepcopy(item) for item in self.tables[table].items.values()}

    def fail_next(self, operation: str, code: str, times: int = 1, shard_id: str | None = None) -> None:
        """The next `times` calls of `operation` (on `shard_id`, if given) fail with `code` (5xx for server codes)."""
        status = 500 if code in ("InternalServerError", "ServiceUnavailable") else 400
        with self.lock:
            self.faults.append([operation, shard_id, code, status, times])

    def answer_next(self, operation: str, change, times: float = 1, shard_id: str | None = None) -> None:
        """The next `times` answers of `operation` (on `shard_id`, if given) are `change(answer)` instead of the
        answer (a dict) the fake would give; `change` may also block, to stall the call."""
        with self.lock:
            self.answers.append([operation, shard_id, change, times])

    def new_stream(self, table: str) -> str:
        """Disable the table's stream (its open shards close; it stays readable) and enable a new one."""
        with self.lock:
            self._disable(table)
            return self._enable_stream(table)

    def disable_stream(self, table: str) -> None:
        with self.lock:
            self._disable(table)
            self.tables[table].stream_enabled = False

    def _disable(self, table: str) -> None:
        stream = self.stream_of(table)
        for shard_id in list(stream.shards):
            self.close(shard_id)
        stream.status = "DISABLED"

    def drop_stream(self, arn: str) -> None:
        """The stream no longer exists (disabled more than 24 h ago): every call on it is ResourceNotFound."""
        with self.lock:
            self.streams_by_arn[arn].exists = False

    def delete_table(self, table: str) -> None:
        """Delete the table; its stream is disabled and stays readable until `drop_stream`."""
        with self.lock:
            self._disable(table)
            del self.tables[table]

    def records_of(self, table: str) -> list[dict]:
        """Every record ever written to any stream of the table."""
        with self.lock:
            return [
                r
                for s in self.streams_by_arn.values()
                if s.table == table
                for sh in s.shards.values()
                for r in sh.records
            ]

    def get_records_calls(self, shard_id: str | None = None) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.operation == "GetRecords" and shard_id in (None, c.shard_id)]

    def scan_calls(self, table: str | None = None) -> list[Call]:
        """The Scan calls answered or refused so far (of `table`, if given)."""
        with self.lock:
            return [c for c in self.calls if c.operation == "Scan" and table in (None, c.args.get("TableName"))]

    # -- helpers of the clients --------------------------------------------------------------------

    def _shard(self, shard_id: str) -> FakeShard:
        for stream in self.streams_by_arn.values():
            if shard_id in stream.shards:
                return stream.shards[shard_id]
        raise KeyError(shard_id)

    def _check_fault(self, operation: str, shard_id: str | None, args: dict) -> None:
        for fault in self.faults:
            if fault[0] == operation and fault[1] in (None, shard_id) and fault[4] > 0:
                fault[4] -= 1
                self.calls.append(Call(operation, self.clock(), shard_id, args, error=fault[2]))
                raise client_error(fault[2], f"scripted {fault[2]}", operation, fault[3])

    def _answer(self, operation: str, shard_id: str | None, answer: dict):
        """`answer`, or what an `answer_next` makes of it (called without the lock held, so it may block)."""
        with self.lock:
            change = None
            for scripted in self.answers:
                if scripted[0] == operation and scripted[1] in (None, shard_id) and scripted[3] > 0:
                    scripted[3] -= 1
                    change = scripted[2]
                    break
        return answer if change is None else change(answer)

    def _stream(self, arn: str, operation: str) -> FakeStream:
        stream = self.streams_by_arn.get(arn)
        if stream is None or not stream.exists:
            raise client_error("ResourceNotFoundException", f"Requested resource not found: Stream: {arn}", operation)
        return stream


def _item_slot(keys: dict) -> tuple[int, bytes]:
    """Where an item with these key attributes (wire JSON) sits in a table's scan order: its key's hash, then
    its key (the same key always lands in the same place, whatever else the item holds)."""
    text = orjson.dumps(keys, option=orjson.OPT_SORT_KEYS)
    return zlib.crc32(text), text


def _item_size(item: dict) -> int:
    """About DynamoDB's item size: attribute names plus values, in bytes."""
    return sum(len(name.encode()) + len(orjson.dumps(value)) for name, value in item.items())


class _Events:
    """botocore's `client.meta.events`, as far as a client's users register handlers on it."""

    def __init__(self) -> None:
        self.handlers: dict[object, tuple[str, Callable]] = {}
        self.lock = threading.Lock()

    def register(self, event_name: str, handler: Callable, unique_id: object = None, **_: object) -> None:
        """Register `handler` for `event_name` (and the events below it); once per `unique_id`, as in botocore."""
        with self.lock:
            self.handlers.setdefault(unique_id if unique_id is not None else object(), (event_name, handler))

    def emit(self, event_name: str, **kwargs: object) -> None:
        with self.lock:
            handlers = list(self.handlers.values())
        for name, handler in handlers:
            if event_name == name or event_name.startswith(name + "."):
                handler(event_name=event_name, **kwargs)


class FakeStreamsClient:
    """The `dynamodbstreams` client: `describe_stream`, `get_shard_iterator`, `get_records`."""

    def __init__(self, aws: FakeAWS) -> None:
        self.aws = aws
        self.meta = SimpleNamespace(endpoint_url="https://streams.dynamodb.fake", region_name=REGION)

    def describe_stream(self, StreamArn: str, Limit: int | None = None, ExclusiveStartShardId: str | None = None):
        aws = self.aws
        with aws.lock:
            args = {"StreamArn": StreamArn, "ExclusiveStartShardId": ExclusiveStartShardId}
            aws._check_fault("DescribeStream", None, args)
            aws.calls.append(Call("DescribeStream", aws.clock(), args=args))
            stream = aws._stream(StreamArn, "DescribeStream")
            shards = [s for s in stream.shards.values() if s.listed]
            if ExclusiveStartShardId is not None:
                ids = [s.shard_id for s in shards]
                shards = shards[ids.index(ExclusiveStartShardId) + 1 :] if ExclusiveStartShardId in ids else shards
            page = shards[: min(Limit or 100, aws.page_size)]
            description = {
                "StreamArn": StreamArn,
                "StreamLabel": StreamArn.rsplit("/", 1)[1],
                "StreamStatus": stream.status,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
                "TableName": stream.table,
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "Shards": [s.description() for s in page],
            }
            if len(page) < len(shards):
                description["LastEvaluatedShardId"] = page[-1].shard_id
        return aws._answer("DescribeStream", None, {"StreamDescription": description})

    def get_shard_iterator(self, StreamArn: str, ShardId: str, ShardIteratorType: str, SequenceNumber: str = ""):
        aws = self.aws
        op = "GetShardIterator"
        with aws.lock:
            args = {"ShardIteratorType": ShardIteratorType, "SequenceNumber": SequenceNumber}
            aws._check_fault(op, ShardId, args)
            aws.calls.append(Call(op, aws.clock(), ShardId, args))
            stream = aws._stream(StreamArn, op)
            shard = stream.shards.get(ShardId)
            if shard is None or not shard.listed:
                raise client_error("ResourceNotFoundException", f"Requested resource not found: Shard: {ShardId}", op)
            numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in shard.records]
            if ShardIteratorType == "TRIM_HORIZON":
                index = shard.trimmed
            elif ShardIteratorType == "LATEST":
                index = len(shard.records)
            elif ShardIteratorType in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
                wanted = int(SequenceNumber)
                if wanted not in numbers and wanted != int(shard.starting):
                    raise client_error("ValidationException", f"Invalid SequenceNumber {SequenceNumber}", op)
                index = numbers.index(wanted) if wanted in numbers else 0
                if ShardIteratorType == "AFTER_SEQUENCE_NUMBER" and wanted in numbers:
                    index += 1
                if index < shard.trimmed:
                    raise client_error("TrimmedDataAccessException", "Sequence number is beyond the trim horizon", op)
            else:
                raise client_error("ValidationException", f"bad ShardIteratorType {ShardIteratorType}", op)
            token = f"iterator-{next(aws.ids)}"
            aws.iterators[token] = (StreamArn, ShardId, index, aws.epoch)
        return aws._answer(op, ShardId, {"ShardIterator": token})

    def get_records(self, ShardIterator: str, Limit: int = 1000):
        aws = self.aws
        op = "GetRecords"
        with aws.lock:
            if ShardIterator not in aws.iterators:
                raise client_error("ValidationException", "Invalid ShardIterator", op)
            arn, shard_id, index, epoch = aws.iterators[ShardIterator]
            aws._check_fault(op, shard_id, {})
            if not 1 <= Limit <= 1000:
                raise client_error("ValidationException", f"Limit {Limit} not in 1..1000", op)
            if epoch < aws.epoch:
                aws.calls.append(Call(op, aws.clock(), shard_id, error="ExpiredIteratorException"))
                raise client_error("ExpiredIteratorException", "Iterator expired", op)
            stream = aws._stream(arn, op)
            shard = stream.shards[shard_id]
            if not shard.listed:
                raise client_error("ResourceNotFoundException", f"Requested resource not found: Shard: {shard_id}", op)
            if index < shard.trimmed:
                aws.calls.append(Call(op, aws.clock(), shard_id, error="TrimmedDataAccessException"))
                raise client_error("TrimmedDataAccessException", "Iterator points before the trim horizon", op)
            records = shard.records[index : index + Limit]
            aws.calls.append(Call(op, aws.clock(), shard_id, records=len(records)))
            end = index + len(records)
            response: dict = {"Records": records}
            if shard.ending is None or end < len(shard.records):
                token = f"iterator-{next(aws.ids)}"
                aws.iterators[token] = (arn, shard_id, end, aws.epoch)
                response["NextShardIterator"] = token
        return aws._answer(op, shard_id, response)


class FakeDynamoDBClient:
    """The `dynamodb` client: `describe_table`, `list_tables` (one page), `scan`; `meta.events` takes botocore
    event handlers."""

    def __init__(self, aws: FakeAWS) -> None:
        self.aws = aws
        self.meta = SimpleNamespace(endpoint_url="https://dynamodb.fake", region_name=REGION, events=_Events())

    def list_tables(self, **args):
        aws = self.aws
        with aws.lock:
            aws._check_fault("ListTables", None, args)
            aws.calls.append(Call("ListTables", aws.clock(), args=args))
            names = sorted(aws.tables)
        return aws._answer("ListTables", None, {"TableNames": names})

    def describe_table(self, TableName: str):
        aws = self.aws
        with aws.lock:
            aws._check_fault("DescribeTable", None, {"TableName": TableName})
            aws.calls.append(Call("DescribeTable", aws.clock(), args={"TableName": TableName}))
            table = aws.tables.get(TableName)
            if table is None:
                raise client_error(
                    "ResourceNotFoundException",
                    f"Requested resource not found: Table: {TableName} not found",
                    "DescribeTable",
                )
            description = {
                "TableName": TableName,
                "TableArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TableName}",
                "TableStatus": "ACTIVE",
                "KeySchema": [
                    {"AttributeName": name, "KeyType": "HASH" if i == 0 else "RANGE"}
                    for i, name in enumerate(table.key_names)
                ],
                "LatestStreamArn": table.stream_arn,
                "LatestStreamLabel": table.stream_arn.rsplit("/", 1)[1],
                "ItemCount": len(table.items),
            }
            if table.stream_enabled:
                description["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        return aws._answer("DescribeTable", None, {"Table": description})

    def scan(
        self,
        TableName: str,
        Segment: int | None = None,
        TotalSegments: int | None = None,
        ConsistentRead: bool = False,
        ReturnConsumedCapacity: str = "NONE",
        ExclusiveStartKey: dict | None = None,
        Limit: int | None = None,
    ):
        aws = self.aws
        op = "Scan"
        args = {
            "TableName": TableName,
            "Segment": Segment,
            "TotalSegments": TotalSegments,
            "ConsistentRead": ConsistentRead,
            "ExclusiveStartKey": ExclusiveStartKey,
            "Limit": Limit,
        }
        with aws.lock:
            aws._check_fault(op, None, args)
            table = aws.tables.get(TableName)
            if table is None:
                raise client_error("ResourceNotFoundException", "Requested resource not found", op)
            segment, total = _segment_of(Segment, TotalSegments)
            if Limit is not None and Limit < 1:
                raise client_error("ValidationException", "Limit must be at least 1", op)
            after = None if ExclusiveStartKey is None else _start_slot(table, ExclusiveStartKey, segment, total)
            low, high = _hash_range(segment, total)
            slots = sorted(s for s in table.items if low <= s[0] < high and (after is None or s > after))
            cap = min(Limit or aws.scan_page_items, aws.scan_page_items)
            page = [copy.deepcopy(table.items[s]) for s in slots[:cap]]
            aws.calls.append(Call(op, aws.clock(), args=args, records=len(page)))
            answer: dict = {"Items": page, "Count": len(page), "ScannedCount": len(page)}
            if len(page) == cap:  # cut by the limit: maybe more, maybe not (AWS says the same)
                answer["LastEvaluatedKey"] = {name: page[-1][name] for name in table.key_names if name in page[-1]}
            if ReturnConsumedCapacity in ("TOTAL", "INDEXES"):
                units = max(1, math.ceil(sum(map(_item_size, page)) / 4096)) * (1 if ConsistentRead else 0.5)
                answer["ConsumedCapacity"] = {"TableName": TableName, "CapacityUnits": units}
                if ReturnConsumedCapacity == "INDEXES":
                    answer["ConsumedCapacity"]["Table"] = {"CapacityUnits": units}
        answer = aws._answer(op, None, answer)
        return self._parsed(op, answer if isinstance(answer, bytes) else orjson.dumps(answer))

    def _parsed(self, operation: str, body: bytes) -> dict:
        """What botocore returns for a 200 `body`: the `before-parse` handlers see it first, then what they
        leave of the body is parsed (as plain JSON here) and what they hand back is merged over it."""
        response = {"status_code": 200, "headers": {}, "body": body}
        customized: dict = {}
        self.meta.events.emit(
            f"before-parse.dynamodb.{operation}",
            operation_model=None,
            response_dict=response,
            customized_response_dict=customized,
        )
        parsed = orjson.loads(response["body"])
        parsed.update(customized)
        parsed["ResponseMetadata"] = {"HTTPStatusCode": 200}
        return parsed


def _segment_of(segment: int | None, total: int | None) -> tuple[int, int]:
    """The segment and the number of segments of a Scan request (0 of 1 for a sequential Scan)."""
    if segment is None and total is None:
        return 0, 1
    if segment is None or total is None:
        raise client_error("ValidationException", "Segment and TotalSegments go together", "Scan")
    if not 1 <= total <= 1_000_000 or not 0 <= segment < total:
        raise client_error("ValidationException", f"Segment {segment} of TotalSegments {total} is invalid", "Scan")
    return segment, total


def _hash_range(segment: int, total: int) -> tuple[int, int]:
    """The key hashes segment `segment` of `total` holds: [low, high)."""
    return segment * 2**32 // total, (segment + 1) * 2**32 // total


def _start_slot(table: FakeTable, key: object, segment: int, total: int) -> tuple[int, bytes]:
    """The scan position of an `ExclusiveStartKey` (request form: S and N as text); ValidationException unless it
    is exactly the table's key, in the requested segment."""
    names = tuple(name for name in table.key_names if type(key) is dict and name in key)
    if type(key) is not dict or set(key) != set(names) or table.key_names[0] not in names:
        raise client_error("ValidationException", "The provided starting key is invalid", "Scan")
    if not all(type(value) is dict and len(value) == 1 and "S" in value for value in key.values()):
        raise client_error("ValidationException", "The provided key element does not match the schema", "Scan")
    slot = _item_slot(key)
    low, high = _hash_range(segment, total)
    if not low <= slot[0] < high:
        raise client_error(
            "ValidationException",
            "The provided Exclusive start key does not map to the provided Segment and TotalSegments values.",
            "Scan",
        )
    return slot
