"""Wires source -> normalize -> sinks -> checkpoint from the config and owns the lifecycle.

Steady state: take a batch of one shard, normalize it, write it to every sink; every
`checkpoint.interval_s` (or after `MAX_UNFLUSHED_EVENTS` events) flush all sinks and the dead-letter
destinations and only then store the checkpoint. While a flush fails (broker away) nothing more is read:
the flush is retried with backoff and the checkpoint stays where it was, so memory stays bounded and
nothing is lost. Stop (signal, or caught up with `until_caught_up`): stop reading, flush within
`shutdown_timeout_s`, store the checkpoint, close the sinks; if the flush cannot finish in time, the
run fails (exit 1) with the checkpoint still before the unacknowledged records.
"""

from __future__ import annotations

import logging
import threading
import time

import boto3
from botocore.config import Config as BotoConfig

from bridge import metrics
from bridge.backoff import full_jitter
from bridge.checkpoint import CheckpointStore, CheckpointTracker
from bridge.codec.avro import EnvelopeCodec
from bridge.config import Config
from bridge.errors import FatalError, PoisonRecordError, RetriableError
from bridge.filters import filter_events
from bridge.normalize import ChangeEvent, sequence_number_of, to_change_event
from bridge.poison import DeadLetter, PoisonRouter, RejectedEvent, build_router
from bridge.sinks import Sink, TableEncoding, load_sink
from bridge.sinks.kafka import KafkaSink
from bridge.source import ShardBatch, StreamSource, rawbody

log = logging.getLogger(__name__)
MAX_UNFLUSHED_EVENTS = 20_000  # events written since the last flush before reading pauses for one
FLUSH_ATTEMPT_S = 10.0  # longest single flush attempt before it is logged and retried
AWS_TIMEOUTS = {"connect_timeout": 5, "read_timeout": 15}  # s; a stalled call is retried, it does not hang a stop


def aws_clients(config: Config, session: boto3.Session | None = None):
    """DynamoDB and DynamoDB Streams clients for the configured region and endpoint.

    With an `endpoint_url` (a local stack) and no AWS credentials anywhere, dummy credentials are used.
    """
    session = session or boto3.Session()
    source = config.source
    options = {
        "region_name": source.region,
        "endpoint_url": source.endpoint_url,
        "config": BotoConfig(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=32, **AWS_TIMEOUTS),
    }
    if source.endpoint_url and session.get_credentials() is None:
        options.update(aws_access_key_id="local", aws_secret_access_key="local")
    streams = session.client("dynamodbstreams", **options)
    rawbody.install(streams)  # GetRecords bodies parsed by orjson, not attribute by attribute (bench/README.md)
    return session.client("dynamodb", **options), streams


