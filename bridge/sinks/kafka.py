"""Kafka sink: one Avro record per change, keyed by the item's partition key.

Delivery: at-least-once with per-item order. The producer is idempotent with `acks=all` and at most
5 requests in flight, so retries neither reorder nor duplicate within one run; `flush()` returns only
after the broker acknowledged every record written so far and raises if any failed. A restart after a
crash re-sends records written after the last checkpoint (duplicates carry the same `event_id` header).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from bridge.codec.keys import kafka_key
from bridge.errors import ConfigError, FatalError, RetriableError
from bridge.normalize import ChangeEvent
from bridge.sinks.base import Sink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KafkaConfig:
    """Publish each change event to a Kafka topic as an Avro record."""

    bootstrap_servers: str = field(metadata={"doc": "Comma-separated `host:port` list of brokers."})
    topic: str = field(default="dynamodb.{table}", metadata={"doc": "Topic name template; `{table}` is replaced."})
    client_id: str = field(default="cdc-bridge", metadata={"doc": "Client id the broker sees."})
    linger_ms: int = field(default=20, metadata={"doc": "How long the producer waits to fill a batch."})
    batch_size: int = field(default=262144, metadata={"doc": "Largest batch per partition, in bytes."})
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = field(
        default="none", metadata={"doc": "Compression of record batches."}
    )
    create_topics: bool = field(default=False, metadata={"doc": "Create missing topics at startup (else: error)."})
    partitions: int = field(default=1, metadata={"doc": "Partitions of topics the bridge creates."})
    replication_factor: int = field(default=1, metadata={"doc": "Replication factor of topics the bridge creates."})


class KafkaSink(Sink):
    """Sends Avro envelopes with kafka-python; see the module docstring for the delivery guarantee."""

    Config = KafkaConfig

    def open(self) -> None:
        servers = [s.strip() for s in self.config.bootstrap_servers.split(",") if s.strip()]
        self.topics = {table: self.config.topic.format(table=table) for table in self.tables}
        self._ensure_topics(servers)
        self.producer = KafkaProducer(
            bootstrap_servers=servers,
            client_id=self.config.client_id,
            acks="all",
            enable_idempotence=True,
            max_in_flight_requests_per_connection=5,
            linger_ms=self.config.linger_ms,
            batch_size=self.config.batch_size,
            compression_type=None if self.config.compression == "none" else self.config.compression,
        )
        self.pending = []

    def _ensure_topics(self, servers: list[str]) -> None:
        try:
            admin = KafkaAdminClient(bootstrap_servers=servers, client_id=self.config.client_id)
        except KafkaError as error:
            raise RetriableError(f"no Kafka broker reachable at {self.config.bootstrap_servers}: {error}") from None
        try:
            missing = sorted(set(self.topics.values()) - set(admin.list_topics()))
            if missing and not self.config.create_topics:
                raise ConfigError(
                    f"Kafka topic(s) {', '.join(missing)} do not exist at {self.config.bootstrap_servers}; "
                    "create them or set `create_topics: true` on the kafka sink"
                )
            if missing:
                new = [NewTopic(t, self.config.partitions, self.config.replication_factor) for t in missing]
                with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile by another bridge
                    admin.create_topics(new)
                log.info("created Kafka topics %s", ", ".join(missing))
        finally:
            admin.close()

    def write(self, events: Sequence[ChangeEvent]) -> None:
        ts_ms = int(time.time() * 1000)
        send = self.producer.send
        for event in events:
            table = self.tables[event.table]
            codec = table.codec
            headers = [
                ("op", event.op.encode()),
                ("table", event.table.encode()),
                ("event_id", event.event_id.encode()),
                ("sequence_number", event.position.sequence_number.encode()),
                ("schema_fingerprint", codec.fingerprint.hex().encode()),
                ("content_type", b"application/vnd.apache.avro"),
            ]
            value = codec.encode(event, ts_ms)
            try:
                future = send(self.topics[event.table], value=value, key=kafka_key(event, table.key), headers=headers)
            except KafkaError as error:
                raise FatalError(f"Kafka refused a record of {event.table} at {event.position}: {error}") from error
            self.pending.append(future)

    def flush(self, timeout: float) -> None:
        try:
            self.producer.flush(timeout=timeout)
        except KafkaError as error:
            raise FatalError(f"Kafka did not acknowledge records within {timeout:.0f} s: {error}") from error
        pending, self.pending = self.pending, []
        for future in pending:
            if not future.is_done:
                self.pending = pending
                raise FatalError(f"Kafka did not acknowledge records within {timeout:.0f} s")
            if future.failed():
                self.pending = pending
                raise FatalError(f"Kafka rejected a record: {future.exception}")

    def close(self) -> None:
        producer = getattr(self, "producer", None)
        if producer is not None:
            producer.close(timeout=5)
