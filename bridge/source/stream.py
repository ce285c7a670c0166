"""Reads the streams of all configured tables: discovery, lineage, scheduling of `GetRecords` calls.

One dispatcher thread schedules calls; a bounded pool of workers makes them, at most one call per shard
at a time, so records of a shard stay in order. Batches go into a bounded queue that the pipeline drains:
when it is full, workers wait (backpressure). A shard's children are scheduled only after the pipeline
reports the parent done (`shard_done`), so every parent record is handed on before any child record.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from bridge.checkpoint import ShardCheckpoint
from bridge.errors import ConfigError, RetriableError
from bridge.source.reader import ShardReader, error_code
from bridge.source.shards import ShardTree

log = logging.getLogger(__name__)
MIN_CALL_INTERVAL = 0.2  # AWS allows 5 GetRecords calls per second per shard
BACKOFF_BASE, BACKOFF_CAP = 0.1, 20.0


@dataclass(frozen=True)
class TableInfo:
    """What the bridge learned about a table from `DescribeTable`."""

    name: str
    stream_arn: str
    key_names: tuple[str, ...]
    view_type: str
    region: str


@dataclass(frozen=True)
class ShardBatch:
    """Records of one `GetRecords` call, in stream order; `ended` means the shard has no more."""

    table: TableInfo
    shard_id: str
    records: list[dict]
    ended: bool


@dataclass
class _Shard:
    table: TableInfo
    reader: ShardReader
    busy: bool = False
    failures: int = 0
    last_call: float = 0.0


@dataclass
class _Stream:
    info: TableInfo
    start_position: str
    on_trimmed: str
    tree: ShardTree
    first_start: bool
    discovered: bool = False
    next_discovery: float = 0.0
    closed: set[str] = field(default_factory=set)


def describe_table(dynamodb, name: str) -> TableInfo:
    """The table's latest stream and key schema; `ConfigError` when it is missing or has no stream."""
    try:
        table = dynamodb.describe_table(TableName=name)["Table"]
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            raise ConfigError(f"table {name!r} does not exist at {dynamodb.meta.endpoint_url}") from None
        raise
    stream_arn = table.get("LatestStreamArn")
    enabled = table.get("StreamSpecification", {}).get("StreamEnabled", bool(stream_arn))
    if not stream_arn or not enabled:
        raise ConfigError(f"table {name!r} has no DynamoDB stream enabled; enable one (NEW_AND_OLD_IMAGES)")
    schema = sorted(table["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
    view_type = table.get("StreamSpecification", {}).get("StreamViewType", "")
    region = stream_arn.split(":")[3] if stream_arn.count(":") >= 4 else dynamodb.meta.region_name
    return TableInfo(name, stream_arn, tuple(k["AttributeName"] for k in schema), view_type, region)


class StreamSource:
    """All shards of all tables, read concurrently, handed on in order per shard."""

    def __init__(
        self,
        tables: Sequence,
        dynamodb,
        streams,
        checkpoints: dict[tuple[str, str], ShardCheckpoint],
        *,
        poll_interval: float = 0.25,
        discovery_interval: float = 10.0,
        max_workers: int = 8,
        records_per_call: int = 1000,
        queue_batches: int = 16,
    ) -> None:
        self.table_configs = tables
        self.dynamodb = dynamodb
        self.streams_client = streams
        self.checkpoints = checkpoints
        self.poll_interval = poll_interval
        self.discovery_interval = discovery_interval
        self.records_per_call = records_per_call
        self.batches: queue.Queue = queue.Queue(maxsize=queue_batches)
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="shard-reader")
        self.lock = threading.Condition()
        self.heap: list = []
        self.counter = itertools.count()
        self.shards: dict[tuple[str, str], _Shard] = {}
        self.streams: list[_Stream] = []
        self.stopping = threading.Event()
        self.dispatcher = threading.Thread(target=self._dispatch, name="shard-dispatcher", daemon=True)

    def start(self) -> list[TableInfo]:
        """Describe every table and start reading; returns what was learned about the tables."""
        for config in self.table_configs:
            info = describe_table(self.dynamodb, config.name)
            finished = {s for (arn, s), c in self.checkpoints.items() if arn == info.stream_arn and c.finished}
            first = not any(arn == info.stream_arn for arn, _ in self.checkpoints)
            self.streams.append(_Stream(info, config.start_position, config.on_trimmed, ShardTree(finished), first))
            log.info("table %s: stream %s, key %s", info.name, info.stream_arn, ", ".join(info.key_names))
        for stream in self.streams:
            self._discover(stream)
        self.dispatcher.start()
        return [stream.info for stream in self.streams]

    def get(self, timeout: float) -> ShardBatch | None:
        """The next batch, or None after `timeout` seconds. Re-raises a reader's fatal error."""
        try:
            item = self.batches.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def shard_done(self, batch: ShardBatch) -> None:
        """The pipeline handed on the last batch of a shard: let its children start."""
        with self.lock:
            stream = next(s for s in self.streams if s.info is batch.table)
            stream.tree.finish(batch.shard_id)
            stream.next_discovery = 0.0
            log.info("shard %s of %s finished", batch.shard_id, batch.table.name)
            self.lock.notify()

    def caught_up(self) -> bool:
        """Every shard known so far was read to its current end (call only when `get` returned None)."""
        with self.lock:
            for stream in self.streams:
                if not stream.discovered or stream.tree.ready():
                    return False
                for shard_id in stream.tree.unfinished():
                    shard = self.shards.get((stream.info.stream_arn, shard_id))
                    if shard is None or shard.busy or not shard.reader.caught_up:
                        return False
            return self.batches.empty()

    def stop(self) -> None:
        """Stop scheduling calls; calls in flight finish, their batches are dropped."""
        self.stopping.set()
        with self.lock:
            self.lock.notify()
        while True:
            try:
                self.batches.get_nowait()
            except queue.Empty:
                break
        self.pool.shutdown(wait=True, cancel_futures=True)

    # -- dispatcher thread -------------------------------------------------------------------------

    def _dispatch(self) -> None:
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                for stream in self.streams:
                    if now >= stream.next_discovery:
                        self._discover(stream)
                with self.lock:
                    self._start_ready_shards()
                    while self.heap and self.heap[0][0] <= now:
                        _, _, shard = heapq.heappop(self.heap)
                        shard.busy = True
                        self.pool.submit(self._fetch, shard)
                    wait = self.heap[0][0] - now if self.heap else self.poll_interval
                    self.lock.wait(timeout=min(max(wait, 0.0), self.poll_interval))
        except BaseException as error:  # surfaced to the pipeline thread
            self._fail(error)

    def _discover(self, stream: _Stream) -> None:
        shards, start = [], None
        try:
            while True:
                args = {"StreamArn": stream.info.stream_arn}
                if start:
                    args["ExclusiveStartShardId"] = start
                description = self.streams_client.describe_stream(**args)["StreamDescription"]
                shards.extend(description.get("Shards", []))
                start = description.get("LastEvaluatedShardId")
                if not start:
                    break
        except ClientError as error:
            stream.next_discovery = time.monotonic() + self.poll_interval
            log.warning("describing stream of %s failed, will retry: %s", stream.info.name, error)
            return
        with self.lock:
            if stream.first_start and stream.start_position == "latest":
                for shard in shards:
                    if "EndingSequenceNumber" in shard.get("SequenceNumberRange", {}):
                        stream.tree.finish(shard["ShardId"])
            stream.tree.add(shards)
            stream.discovered = True
            stream.next_discovery = time.monotonic() + self.discovery_interval

    def _start_ready_shards(self) -> None:
        for stream in self.streams:
            for shard_id in stream.tree.ready():
                stream.tree.start(shard_id)
                key = (stream.info.stream_arn, shard_id)
                checkpoint = self.checkpoints.get(key)
                if checkpoint and checkpoint.sequence_number:
                    start, sequence = "AFTER_SEQUENCE_NUMBER", checkpoint.sequence_number
                elif stream.first_start and stream.start_position == "latest":
                    start, sequence = "LATEST", None
                else:
                    start, sequence = "TRIM_HORIZON", None
                reader = ShardReader(
                    self.streams_client, stream.info.stream_arn, shard_id, start, sequence, stream.on_trimmed
                )
                self.shards[key] = shard = _Shard(stream.info, reader)
                log.info("shard %s of %s started at %s %s", shard_id, stream.info.name, start, sequence or "")
                self._schedule(shard, 0.0)

    def _schedule(self, shard: _Shard, delay: float) -> None:
        due = max(time.monotonic() + delay, shard.last_call + MIN_CALL_INTERVAL)
        heapq.heappush(self.heap, (due, next(self.counter), shard))
        self.lock.notify()

    # -- worker threads ----------------------------------------------------------------------------

    def _fetch(self, shard: _Shard) -> None:
        shard.last_call = time.monotonic()
        try:
            records, ended = shard.reader.fetch(self.records_per_call)
        except RetriableError as error:
            shard.failures += 1
            delay = random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**shard.failures))
            log.warning("%s; retrying in %.2f s", error, delay)
            with self.lock:
                shard.busy = False
                self._schedule(shard, delay)
            return
        except BaseException as error:
            self._fail(error)
            return
        shard.failures = 0
        if records or ended:
            self._put(ShardBatch(shard.table, shard.reader.shard_id, records, ended))
        with self.lock:
            shard.busy = False
            if not ended:
                full = len(records) >= self.records_per_call
                self._schedule(shard, 0.0 if full else self.poll_interval)

    def _put(self, item) -> None:
        while not self.stopping.is_set():
            try:
                self.batches.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _fail(self, error: BaseException) -> None:
        self._put(error)