class Pipeline:
    """One bridge run over all configured tables."""

    def __init__(self, config: Config, *, dynamodb=None, streams=None, sinks: list[Sink] | None = None) -> None:
        self.config = config
        if dynamodb is None or streams is None:
            dynamodb, streams = aws_clients(config)
        self.dynamodb, self.streams_client = dynamodb, streams
        self.given_sinks = sinks
        self.stop_requested = threading.Event()
        self.stop_deadline = float("inf")
        self.tracker = CheckpointTracker(CheckpointStore(config.checkpoint.path))
        self.table_configs = {table.name: table for table in config.tables}
        self.poison: PoisonRouter = build_router(config)
        self.unflushed = 0
        self._transcoders: dict[str, object] = {}  # table -> transcoder or None, chosen on its first batch

    def request_stop(self) -> None:
        """Ask the run to drain and return (safe to call from a signal handler).

        From now on, sinks get `shutdown_timeout_s` in total to acknowledge what was written.
        """
        if not self.stop_requested.is_set():
            self.stop_deadline = time.monotonic() + self.config.shutdown_timeout_s
        self.stop_requested.set()

    def run(self, *, until_caught_up: bool = False) -> None:
        """Replicate until stopped, or until every shard is read to its current end (`until_caught_up`)."""
        source = StreamSource(
            self.config.tables,
            self.dynamodb,
            self.streams_client,
            self.tracker.acked,
            poll_interval=self.config.source.poll_interval_ms / 1000,
            discovery_interval=self.config.source.discovery_interval_s,
            max_workers=self.config.source.max_workers,
        )
        try:
            infos = source.start(cancel=self.stop_requested)
            self.tables = {info.name: info for info in infos}
            self.source = source  # for /ready
            sinks = self.given_sinks or self._make_sinks()
            try:
                for sink in [*sinks, self.poison]:
                    self._open(sink)
                self.sinks = sinks  # for /ready
                self._loop(source, sinks, until_caught_up)
                source.stop(self._time_left())
                self._commit(sinks)
                if self.poison.counts:
                    log.warning("poison records routed this run: %s", dict(self.poison.counts))
            finally:
                source.stop(self._time_left())
                for sink in [*sinks, self.poison]:
                    sink.close()
        finally:
            self.tracker.close()  # the checkpoint file is free for the next run

    def _time_left(self) -> float:
        """Seconds until the stop deadline (`shutdown_timeout_s` after the stop request), else the whole timeout."""
        if self.stop_requested.is_set():
            return max(0.0, self.stop_deadline - time.monotonic())
        return self.config.shutdown_timeout_s

    def _make_sinks(self) -> list[Sink]:
        encodings = {
            table.name: TableEncoding(
                EnvelopeCodec(self.config.encoding.numbers, self.config.encoding.wire_format, table.schema), table.key
            )
            for table in self.config.tables
        }
        return [load_sink(spec.type)(spec.settings, encodings) for spec in self.config.sinks]

    def _open(self, sink: Sink | PoisonRouter) -> None:
        attempt = 0
        while True:
            try:
                sink.open()
                return
            except RetriableError as error:
                attempt += 1
                delay = _backoff(attempt)
                log.warning(
                    "sink %s not ready (attempt %d): %s; retrying in %.1f s", type(sink).__name__, attempt, error, delay
                )
                if self.stop_requested.wait(delay):
                    raise FatalError("stopped before every sink was ready") from error

    def _loop(self, source: StreamSource, sinks: list[Sink], until_caught_up: bool) -> None:
        interval = self.config.checkpoint.interval_s
        next_commit = time.monotonic() + interval
        while not self.stop_requested.is_set():
            batch = source.get(timeout=0.05)
            if batch is not None:
                self._write(batch, sinks, source)
            if time.monotonic() >= next_commit or self.unflushed >= MAX_UNFLUSHED_EVENTS:
                self.tracker.forget(source.take_pruned())
                self._commit(sinks)
                next_commit = time.monotonic() + interval
            if until_caught_up and batch is None and source.caught_up():
                log.info("caught up with every shard")
                return

    def _write(self, batch: ShardBatch, sinks: list[Sink], source: StreamSource) -> None:
        table = batch.table
        events: list[ChangeEvent] = []
        raw: dict[str, dict] = {}  # sequence number -> stream record, for dead letters
        transcoder = self._transcoder(table.name, sinks)
        for record in batch.records:
            try:
                event = to_change_event(
                    record,
                    table=table.name,
                    stream_arn=table.stream_arn,
                    shard_id=batch.shard_id,
                    key_names=table.key_names,
                    region=table.region,
                    lazy=True,
                )
                if transcoder is not None:
                    transcoder.sides(event)
                else:
                    event.before, event.after  # noqa: B018 - normalized now, so a malformed image is caught here
            except PoisonRecordError as error:
                sequence = sequence_number_of(record) or "?"
                self.poison.handle(
                    DeadLetter(table.name, str(error), "normalize", table.stream_arn, batch.shard_id, sequence, record)
                )
                continue
            events.append(event)
            raw[event.position.sequence_number] = record
        events = filter_events(events, self.table_configs[table.name])
        if events:
            for sink in sinks:
                self._write_to(sink, events, raw)
            self.unflushed += len(events)
            metrics.events_written(events)
        last = next(filter(None, map(sequence_number_of, reversed(batch.records))), None)
        if last is not None:
            self.tracker.written(table.stream_arn, batch.shard_id, last)
        if batch.ended:
            self.tracker.finished(table.stream_arn, batch.shard_id)
            source.shard_done(batch)

    def _transcoder(self, table: str, sinks: list[Sink]):
        """The table's transcoder when every sink is Kafka with the generic exact envelope and no attribute is
        excluded: images then go from attribute-value JSON straight to Avro (bridge/codec/transcode.py) and no
        plain values are built. None otherwise: images are normalized. Either way before any sink sees them."""
        if table not in self._transcoders:
            codecs = [getattr(sink.tables.get(table), "codec", None) for sink in sinks]
            fast = sinks and all(isinstance(sink, KafkaSink) for sink in sinks)
            fast = fast and all(getattr(codec, "transcoder", None) is not None for codec in codecs)
            excludes = self.table_configs[table].exclude_attributes
            self._transcoders[table] = codecs[0].transcoder if fast and not excludes else None
        return self._transcoders[table]

    def _write_to(self, sink: Sink, events: list[ChangeEvent], raw: dict[str, dict]) -> None:
        """Write `events` to one sink; an event it rejects is routed by policy and the rest still go."""
        remaining = events
        while remaining:
            try:
                sink.write(remaining)
                return
            except RejectedEvent as error:
                index = next((i for i, event in enumerate(remaining) if event is error.event), None)
                if index is None:
                    raise FatalError(
                        f"sink {type(sink).__name__} rejected an event it was not given: {error}"
                    ) from None
                event = remaining[index]
                position = event.position
                self.poison.handle(
                    DeadLetter(
                        event.table,
                        str(error),
                        type(sink).__name__,
                        position.stream_arn,
                        position.shard_id,
                        position.sequence_number,
                        raw[position.sequence_number],
                    )
                )
                remaining = remaining[index + 1 :]
            except PoisonRecordError as error:
                raise FatalError(f"sink {type(sink).__name__} could not write a batch: {error}") from error

    def _commit(self, sinks: list[Sink]) -> None:
        """Flush every sink and dead-letter destination, then store the checkpoint.

        While they cannot confirm (broker away), retry with backoff and a log line per attempt, reading
        nothing meanwhile; once a stop is requested, give up at its deadline (the checkpoint stays put).
        """
        if not self.tracker.pending:
            return
        attempt = 0
        while True:
            timeout = min(FLUSH_ATTEMPT_S, self.config.shutdown_timeout_s)
            if self.stop_requested.is_set():
                timeout = min(timeout, max(0.1, self.stop_deadline - time.monotonic()))
            try:
                for sink in sinks:
                    sink.flush(timeout)
                self.poison.flush(timeout)
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
        metrics.checkpoint_written(committed)
        self.unflushed = 0


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: 0.5 s up to 30 s."""
    return full_jitter(attempt, base=0.5, cap=30.0, floor=0.5)
