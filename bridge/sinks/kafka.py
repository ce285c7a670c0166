"""Kafka sink: one Avro record per change, keyed by the item's key, on a topic per table.

Delivery: at-least-once with per-item order. The producer is idempotent with `acks=all` and at most
5 requests in flight, so its own retries neither reorder nor duplicate. A record is never given up on
because the broker is away: it waits in the producer (the pipeline stops reading and holds the checkpoint
meanwhile) and `flush()` raises `RetriableError` until the broker acknowledged everything written so far.
A record the broker rejects for good makes `flush()` raise `FatalError`, and so does a topic deleted while
the bridge runs (found when records stay unacknowledged while a broker answers): the bridge never lets the
broker recreate it. A restart after a crash re-sends the records written after the last checkpoint: those
duplicates carry the same `event_id` and `sequence_number` headers as the first copy. `close()` waits about a
second for acknowledgements, then gives up on what is left (logged once, with the count).

Each record goes to the partition kafka-python's default partitioner (and Java's) picks for its key,
murmur2 of the key modulo the partition count (in C when `bridge.codec._speedups` is built), computed here
once per record from the topic's partitions as the producer's metadata knows them when `write` starts, and
handed to the producer explicitly: the same partition, without the default partitioner's per-record metadata
copies. Records reach the producer through `record_appender` (bridge/sinks/kafka_append.py), which keeps the
checks of `send` that decide delivery and drops those the sink's records never need.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

from kafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError
from kafka.partitioner import murmur2

from bridge.codec.keys import kafka_key
from bridge.codec.registry import avro_key, key_schema, register_key, register_value
from bridge.config import doc
from bridge.errors import ConfigError, FatalError, PoisonRecordError, RejectedEvent, RetriableError
from bridge.normalize import ChangeEvent
from bridge.ops import metrics
from bridge.ops.health import producer_readiness
from bridge.secret import Secret
from bridge.sinks.base import Sink
from bridge.sinks.kafka_append import record_appender
from bridge.sinks.kafka_client import check_settings, close_producer, ensure_topics, make_producer, missing_topics

try:
    from bridge.codec._speedups import partition as c_partition
except ImportError:  # installed without a C compiler: kafka-python's murmur2 picks the same partition
    c_partition = None

log = logging.getLogger(__name__)
TOPIC_CHECK_S = 2.0  # longest time a flush spends asking whether its topics still exist
TOPIC_CHECK_INTERVAL_S = 30.0  # at most one such question per interval while records stay unacknowledged

LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")

AVRO = b"application/vnd.apache.avro"


@cache
def _avro_headers(fingerprint: bytes) -> tuple[tuple[str, bytes], ...]:
    """The schema headers of a writer schema (the same for every record of a table)."""
    return (("schema_fingerprint", fingerprint.hex().encode()), ("content_type", AVRO))


def partition_for(key: bytes, partitions: Sequence[int]) -> int:
    """The partition of `key` among the topic's sorted `partitions`, as kafka-python's `DefaultPartitioner` and
    Java's default partitioner pick it: the positive murmur2 hash of the key modulo the partition count."""
    if c_partition is not None:
        return partitions[c_partition(key, len(partitions))]
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]


