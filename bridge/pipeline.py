"""Moves batches: source -> the table's route -> every sink -> commit -> checkpoint. It owns the lifecycle.

Steady state: take a batch of one shard (or a Scan page of a table's snapshot, once the stream was read past
it: bridge/source/snapshot.py), run it through its table's route (bridge/route.py: normalize,
filters, pre-encoding, poison policy), write the events to every sink and the dead letters to their
destination; every `checkpoint.interval_s` (or after `MAX_UNFLUSHED_EVENTS` events) flush all sinks and the
dead-letter destinations and only then store the checkpoint. While a flush fails (broker away) nothing more
is read: the flush is retried with backoff and the checkpoint stays where it was, so memory stays bounded and
nothing is lost. Stop (signal, or caught up with `until_caught_up`): stop reading, flush within
`shutdown_timeout_s`, store the checkpoint, close the sinks; if the flush cannot finish in time, the run
fails (exit 1) with the checkpoint still before the unacknowledged records. With `discover`, the set of tables
may change while the bridge runs (bridge/table_set.py): the run then ends as at a stop - everything written is
flushed and checkpointed - and starts again from the checkpoint with the new set, in the same process.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable

from bridge.backoff import full_jitter
from bridge.checkpoint import CheckpointTracker
from bridge.checkpoint_kafka import store_for
from bridge.config import Config
from bridge.errors import ConfigError, FatalError, PoisonRecordError, RejectedEvent, RetriableError
from bridge.normalize import ChangeEvent
from bridge.ops import metrics
from bridge.poison import DeadLetter, DeadLetters, build_dead_letters
from bridge.route import Routed, TableRoute, build_routes
from bridge.sinks import Sink, load_sink
from bridge.sinks.transaction import KafkaTransaction, TransactionAborted
from bridge.snapshots import Snapshots, plan
from bridge.source import ShardBatch, StreamSource
from bridge.source.catalog import TableCatalog
from bridge.source.clients import aws_clients
from bridge.source.scan import TableScan
from bridge.table_set import TableSet

log = logging.getLogger(__name__)
MAX_UNFLUSHED_EVENTS = 20_000  # events written since the last flush before reading pauses for one
FLUSH_ATTEMPT_S = 10.0  # longest single flush attempt before it is logged and retried
QUIET_REFRESH_MS = 60_000  # how often a shard without records has its "nothing more" time stored
TABLES_CHECK_S = 0.25  # how often the loop asks whether the tables `discover` finds changed


class Pipeline:
    """One bridge run over all configured tables.

    `source` replaces the stream reader (anything with `StreamSource`'s methods: `start`, `get`,
    `shard_done`, `caught_up`, `readiness`, `watermark`, `wake_at`, `resnapshots`, `stop`); `sinks` replace the
    configured sinks; `clock` is what the stream reader schedules its calls by. `snapshot` names tables to take a
    new snapshot of (`run --snapshot`); `scans(table, snapshot)` replaces the snapshot's `TableScan`.
    """

    def __init__(
        self,
        config: Config,
        *,
        dynamodb=None,
        streams=None,
        sinks: list[Sink] | None = None,
        source=None,
        clock: Callable[[], float] = time.monotonic,
        snapshot: Iterable[str] = (),
        scans: Callable | None = None,
    ) -> None:
        self.config = config
        self.given_sinks = sinks
        self.given_source = source
        self.dynamodb, self.streams, self.clock = dynamodb, streams, clock
        self.scans = scans
        self.requested = set(snapshot)  # `run --snapshot` tables, until a commit holds their snapshots
        self.stop_requested = threading.Event()
        self.stop_deadline = float("inf")
        self.transaction: KafkaTransaction | None = None  # delivery: exactly_once
        self.table_set: TableSet | None = None  # once the tables were first found
        self.tables_changed = False  # the run ended to start again with the tables found now
        self._build()

    def _build(self) -> None:
        """Everything a run starts from the checkpoint: the transaction, the tracker, the stream source, the
        snapshots, the dead-letter destinations (again after an aborted transaction)."""
        if self.table_set is None:
            self.table_set = self._find_tables()
        config = self.config
        if config.delivery == "exactly_once":  # fence the previous writer before its checkpoint is read
            self.transaction = KafkaTransaction(config.kafka, config.checkpoint.writer_id, config.shutdown_timeout_s)
            self._retrying(self.transaction.open, "Kafka transactions")
        store = store_for(config, self.transaction)
        self.tracker = self._retrying(lambda: CheckpointTracker(store), "the checkpoint store")
        starts = plan(config, self.tracker, self.requested, round(time.time() * 1000))
        source = self.given_source
        if source is None:
            self._aws()
            tables = [
                dataclasses.replace(table, start_position=starts[table.name].position)
                if table.name in starts
                else table
                for table in config.tables
            ]
            source = StreamSource(
                tables,
                self.dynamodb,
                self.streams,
                self.tracker,
                poll_interval=config.source.poll_interval_ms / 1000,
                discovery_interval=config.source.discovery_interval_s,
                max_workers=config.source.max_workers,
                clock=self.clock,
                snapshot_starts={name: start.snapshot_started_ms for name, start in starts.items()},
                found=self.table_set.found,
            )
        self.source = source
        self.snapshots = Snapshots(config, self.tracker, self.scans or self._scan)
        self.only_snapshots = all(table.snapshot == "initial_only" for table in config.tables)
        self.dead_letters: DeadLetters = build_dead_letters(config)
        self.sinks: list[Sink] | None = None  # once every sink is open
        self.routes: dict[str, TableRoute] = {}  # table -> its route, once the tables are described
        self.unflushed = 0

    def _find_tables(self) -> TableSet:
        """The tables of the run: `tables`, and those `discover` finds (retried while DynamoDB is throttling)."""
        catalog = TableCatalog.of(self.config, self._aws()) if self.config.discover.enabled else None
        table_set = TableSet(self.config, catalog)
        self.config = self._retrying(table_set.start, "table discovery")
        names = {table.name for table in self.config.tables}
        for name in sorted(self.requested - names):
            table_set.close()
            raise ConfigError(
                f"--snapshot {name}: `discover` did not find table {name} (found: {', '.join(sorted(names))})"
            )
        return table_set

    def _aws(self):
        """The DynamoDB client (and the Streams one beside it), made from the config unless given."""
        if self.dynamodb is None or self.streams is None:
            self.dynamodb, self.streams = aws_clients(self.config)
        return self.dynamodb

    def _retrying(self, step: Callable, what: str):
        """`step()`, retried with backoff while it raises `RetriableError` (a broker away at start-up)."""
        attempt = 0
        while True:
            try:
                return step()
            except RetriableError as error:
                attempt += 1
                delay = _backoff(attempt)
                log.warning("%s not ready (attempt %d): %s; retrying in %.1f s", what, attempt, error, delay)
                if self.stop_requested.wait(delay):
                    raise FatalError(f"stopped before {what} was ready") from error

    def request_stop(self) -> None:
        """Ask the run to drain and return (safe to call from a signal handler).

        From now on, sinks get `shutdown_timeout_s` in total to acknowledge what was written.
        """
        if not self.stop_requested.is_set():
            self.stop_deadline = time.monotonic() + self.config.shutdown_timeout_s
        self.stop_requested.set()

    def readiness(self) -> list[str]:
        """What keeps this run from replicating now, one short sentence each (empty: ready), for `/ready`."""
        problems = list(self.source.readiness()) if self.routes else ["source: tables not described yet"]
        sinks = self.sinks
        if sinks is None:
            return [*problems, "sinks: not opened yet"]
        for index, sink in enumerate(sinks):
            check = getattr(sink, "readiness", None)  # optional: the Kafka sink has one
            problem = check() if callable(check) else None
            if problem:
                problems.append(f"sinks[{index}] {type(sink).__name__}: {problem}")
        return problems

    def run(self, *, until_caught_up: bool = False) -> None:
        """Replicate until stopped, or until every shard is read to its current end (`until_caught_up`).

        With `delivery: exactly_once`, a transaction that is aborted makes the run start over from the
        committed checkpoint (with backoff), as a new process would."""
        attempt = 0
        try:
            while True:
                try:
                    self._run(until_caught_up)
                except TransactionAborted as error:
                    attempt += 1
                    self._start_over(error, attempt)
                    continue
                if not self.tables_changed or self.stop_requested.is_set():
                    return
                self._change_tables()
        finally:
            self.table_set.close()
            self.tracker.close()  # the checkpoint file is free for the next run
            if self.transaction is not None:
                self.transaction.close()

    def _change_tables(self) -> None:
        """After a run that ended with everything committed because the tables found changed: start again."""
        self.tables_changed = False
        self.tracker.close()
        if self.transaction is not None:
            self.transaction.close()
        self.config = self.table_set.apply()
        self._build()

    def _start_over(self, error: TransactionAborted, attempt: int) -> None:
        """After an aborted transaction: read the checkpoint again and rebuild the run from it."""
        self.transaction.abort()
        if self.stop_requested.is_set():
            raise FatalError(
                f"stopping: the last transaction was aborted ({error}); the checkpoint stays before its records, "
                "which the next run sends again"
            ) from None
        if self.given_source is not None:
            raise FatalError(f"the transaction was aborted ({error}) and this run's source cannot start over")
        delay = _backoff(attempt)
        log.warning(
            "transaction aborted (%s): its records never count for read_committed consumers; starting over from "
            "the committed checkpoint in %.1f s",
            error,
            delay,
        )
        self.tracker.close()
        if self.stop_requested.wait(delay):
            raise FatalError(f"stopped while starting over after an aborted transaction ({error})") from None
        self._build()

    def _run(self, until_caught_up: bool) -> None:
        source = self.source
        infos = source.start(cancel=self.stop_requested)
        self.routes = routes = build_routes(self.config, infos, self.dynamodb, self._pause)
        sinks = self.given_sinks or self._make_sinks(routes)
        if self.transaction is not None:
            for sink in [*sinks, self.dead_letters]:
                sink.join(self.transaction)
        for route in routes.values():
            route.serve(sinks)
        try:
            self.snapshots.open(infos)
            with self.snapshots.starting(source.watermark):
                for sink in [*sinks, self.dead_letters]:
                    self._retrying(sink.open, f"sink {type(sink).__name__}")
            self.sinks = sinks
            self._loop(routes, sinks, until_caught_up)
            self.snapshots.stop(self._time_left())
            source.stop(self._time_left())
            self._commit(sinks, final=True)
        finally:
            self.snapshots.stop(self._time_left())
            source.stop(self._time_left())
            for sink in [*sinks, self.dead_letters]:
                try:
                    sink.close()
                except Exception as error:  # close never raises by contract; a plugin's must not hide the run's
                    log.error("closing %s failed: %r", type(sink).__name__, error)
            if self.poison_counts:
                log.warning("poison records routed this run: %s", dict(self.poison_counts))

    @property
    def poison_counts(self) -> Counter[tuple[str, str]]:
        """Poison records routed so far, by (table, policy)."""
        return Counter({(name, policy): n for name, route in self.routes.items() for policy, n in route.counts.items()})

    def _time_left(self) -> float:
        """Seconds until the stop deadline (`shutdown_timeout_s` after the stop request), else the whole timeout."""
        if self.stop_requested.is_set():
            return max(0.0, self.stop_deadline - time.monotonic())
        return self.config.shutdown_timeout_s

    def _pause(self, seconds: float) -> None:
        """Wait before a DynamoDB call is retried (enrichment); a stop request ends the run instead."""
        if self.stop_requested.wait(seconds):
            raise FatalError(
                "stopped while DynamoDB was refusing BatchGetItem (enrich: current_item); the checkpoint stays "
                "before the records that were waiting for their items"
            )

    def _scan(self, table, snapshot) -> TableScan:
        return TableScan(
            self.dynamodb,
            table.name,
            snapshot.segments,
            consistent_read=table.snapshot_consistent_read,
            max_read_units_per_s=table.snapshot_max_read_units_per_s,
            workers=min(8, len(snapshot.segments)),
            queue_pages=8,
            key_names=self.routes[table.name].key_names,
        )

    def _make_sinks(self, routes: dict[str, TableRoute]) -> list[Sink]:
        encodings = {name: route.encoding for name, route in routes.items()}
        return [load_sink(spec.type)(spec.settings, encodings) for spec in self.config.sinks]

    def _loop(self, routes: dict[str, TableRoute], sinks: list[Sink], until_caught_up: bool) -> None:
        interval = self.config.checkpoint.interval_s
        next_commit = time.monotonic() + interval
        next_tables_check = time.monotonic() + TABLES_CHECK_S
        while not self.stop_requested.is_set():
            # While a snapshot runs, its pages wait on the stream's watermark, which moves without a batch too.
            batch = self.source.get(timeout=0.05 if self.snapshots.all_done() else 0.005)
            if batch is not None:
                self._write(batch, routes[batch.table.name], sinks)
            self._write_snapshots(routes, sinks)
            if time.monotonic() >= next_commit or self.unflushed >= MAX_UNFLUSHED_EVENTS:
                self._commit(sinks)
                next_commit = time.monotonic() + interval
            if time.monotonic() >= next_tables_check:
                next_tables_check = time.monotonic() + TABLES_CHECK_S
                if self.table_set.due(self.source.watermark):
                    log.info("the tables found by discover changed: committing, then starting again with them")
                    self.tables_changed = True
                    return
            if self.only_snapshots and self.snapshots.all_done():
                log.info("every snapshot is done (snapshot: initial_only); stopping")
                return
            if until_caught_up and batch is None and self.snapshots.all_done() and self.source.caught_up():
                log.info("caught up with every shard")
                return

    def _write(self, batch: ShardBatch, route: TableRoute, sinks: list[Sink]) -> None:
        routed = route.route(batch.records, batch.table.stream_arn, batch.shard_id, batch.superseded_before_ms)
        self._deliver(routed, routed.events, route, sinks)
        self.snapshots.saw(batch.table.name, routed.events)
        if routed.last_sequence is not None:
            self.tracker.written(batch.table.stream_arn, batch.shard_id, routed.last_sequence)
        if batch.ended:
            self.tracker.finished(batch.table.stream_arn, batch.shard_id)
            self.source.shard_done(batch)

    def _write_snapshots(self, routes: dict[str, TableRoute], sinks: list[Sink]) -> None:
        """Take the snapshots the stream asks for, and write the Scan pages the stream was read past."""
        for name in self.source.resnapshots():
            self.snapshots.request(name, "trimmed")
        for snapshot, page in self.snapshots.ready(self.source.watermark, self.source.wake_at):
            route = routes[snapshot.table]
            ids = self.snapshots.event_ids(snapshot, page)
            arn = self.snapshots.stream_arn(snapshot.table)
            routed = route.rows(page.items, arn, page.segment, page.read_ms, ids)
            self._deliver(routed, snapshot.fresh(routed.events), route, sinks)
            self.snapshots.written(snapshot, page)

    def _deliver(self, routed: Routed, events: list[ChangeEvent], route: TableRoute, sinks: list[Sink]) -> None:
        """Write `events` (of `routed`) to every sink, and the dead letters to their destination."""
        deliver(events, routed.letters, sinks, self.dead_letters, route.rejected)
        self.unflushed += len(events)

    def _commit(self, sinks: list[Sink], final: bool = False) -> None:
        """Flush every sink and dead-letter destination, then store the checkpoint.

        While they cannot confirm (broker away), retry with backoff and a log line per attempt, reading
        nothing meanwhile; once a stop is requested, give up at its deadline (the checkpoint stays put).
        """
        for (arn, shard_id), quiet_ms in self.source.quiet_shards().items():
            self.tracker.quiet(arn, shard_id, int(quiet_ms), 0 if final else QUIET_REFRESH_MS)
        if not self.tracker.has_pending:
            return
        if self.transaction is not None:
            self._commit_transaction(sinks)
            return
        attempt = 0
        while True:
            timeout = min(FLUSH_ATTEMPT_S, self.config.shutdown_timeout_s)
            if self.stop_requested.is_set():
                timeout = min(timeout, max(0.1, self.stop_deadline - time.monotonic()))
            try:
                for sink in sinks:
                    sink.flush(timeout)
                self.dead_letters.flush(timeout)
                break
            except RetriableError as error:
                attempt += 1
                if self.stop_requested.is_set() and time.monotonic() >= self.stop_deadline:
                    raise FatalError(
                        f"stopping: sinks did not acknowledge within shutdown_timeout_s "
                        f"({self.config.shutdown_timeout_s:g} s): {error}; the checkpoint stays before the "
                        "unacknowledged records, which the next run sends again"
                    ) from None
                delay = _backoff(attempt)
                log.warning(
                    "flush attempt %d failed: %s; reading paused, checkpoint held, retrying in %.1f s",
                    attempt,
                    error,
                    delay,
                )
                if self.stop_requested.is_set():
                    delay = min(delay, max(0.0, self.stop_deadline - time.monotonic()))
                    time.sleep(delay)
                else:
                    self.stop_requested.wait(delay)
        if attempt:
            log.info("sinks acknowledged everything after %d failed flush attempt(s); resuming", attempt)
        committed = self.tracker.pending
        self.tracker.commit()
        self._committed(committed)

    def _commit_transaction(self, sinks: list[Sink]) -> None:
        """delivery: exactly_once - the records, dead letters and checkpoint records of this interval are
        committed as one Kafka transaction; any failure aborts it (`TransactionAborted`: the run starts over)."""
        timeout = min(FLUSH_ATTEMPT_S, max(0.1, self._time_left()))
        committed = self.tracker.pending
        try:
            for sink in sinks:
                sink.flush(timeout)
            self.dead_letters.flush(timeout)
            self.tracker.commit()  # the Kafka store sends the checkpoint records inside the transaction
            self.transaction.commit()
        except TransactionAborted:
            raise
        except RetriableError as error:  # a broker away: this transaction cannot be confirmed now
            raise TransactionAborted(str(error)) from error
        self.requested.clear()
        self._committed(committed)

    def _committed(self, positions: dict) -> None:
        metrics.checkpoint_written(positions)
        self.unflushed = 0


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: 0.5 s up to 30 s."""
    return full_jitter(attempt, base=0.5, cap=30.0, floor=0.5)


