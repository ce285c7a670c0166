"""Reads the streams of all configured tables: discovery, lineage, scheduling of `GetRecords` calls.

One dispatcher thread lists shards and schedules calls; a bounded pool of workers makes them, at most one
call per shard at a time and at most 5 per second per shard, so records of a shard stay in order. A shard
that returned records is read again at once, an empty one after the poll interval (or just after the moment
a snapshot's held page waits for, when that comes first or too soon after: `wake_at`), a throttled one after
an exponential backoff with full jitter; none of them holds a worker while it waits. Batches go into a
bounded queue that the pipeline drains: when it is full, workers wait (backpressure). A shard's children
are scheduled only after the pipeline reports the parent done (`shard_done`), so every parent record is
handed on before any child record. When a table gets a new stream, the old one is read to its end first.

Threads and the lock. `self.lock` (a Condition) guards the schedule and the read state: `heap`, `wakes`,
`shards`, each `_Shard`'s `busy`/`dead`/`due`, and every `TableStream` with its `ShardTree`. A shard waiting
for its next call has one live entry in `heap`, the one whose time is its `due`; an entry left behind when
`wake_at` brought the call forward is skipped. The dispatcher holds the lock while it starts ready shards,
pops due calls and waits for the next one (`notify` wakes it early); it lists shards (`DescribeStream`) and
re-describes tables without it, then applies the listing under it. A worker makes its call without it - a
shard is `busy` from the moment its call is queued until the worker has handed the batch on and rescheduled
it under the lock, so no two calls of one shard overlap and its batches are queued in order. `ShardReader`s
are touched only by the one worker calling their shard. The pipeline thread takes the lock in `get`,
`shard_done`, `caught_up`, `readiness`, `watermark` and `wake_at`. Errors of any thread go into `batches`
and are raised by `get` in the pipeline thread.

Watermarks (for a snapshot's handoff, bridge/source/snapshot.py). Each shard knows how far the pipeline has
taken it, in this host's wall-clock ms: the creation time of the last record of a batch `get` handed on, or
the start of a call that found nothing more once every batch before it was taken (`queued` counts the
shard's batches not taken yet; a tip seen meanwhile waits in `tip_ms`). A table's watermark is the lowest of
its unfinished shards: every record written before it (give or take the handoff margin) was handed on.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bridge.backoff import full_jitter
from bridge.checkpoint import CheckpointTracker, ShardKey
from bridge.errors import FatalError, PoisonRecordError, RetriableError
from bridge.normalize import creation_ms
from bridge.ops import metrics
from bridge.source.aws_errors import MalformedAnswer, ResourceGone, malformed_streak
from bridge.source.discovery import TableInfo, describe_table, list_shards
from bridge.source.reader import ShardReader
from bridge.source.table_stream import TableStream

log = logging.getLogger(__name__)
MIN_CALL_INTERVAL = 0.2  # AWS allows 5 GetRecords calls per second per shard
WAKE_AFTER = 0.002  # s after a held page's deadline that the call woken for it starts (it counts from its start)
BACKOFF_BASE, BACKOFF_CAP = 0.1, 20.0


def backoff_delay(failures: int, uniform: Callable[[float, float], float] = random.uniform) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2 ** failures)]."""
    return full_jitter(failures, BACKOFF_BASE, BACKOFF_CAP, uniform=uniform)


@dataclass(frozen=True)
class ShardBatch:
    """Records of one `GetRecords` call, in stream order; `ended` means the shard has no more.
    `watermark_ms`: the creation time of its last record (epoch ms), where known."""

    table: TableInfo
    shard_id: str
    records: list[dict]
    ended: bool
    watermark_ms: float = -math.inf
    superseded_before_ms: float = -math.inf  # records created before are carried by the table's snapshot


@dataclass
class _Shard:
    table: TableInfo
    stream: TableStream  # whose listing says whether the shard is closed
    reader: ShardReader
    busy: bool = False
    dead: bool = False
    failures: int = 0
    last_call: float = float("-inf")  # when its latest call ended (`clock`)
    called: float = float("-inf")  # when its latest call started (`clock`)
    due: float = math.inf  # when its next call is scheduled (`clock`); inf while its call is queued or made
    queued: int = 0  # batches of the shard put but not taken by `get` yet
    handed_ms: float = -math.inf  # the shard's watermark: how far the pipeline has taken it (epoch ms)
    tip_ms: float = -math.inf  # a call that found nothing more, started then; counts once `queued` is 0
    superseded_before_ms: float = -math.inf  # see `ShardBatch`