@dataclass(frozen=True)
class KafkaConfig:
    """Publish each change event to a Kafka topic as an Avro record."""

    bootstrap_servers: str = doc("Comma-separated `host:port` list of brokers.")
    topic: str = doc("Topic name template; `{table}` is replaced.", default="dynamodb.{table}")
    client_id: str = doc("Client id the broker sees.", default="cdc-bridge")
    linger_ms: int = doc("How long the producer waits to fill a batch.", default=20)
    batch_size: int = doc("Largest batch per partition, in bytes; 0: no batching.", default=262144)
    max_request_size: int = doc(
        "Largest record (key + value + headers) sent, in bytes; a larger one is a poison record. Keep it at or "
        "below the topic's `max.message.bytes`.",
        at_least=1,
        default=1048576,
    )
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = doc(
        "Compression of record batches (snappy, lz4, zstd need the extra of the same name).", default="none"
    )
    create_topics: bool = doc("Create missing topics at startup (else: error).", default=False)
    partitions: int = doc("Partitions of topics the bridge creates.", at_least=1, default=1)
    replication_factor: int = doc("Replication factor of topics the bridge creates.", at_least=1, default=1)
    tombstones: bool = doc(
        "After each delete, also send a tombstone (null value) for compacted topics; needs `key: primary`.",
        default=False,
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = doc(
        "How to talk to the brokers.", default="PLAINTEXT"
    )
    ssl_cafile: str | None = doc("CA bundle (PEM) that signed the brokers' certificates.", default=None)
    ssl_certfile: str | None = doc("Client certificate (PEM) for mutual TLS.", default=None)
    ssl_keyfile: str | None = doc("Client private key (PEM) for mutual TLS.", default=None)
    ssl_password: Secret | None = doc("Password of the client key (use `${ENV}`).", default=None)
    ssl_check_hostname: bool = doc("Check that the broker certificate names the host.", default=True)
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "AWS_MSK_IAM"] | None = doc(
        "SASL mechanism (with SASL_PLAINTEXT / SASL_SSL).", default=None
    )
    sasl_username: str | None = doc("User for PLAIN and SCRAM.", default=None)
    sasl_password: Secret | None = doc("Password for PLAIN and SCRAM (use `${ENV}`).", default=None)
    sasl_oauth_token: Secret | None = doc("Bearer token for OAUTHBEARER (use `${ENV}`).", default=None)


