"""Wires source -> normalize -> sinks -> checkpoint from the config and owns the lifecycle.

Steady state: take a batch of one shard, normalize it, write it to every sink; every
`checkpoint.interval_s` flush all sinks and only then store the checkpoint. Stop (signal, or caught up
with `until_caught_up`): stop reading, flush, store the checkpoint, close the sinks.
"""

from __future__ import annotations

import logging
import random
import threading
import time

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import EndpointConnectionError, NoCredentialsError

from bridge.checkpoint import CheckpointStore, CheckpointTracker
from bridge.codec.avro import EnvelopeCodec
from bridge.config import Config
from bridge.errors import ConfigError, FatalError, PoisonRecordError, RetriableError
from bridge.normalize import to_change_event
from bridge.sinks import Sink, TableEncoding, sink_types
from bridge.source import ShardBatch, StreamSource

log = logging.getLogger(__name__)


def aws_clients(config: Config, session: boto3.Session | None = None):
    """DynamoDB and DynamoDB Streams clients for the configured region and endpoint.

    With an `endpoint_url` (a local stack) and no AWS credentials anywhere, dummy credentials are used.
    """
    session = session or boto3.Session()
    source = config.source
    options = {
        "region_name": source.region,
        "endpoint_url": source.endpoint_url,
        "config": BotoConfig(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=32),
    }
    if source.endpoint_url and session.get_credentials() is None:
        options.update(aws_access_key_id="local", aws_secret_access_key="local")
    return session.client("dynamodb", **options), session.client("dynamodbstreams", **options)


class Pipeline:
    """One bridge run over all configured tables."""

    def __init__(self, config: Config, *, dynamodb=None, streams=None, sinks: list[Sink] | None = None) -> None:
        self.config = config
        if dynamodb is None or streams is None:
            dynamodb, streams = aws_clients(config)
        self.dynamodb, self.streams_client = dynamodb, streams
        self.given_sinks = sinks
        self.stop_requested = threading.Event()
        self.tracker = CheckpointTracker(CheckpointStore(config.checkpoint.path))

    def request_stop(self) -> None:
        """Ask the run to drain and return (safe to call from a signal handler)."""
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
            infos = source.start()
        except EndpointConnectionError as error:
            raise ConfigError(f"cannot reach DynamoDB (source.endpoint_url / source.region): {error}") from None
        except NoCredentialsError:
            raise ConfigError("no AWS credentials found (environment, ~/.aws or instance role)") from None
        self.tables = {info.name: info for info in infos}
        sinks = self.given_sinks or self._make_sinks()
        try:
            for sink in sinks:
                self._open(sink)
            self._loop(source, sinks, until_caught_up)
            source.stop()
            self._commit(sinks)
        finally:
            source.stop()
            for sink in sinks:
                sink.close()

    def _make_sinks(self) -> list[Sink]:
        encodings = {
            table.name: TableEncoding(
                EnvelopeCodec(self.config.encoding.numbers, self.config.encoding.wire_format), table.key
            )
            for table in self.config.tables
        }
        return [sink_types()[spec.type](spec.settings, encodings) for spec in self.config.sinks]

    def _open(self, sink: Sink) -> None:
        attempt = 0
        while True:
            try:
                sink.open()
                return
            except RetriableError as error:
                attempt += 1
                delay = random.uniform(0.5, min(30.0, 2.0**attempt))
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
            if time.monotonic() >= next_commit:
                self._commit(sinks)
                next_commit = time.monotonic() + interval
            if until_caught_up and batch is None and source.caught_up():
                log.info("caught up with every shard")
                return

    def _write(self, batch: ShardBatch, sinks: list[Sink], source: StreamSource) -> None:
        table = batch.table
        events = []
        for record in batch.records:
            try:
                events.append(
                    to_change_event(
                        record,
                        table=table.name,
                        stream_arn=table.stream_arn,
                        shard_id=batch.shard_id,
                        key_names=table.key_names,
                        region=table.region,
                    )
                )
            except PoisonRecordError as error:
                sequence = record.get("dynamodb", {}).get("SequenceNumber", "?")
                raise FatalError(
                    f"table {table.name}, shard {batch.shard_id}, sequence number {sequence}: "
                    f"cannot normalize the record: {error}"
                ) from error
        if events:
            for sink in sinks:
                sink.write(events)
            last = events[-1].position
            self.tracker.written(last.stream_arn, last.shard_id, last.sequence_number)
        if batch.ended:
            self.tracker.finished(table.stream_arn, batch.shard_id)
            source.shard_done(batch)

    def _commit(self, sinks: list[Sink]) -> None:
        if not self.tracker.pending:
            return
        for sink in sinks:
            sink.flush(self.config.shutdown_timeout_s)
        self.tracker.commit()