class StreamSource:
    """All shards of all tables, read concurrently, handed on in order per shard and parents first."""

    def __init__(
        self,
        tables: Sequence,
        dynamodb,
        streams,
        ledger: CheckpointTracker,
        *,
        poll_interval: float = 0.25,
        discovery_interval: float = 10.0,
        max_workers: int = 8,
        records_per_call: int = 1000,
        queue_batches: int = 6,  # pages waiting for the pipeline: what bounds the memory of a backlog
        clock: Callable[[], float] = time.monotonic,  # what calls, polls, backoffs and listings are scheduled by
        wall_clock: Callable[[], float] = time.time,  # what watermarks are measured in (epoch seconds)
        snapshot_starts: dict[str, int | None] | None = None,  # by table: see `TableStream.snapshot_started_ms`
        found: Sequence[str] = (),  # tables found by `discover`: see `TableStream`
    ) -> None:
        self.found = frozenset(found)
        self.table_configs = tables
        self.dynamodb = dynamodb
        self.streams_client = streams
        self.ledger = ledger  # where shards resume (as loaded at start), and where shards to forget go
        self.poll_interval = poll_interval
        self.discovery_interval = discovery_interval
        self.records_per_call = records_per_call
        self.clock = clock
        self.wall_clock = wall_clock
        self.snapshot_starts = snapshot_starts or {}
        self.batches: queue.Queue = queue.Queue(maxsize=queue_batches)
        self.work: queue.SimpleQueue = queue.SimpleQueue()  # shards due for a call; None stops a worker
        # Daemon threads: a call stalled on the network must not hold the process past its stop deadline.
        self.workers = [
            threading.Thread(target=self._work, name=f"shard-reader-{i}", daemon=True) for i in range(max_workers)
        ]
        self.lock = threading.Condition()
        self.heap: list = []
        self.wakes: dict[str, tuple[float, float]] = {}  # by table: the latest `wake_at` (epoch ms, `clock` s)
        self.counter = itertools.count()
        self.shards: dict[ShardKey, _Shard] = {}
        self.tables: list[TableStream] = []
        self.stopping = threading.Event()
        self.dispatcher = threading.Thread(target=self._dispatch, name="shard-dispatcher", daemon=True)

    def start(self, cancel: threading.Event | None = None) -> list[TableInfo]:
        """Describe every table and start reading; returns what was learned about the tables.

        While DynamoDB is throttling, failing or answering nonsense, each table is described again after a
        backoff, until `cancel` is set (then `FatalError`). A table whose checkpoint names older streams of
        it reads those first (to their end), then the latest.
        """
        cancel = cancel or threading.Event()
        infos = []
        for config in self.table_configs:
            info = self._describe(config.name, cancel)
            started = self.snapshot_starts.get(config.name)
            found = config.name in self.found
            self.tables.append(TableStream(config, info, self.ledger.acked, started, found))
            infos.append(info)
            log.info("table %s: stream %s, key %s", info.name, info.stream_arn, ", ".join(info.key_names))
        for worker in self.workers:
            worker.start()
        self.dispatcher.start()
        return infos

    def _describe(self, name: str, cancel: threading.Event) -> TableInfo:
        failures = malformed = 0
        while True:
            try:
                return describe_table(self.dynamodb, name)
            except RetriableError as error:
                failures += 1
                malformed = malformed_streak(malformed, error)
                delay = max(self.poll_interval, backoff_delay(failures))
                log.warning("%s; describing it again in %.2f s (attempt %d)", error, delay, failures)
                if cancel.wait(delay):
                    raise FatalError(f"stopped before table {name} could be described: {error}") from None

    def get(self, timeout: float) -> ShardBatch | None:
        """The next batch, or None after `timeout` seconds. Re-raises a reader's fatal error."""
        try:
            item = self.batches.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise item
        with self.lock:
            shard = self.shards.get((item.table.stream_arn, item.shard_id))
            if shard is not None:
                shard.queued -= 1
                shard.handed_ms = max(shard.handed_ms, item.watermark_ms)
                if not shard.queued:
                    shard.handed_ms = max(shard.handed_ms, shard.tip_ms)
        return item

    def resnapshots(self) -> list[str]:
        """Tables that lost records since the last call and repair them with a new snapshot (`resnapshot`)."""
        with self.lock:
            names = [table.name for table in self.tables if table.resnapshot]
            for table in self.tables:
                table.resnapshot = False
        return names

    def quiet_shards(self) -> dict[ShardKey, float]:
        """Shards read with no record yet, and when the pipeline last had everything of them (epoch ms)."""
        with self.lock:
            return {
                key: shard.handed_ms
                for key, shard in self.shards.items()
                if shard.reader.last_sequence is None and shard.handed_ms > -math.inf
            }

    def watermark(self, table: str) -> float:
        """How far the stream of `table` was handed on (epoch ms): every unfinished shard handed on a record
        created after it, or found nothing more in a call started after it. -inf while a shard has not been
        read yet or the table is changing streams; inf when the stream has no unfinished shard."""
        with self.lock:
            stream = next(t for t in self.tables if t.name == table)
            if not stream.discovered or stream.later or stream.tree.ready():
                return -math.inf
            lowest = math.inf
            for shard_id in stream.tree.unfinished():
                shard = self.shards.get((stream.info.stream_arn, shard_id))
                if shard is None:
                    return -math.inf
                lowest = min(lowest, shard.handed_ms)
            return lowest

    def wake_at(self, table: str, epoch_ms: float) -> None:
        """A snapshot holds a page of `table` until its watermark passes `epoch_ms`: each caught-up shard of the
        table not called since makes its first call after that moment just after it, not up to a poll interval
        later. A call due later is brought forward; one due less than `MIN_CALL_INTERVAL` before it is put off
        until then, as it would keep the call after it waiting. The limit of 5 calls/s per shard holds and a
        throttled shard keeps its backoff: at most one call per shard and deadline is added, and a deadline not
        after the latest one asked changes nothing."""
        with self.lock:
            latest = self.wakes.get(table)
            if latest is not None and epoch_ms <= latest[0]:
                return
            self.wakes[table] = (epoch_ms, self.clock() + epoch_ms / 1000 - self.wall_clock() + WAKE_AFTER)
            for shard in self.shards.values():
                if shard.stream.name != table or shard.busy or shard.dead or shard.failures:
                    continue
                if shard.reader.caught_up and (due := self._woken(shard, shard.due)) != shard.due:
                    self._due(shard, due)

    def shard_done(self, batch: ShardBatch) -> None:
        """The pipeline handed on the last batch of a shard: let its children start (after a new listing)."""
        with self.lock:
            table = next(t for t in self.tables if t.info.stream_arn == batch.table.stream_arn)
            table.tree.finish(batch.shard_id)
            table.wanted += 1
            table.next_discovery = 0.0
            log.info("shard %s of %s finished", batch.shard_id, batch.table.name)
            self.lock.notify()

    def readiness(self) -> list[str]:
        """What keeps the source from reading now: tables whose shards are not listed yet, tables whose last
        GetRecords call failed (throttling aside)."""
        with self.lock:
            problems = [f"source: shards of table {t.name} not listed yet" for t in self.tables if not t.discovered]
        return problems + metrics.source_problems()

    def caught_up(self) -> bool:
        """Every shard known so far was read to its end at some moment of this run, and every batch read
        before that moment was taken (call only when `get` returned None). Each shard counts on its own: with
        many busy shards, all of them are rarely idle at one instant."""
        with self.lock:
            for table in self.tables:
                if not table.caught_up() or table.tree.ready():
                    return False
                for shard_id in table.tree.unfinished():
                    shard = self.shards.get((table.info.stream_arn, shard_id))
                    if shard is None or not shard.reader.reached_tip:
                        return False
            return self.batches.empty()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop scheduling calls and wait up to `timeout` s for calls in flight; their batches are dropped."""
        self.stopping.set()
        with self.lock:
            self.lock.notify()
        while True:
            try:
                self.batches.get_nowait()
            except queue.Empty:
                break
        started = [worker for worker in self.workers if worker.is_alive()]
        for _ in started:
            self.work.put(None)
        deadline = time.monotonic() + timeout  # real time, not `clock`: it bounds how long threads are joined
        for worker in started:
            worker.join(max(0.0, deadline - time.monotonic()))
        stalled = sum(worker.is_alive() for worker in started)
        if stalled:
            log.warning(
                "stopping with %d GetRecords call(s) still unanswered; nothing they return is handed on "
                "(the checkpoint is before it, the next run reads it again)",
                stalled,
            )

    # -- dispatcher thread -------------------------------------------------------------------------

    def _dispatch(self) -> None:
        try:
            while not self.stopping.is_set():
                for table in self.tables:
                    if self.clock() >= table.next_discovery:
                        self._discover(table)
                with self.lock:
                    self._start_ready_shards()
                    now = self.clock()
                    while self.heap and self.heap[0][0] <= now:
                        due, _, shard = heapq.heappop(self.heap)
                        if not shard.dead and due == shard.due:  # not an entry left behind by `wake_at`
                            shard.busy = True
                            shard.due = math.inf
                            self.work.put(shard)
                    wait = self.heap[0][0] - now if self.heap else self.poll_interval
                    self.lock.wait(timeout=min(max(wait, 0.0), self.poll_interval))
        except BaseException as error:  # surfaced to the pipeline thread
            self._fail(error)

    def _discover(self, table: TableStream) -> None:
        wanted = table.wanted
        try:
            listing = list_shards(self.streams_client, table.info.stream_arn)
        except RetriableError as error:
            table.failures += 1
            table.malformed = malformed_streak(table.malformed, error)
            table.next_discovery = self.clock() + max(self.poll_interval, backoff_delay(table.failures))
            log.warning("%s; will list again", error)
            return
        except ResourceGone:
            self._stream_gone(table)
            return
        table.failures = table.malformed = 0
        with self.lock:
            self.ledger.forget(table.apply_listing(listing, wanted))
            for shard_id in sorted(table.lost - set(table.tree.parents)):
                self._shard_trimmed_away(table, shard_id)
            table.lost.clear()
            table.next_discovery = self.clock() + self.discovery_interval
            self.lock.notify()
        if table.disabled or table.later:
            try:
                table.check_table(self.dynamodb)
            except RetriableError as error:
                log.warning("%s; will try again", error)
                return
            with self.lock:
                if table.tree.drained() and not self._busy(table):
                    table.drained()

    def _busy(self, table: TableStream) -> bool:
        return any(s.busy for (arn, _), s in self.shards.items() if arn == table.info.stream_arn)

    def _stream_gone(self, table: TableStream) -> None:
        """`DescribeStream` says the stream no longer exists (deleted table, or disabled more than 24 h ago)."""
        arn = table.info.stream_arn
        try:
            table.check_table(self.dynamodb)
        except RetriableError as error:
            log.warning("%s; will try again", error)
            table.next_discovery = self.clock() + self.poll_interval
            return
        with self.lock:
            for key, shard in self.shards.items():
                if key[0] == arn:
                    shard.dead = True
            forget = table.stream_gone()
            if forget is None:
                log.warning("stream %s of table %s is not found; will list it again", arn, table.name)
                table.next_discovery = self.clock() + self.discovery_interval
                return
            self.ledger.forget(forget)

    def _shard_trimmed_away(self, table: TableStream, shard_id: str) -> None:
        shard = self.shards.get((table.info.stream_arn, shard_id))
        if shard is None or shard_id in table.tree.finished:
            return
        table.lose(
            f"shard {shard_id} of {table.info.stream_arn} was trimmed away (ResourceNotFoundException) before "
            f"it was read to its end; records after {shard.reader.last_sequence or 'its start'} are lost"
        )
        shard.dead = True
        table.tree.finish(shard_id)

    def _start_ready_shards(self) -> None:
        for table in self.tables:
            for shard_id in table.tree.ready():
                table.tree.start(shard_id)
                key = (table.info.stream_arn, shard_id)
                start, sequence = table.start_of(shard_id)
                reader = ShardReader(
                    self.streams_client, table.info.stream_arn, shard_id, start, sequence, table.on_trimmed
                )
                self.shards[key] = shard = _Shard(table.info, table, reader)
                shard.superseded_before_ms = table.superseded_for(shard_id)
                log.info("shard %s of %s started at %s %s", shard_id, table.name, start, sequence or "")
                metrics.shard_started(table.name, table.info.stream_arn, shard_id)
                self._schedule(shard, 0.0)

    def _schedule(self, shard: _Shard, delay: float) -> None:
        due = max(self.clock() + delay, shard.last_call + MIN_CALL_INTERVAL)
        self._due(shard, self._woken(shard, due) if shard.reader.caught_up and not shard.failures else due)

    def _due(self, shard: _Shard, due: float) -> None:
        shard.due = due
        heapq.heappush(self.heap, (due, next(self.counter), shard))
        self.lock.notify()

    def _woken(self, shard: _Shard, due: float) -> float:
        """When a caught-up shard's next call, due at `due`, is made: just after the deadline of its table's
        latest `wake_at` when its latest call started before that deadline and `due` is later than the deadline
        less `MIN_CALL_INTERVAL` (a call then would keep the one after the deadline waiting); else at `due`."""
        wake = self.wakes.get(shard.stream.name)
        if wake is None or shard.called >= wake[1] or due <= wake[1] - MIN_CALL_INTERVAL:
            return due
        return max(wake[1], shard.last_call + MIN_CALL_INTERVAL)

    # -- worker threads ----------------------------------------------------------------------------

    def _work(self) -> None:
        while not self.stopping.is_set():
            shard = self.work.get()
            if shard is None:
                return
            try:
                self._fetch(shard)
            except BaseException as error:  # a worker that fails surfaces it: the pipeline stops with it
                self._fail(error)
                return

    def _fetch(self, shard: _Shard) -> None:
        shard.called, called_ms = self.clock(), self.wall_clock() * 1000
        try:
            records, ended = shard.reader.fetch(self.records_per_call)
        except (RetriableError, ResourceGone) as error:
            self._retry_later(shard, error)
            return
        shard.last_call = self.clock()  # the next call waits from the end of this one: AWS counts arrivals
        metrics.records_read(shard.table.name, shard.table.stream_arn, shard.reader.shard_id, records)
        unconfirmed = ended and not self._closed(shard)
        ended = ended and not unconfirmed
        with self.lock:
            if shard.reader.trimmed:  # logged by the reader
                shard.reader.trimmed = False
                shard.stream.repair_gap()
            if records or ended:
                shard.queued += 1
            if shard.reader.caught_up:
                if shard.queued:
                    shard.tip_ms = max(shard.tip_ms, called_ms)
                else:
                    shard.handed_ms = max(shard.handed_ms, called_ms)
        if records or ended:
            created = _created_ms(records)
            self._put(
                ShardBatch(shard.table, shard.reader.shard_id, records, ended, created, shard.superseded_before_ms)
            )
        if unconfirmed:
            shard.reader.end_unconfirmed()
            self._retry_later(
                shard,
                MalformedAnswer(
                    f"shard {shard.reader.shard_id} of {shard.table.stream_arn}: GetRecords gave no next iterator, "
                    "but DescribeStream does not list the shard as closed; listing it again and reading on"
                ),
            )
            return
        shard.failures = 0
        with self.lock:
            shard.busy = False
            if ended:
                self.shards.pop((shard.table.stream_arn, shard.reader.shard_id), None)
            else:
                self._schedule(shard, self.poll_interval if shard.reader.caught_up else 0.0)

    def _retry_later(self, shard: _Shard, error: RetriableError | ResourceGone) -> None:
        metrics.get_records_failed(shard.table.name, error)
        shard.last_call = self.clock()
        shard.failures += 1
        delay = backoff_delay(shard.failures)
        log.warning("%s; retrying in %.2f s", error, delay)
        with self.lock:
            shard.busy = False
            if isinstance(error, ResourceGone):
                self._report_gone(shard)
            self._schedule(shard, delay)

    def _closed(self, shard: _Shard) -> bool:
        """The latest listing of the shard's stream gives it an `EndingSequenceNumber`; if not, ask for a new one."""
        with self.lock:
            if shard.reader.shard_id in shard.stream.tree.closed:
                return True
            shard.stream.next_discovery = 0.0
            self.lock.notify()
            return False

    def _report_gone(self, shard: _Shard) -> None:
        for table in self.tables:
            if table.info.stream_arn == shard.table.stream_arn:
                table.lost.add(shard.reader.shard_id)
                table.next_discovery = 0.0

    def _put(self, item) -> None:
        while not self.stopping.is_set():
            try:
                self.batches.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _fail(self, error: BaseException) -> None:
        self._put(error)


def _created_ms(records: list[dict]) -> float:
    """The creation time (epoch ms) of the last record that has a readable one, -inf when none has."""
    for record in reversed(records):
        data = record.get("dynamodb") if type(record) is dict else None
        created = data.get("ApproximateCreationDateTime") if type(data) is dict else None
        if created is not None:
            try:
                return creation_ms(created)
            except PoisonRecordError:
                continue
    return -math.inf