class KafkaSink(Sink):
    """Sends Avro envelopes with kafka-python; see the module docstring for the delivery guarantee."""

    Config = KafkaConfig
    reads_plain_values = False  # events are only encoded with the table's codec: images may stay raw

    @classmethod
    def check_config(cls, config: KafkaConfig, tables: Sequence[str]) -> list[tuple[str, str]]:
        """Problems of the topic names, compression and TLS/SASL settings as (field, message) pairs."""
        problems = check_settings(config)
        for table in tables:
            topic = config.topic.format(table=table)
            if not LEGAL_TOPIC.fullmatch(topic) or topic in (".", ".."):
                problems.append(
                    (
                        "topic",
                        f"{topic!r} (table {table}) is not a legal Kafka topic name: "
                        "1-249 characters of a-z, A-Z, 0-9, '.', '_' and '-'",
                    )
                )
        return problems

    def open(self) -> None:
        problems = check_settings(self.config)
        if problems:
            name, message = problems[0]
            raise ConfigError(f"kafka sink: {name}: {message}")
        self.topics = {table: self.config.topic.format(table=table) for table in self.tables}
        self.avro_keys: dict[str, tuple[bytes, tuple[str, ...]]] = {}  # table -> (key header, key attributes)
        for table, encoding in self.tables.items():
            if encoding.registry is not None:
                register_value(encoding.registry, encoding.codec, self.topics[table], table)
                if encoding.registry.config.key_format == "avro":
                    schema = key_schema(table, encoding.key_attributes)
                    header = register_key(encoding.registry, schema, self.topics[table], table)
                    self.avro_keys[table] = (header, tuple(name for name, _ in encoding.key_attributes))
        ensure_topics(self.config, self.topics.values())
        self.producer = self.transaction.producer if self.transaction is not None else make_producer(self.config)
        self.append = record_appender(self.producer)
        self.pending: list = []  # futures of the records sent since the last successful flush
        self.rejected: list[BaseException] = []  # why the broker refused records for good (then flush is fatal)
        self.stuck = False  # the last flush ended with records unacknowledged
        self.next_topic_check = 0.0  # monotonic time before which the topics are not asked about again

    transaction = None  # the pipeline's Kafka transaction with delivery: exactly_once (`join`)

    def join(self, transaction) -> None:
        self.transaction = transaction

    def _headers(self, event: ChangeEvent, fingerprint: bytes | None) -> list[tuple[str, bytes]]:
        headers = [
            ("op", event.op.encode()),
            ("table", event.table.encode()),
            ("event_id", event.event_id.encode()),
            ("sequence_number", event.position.sequence_number.encode()),
        ]
        if fingerprint is not None:
            headers += _avro_headers(fingerprint)
        return headers

    def write(self, events: Sequence[ChangeEvent]) -> None:
        """Hand `events` to the producer in order; raises `RejectedEvent` for one that cannot be sent at all.

        Events before the rejected one were accepted; the caller continues after it (or stops).
        """
        if self.transaction is not None and events:
            self.transaction.begin()
        ts_ms = int(time.time() * 1000)
        partitions: dict[str, list[int]] = {}  # topic -> its partitions, looked up once per call
        last: dict[tuple[str, int], tuple[float, object]] = {}  # (topic, partition) -> (handed at, future)
        try:
            for event in events:
                table = self.tables[event.table]
                try:
                    value = table.codec.encode(event, ts_ms)
                    avro = self.avro_keys.get(event.table) if self.avro_keys else None
                    if avro is None:
                        key = kafka_key(event, table.key)
                    else:
                        key = avro_key(avro[0], [event.keys[name] for name in avro[1]])
                except PoisonRecordError as error:
                    raise RejectedEvent(event, f"cannot encode: {error}", error.path) from error
                topic = self.topics[event.table]
                if topic not in partitions:
                    partitions[topic] = self._partitions(topic)
                partition = partition_for(key, partitions[topic])
                headers = self._headers(event, table.codec.fingerprint)
                last[topic, partition] = self._send(event, topic, partition, key, value, headers)
                if self.config.tombstones and event.op == "d":
                    last[topic, partition] = self._send(event, topic, partition, key, None, self._headers(event, None))
        finally:
            for handed, future in last.values():
                future.add_callback(lambda _, handed=handed: metrics.kafka_send_latency(time.monotonic() - handed))

    def _partitions(self, topic: str) -> list[int]:
        """The topic's partitions as the producer's metadata knows them (fetched first if it knows none)."""
        try:
            partitions = sorted(self.producer.partitions_for(topic))
        except KafkaTimeoutError as error:
            self._stop_if_topics_deleted(TOPIC_CHECK_S)
            raise RetriableError(f"no metadata for topic {topic}: {error}") from error
        except KafkaError as error:
            raise FatalError(f"Kafka refused the metadata of topic {topic}: {error}") from error
        if not partitions:
            raise RetriableError(f"no partitions known yet for topic {topic}")
        return partitions

    def _send(
        self, event: ChangeEvent, topic: str, partition: int, key: bytes, value: bytes | None, headers: list
    ) -> tuple[float, object]:
        """Hand one record to the producer; returns when that was and the record's future."""
        handed = time.monotonic()
        try:
            future = self.append(topic, partition, key, value, headers)
        except MessageSizeTooLargeError as error:
            raise RejectedEvent(
                event, f"too large for Kafka (max_request_size {self.config.max_request_size} B): {error}"
            ) from error
        except KafkaTimeoutError as error:
            raise RetriableError(f"no metadata for topic {topic}: {error}") from error
        except KafkaError as error:
            if self.transaction is not None:
                raise self.transaction.failed(error, f"send a record of {event.table}") from error
            raise FatalError(f"Kafka refused a record of {event.table} at {event.position}: {error}") from error
        self.pending.append(future)
        return handed, future

    def flush(self, timeout: float) -> None:
        """Return when the broker acknowledged every record so far; `RetriableError` if not yet, `FatalError`
        if one was rejected (then nothing after the last checkpoint may be trusted: restart) or a topic was
        deleted. Returns or raises within `timeout` (a check of the topics comes out of it)."""
        deadline = time.monotonic() + timeout
        if self.stuck:
            self._stop_if_topics_deleted(min(TOPIC_CHECK_S, timeout / 2))
        try:
            self.producer.flush(timeout=max(0.0, deadline - time.monotonic()))
        except KafkaTimeoutError:
            metrics.sink_error("kafka", "FlushTimeout")
            self._count_rejected()
            self.stuck = True
            waiting = self._unacknowledged()
            raise RetriableError(
                f"Kafka at {self.config.bootstrap_servers} did not acknowledge {waiting} record(s) "
                f"within {timeout:.0f} s"
            ) from None
        except KafkaError as error:  # kafka-python 3.0: UnknownError('Future not done') while it splits a batch
            metrics.sink_error("kafka", error)
            raise RetriableError(f"Kafka flush did not complete: {error}") from error
        self._count_rejected()
        if self.rejected and self.transaction is not None:  # the transaction fails with them: it is aborted
            error, self.rejected, self.pending = self.rejected[0], [], []
            raise self.transaction.failed(error, "deliver the transaction's records")
        if self.rejected:
            raise FatalError(f"Kafka rejected {len(self.rejected)} record(s), the first: {self.rejected[0]!r}")
        if not all(future.is_done for future in self.pending):
            self.stuck = True
            raise RetriableError(f"Kafka did not acknowledge records within {timeout:.0f} s")
        self.pending = []
        self.stuck = False

    def _unacknowledged(self) -> int:
        """How many records sent since the last successful flush the broker has not answered yet."""
        return sum(1 for future in self.pending if not future.is_done)

    def _stop_if_topics_deleted(self, timeout: float) -> None:
        """Raise `FatalError` when a broker answers within `timeout` that a topic of this sink is gone.

        Asked only while the producer holds a connection (a broker that is away is an outage, not a deleted
        topic) and at most once per `TOPIC_CHECK_INTERVAL_S`. kafka-python retries records for a missing topic
        until `delivery_timeout_ms` (a week), so without this question the bridge would wait that long.
        """
        now = time.monotonic()
        if now < self.next_topic_check or self.readiness() is not None:
            return
        self.next_topic_check = now + TOPIC_CHECK_INTERVAL_S
        missing = missing_topics(self.config, set(self.topics.values()), timeout)
        if missing:
            tables = sorted(table for table, topic in self.topics.items() if topic in missing)
            raise FatalError(
                f"Kafka topic(s) {', '.join(missing)} (table(s) {', '.join(tables)}) no longer exist at "
                f"{self.config.bootstrap_servers}: deleted while the bridge ran. {self._unacknowledged()} "
                "record(s) were not acknowledged and the checkpoint stays before them. The bridge does not "
                "recreate topics while it runs; create the topic again (or start with `create_topics: true`) "
                "and restart to resume after the checkpoint"
            )

    def _count_rejected(self) -> None:
        """Move the errors of records the broker rejected for good from `pending` to `rejected`, counting each
        once in `cdc_bridge_sink_errors_total`."""
        if any(future.exception is not None for future in self.pending):
            for future in self.pending:
                if future.exception is not None:
                    metrics.sink_error("kafka", future.exception)
                    self.rejected.append(future.exception)
            self.pending = [future for future in self.pending if future.exception is None]

    def readiness(self) -> str | None:
        """None while the producer holds a connection to a broker, else why not (served on `/ready`)."""
        return producer_readiness(getattr(self, "producer", None), self.config.bootstrap_servers)

    def close(self) -> None:
        producer = getattr(self, "producer", None)
        if producer is None or self.transaction is not None:  # a transaction's producer is closed by its owner
            return
        given_up = close_producer(producer, self._unacknowledged)
        if given_up:
            log.warning(
                "kafka sink closed with %d record(s) not acknowledged by Kafka at %s; the checkpoint stays "
                "before them and the next run sends them again",
                given_up,
                self.config.bootstrap_servers,
            )