def deliver(
    events: list[ChangeEvent],
    letters: list[DeadLetter],
    sinks: list[Sink],
    dead_letters: DeadLetters,
    rejected: Callable[[RejectedEvent, str], DeadLetter | None],
) -> None:
    """Write `events` to every sink, then `letters` and the dead letters of the events a sink rejected to
    `dead_letters`; nothing is durable before their `flush`. `rejected(error, sink_name)` routes a rejected
    event by its table's policy (`TableRoute.rejected`: a letter, None under `skip`, `FatalError` under `fail`).
    Shared by the pipeline and the Lambda handler (bridge/aws_lambda.py)."""
    letters = list(letters)
    if events:
        for sink in sinks:
            letters += write_to(sink, events, rejected)
        metrics.events_written(events)
    dead_letters.write(letters)


def write_to(
    sink: Sink, events: list[ChangeEvent], rejected: Callable[[RejectedEvent, str], DeadLetter | None]
) -> list[DeadLetter]:
    """Write `events` to one sink; an event it rejects is routed by `rejected`, the rest still go."""
    letters = []
    remaining = events
    while remaining:
        try:
            sink.write(remaining)
            break
        except RejectedEvent as error:
            index = next((i for i, event in enumerate(remaining) if event is error.event), None)
            if index is None:
                raise FatalError(f"sink {type(sink).__name__} rejected an event it was not given: {error}") from None
            letter = rejected(error, type(sink).__name__)
            if letter is not None:
                letters.append(letter)
            remaining = remaining[index + 1 :]
        except PoisonRecordError as error:
            raise FatalError(
                f"sink {type(sink).__name__} could not write a batch: {error} (a sink refuses one event by "
                "raising RejectedEvent)"
            ) from error
    return letters
