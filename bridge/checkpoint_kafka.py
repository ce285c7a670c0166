"""Checkpoints in a compacted Kafka topic, so that a bridge rescheduled onto another machine resumes where it was.

Record format (stable: other versions of cdc-bridge read it; built and parsed in bridge/checkpoint_records.py):
- key: UTF-8 JSON array, `["shard", stream_arn, shard_id]` or `["snapshot", table]`;
- value: UTF-8 JSON object, `{"version": 2, ...}` with the fields the file store writes for that entry (a shard:
  `sequence_number`, `finished` and, when known, `quiet_ms`; a snapshot: `started_ms`, `reason`, `done`,
  `segments`), or null: a tombstone, the entry is gone (a shard the bridge forgot, a snapshot no longer held).
Compaction keeps the latest record of each key, so the topic stays about as large as the checkpoint.

Reading: a `read_committed` consumer without a group reads every partition from its start to the end offsets
taken when the read starts, later records of a key replacing earlier ones. A record that is not a checkpoint
record, or one of another format version, stops the read with a `ConfigError`; the store then writes nothing.

Writing: `save` sends only the entries that changed since the last read or save, and a tombstone for each
entry no longer saved. With at-least-once delivery the store has a transactional producer of its own (id
`checkpoint.writer_id`): each save is one transaction, and `lock` takes the id, fencing a bridge that still
holds it (its next save is a `FatalError`). With exactly-once delivery the records go into the pipeline's open
transaction, which commits them together with the change records.

Errors: brokers that do not answer within `timeout_s` (one request, one transaction step, or a read that
stops making progress) are a `RetriableError`, in `lock`, `read` and `save` alike: a run backs off and opens
the store again, a read-only command exits 1. A topic that is missing (while `create_topics` is off) or not
compacted, and a record this cdc-bridge cannot read, are a `ConfigError` (exit 2). Being fenced is a
`FatalError`, and so is every later save of the fenced store.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError, for_code

from bridge.checkpoint import CheckpointStore, ShardCheckpoint, ShardKey, SnapshotCheckpoint
from bridge.checkpoint_records import VERSION, BadRecord, OtherVersion, parse_record, records_of
from bridge.errors import BridgeError, ConfigError, FatalError, RetriableError
from bridge.sinks.kafka_client import _connecting, client_options
from bridge.sinks.transaction import KafkaTransaction

if TYPE_CHECKING:
    from bridge.config import Config
    from bridge.sinks.kafka import KafkaConfig

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0  # longest wait for the brokers: one answer, one transaction step, or progress of a read
# Compaction never touches the active segment: an hourly roll keeps a start-up read to about an hour of saves.
TOPIC_CONFIGS = {"cleanup.policy": "compact", "segment.ms": str(3600 * 1000)}
UNKNOWN = b"?"  # the value of a key whose last save failed: what the topic holds of it is not known


class Transaction(Protocol):
    """The pipeline's open Kafka transaction (exactly-once delivery): it commits what is sent here."""

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> Any: ...


class KafkaCheckpointStore:
    """Checkpoints as records of a compacted Kafka topic: one record per (stream ARN, shard id) and one per
    table snapshot, keyed so compaction keeps the latest; a shard the bridge forgets gets a tombstone.

    `read` alone takes nothing (read-only commands work while a bridge runs, and fence nobody); a run calls
    `lock` first, then `read`, then `save` after each checkpoint interval, and `close` at its end.
    """

    def __init__(
        self,
        kafka: KafkaConfig,
        topic: str,
        writer_id: str,
        transaction: Transaction | None = None,
        *,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.kafka = kafka
        self.topic = topic
        self.writer_id = writer_id
        self.transaction = transaction
        self.timeout_s = timeout_s
        self._locked = False
        self._writer: KafkaTransaction | None = None  # the own producer (at-least-once), open between saves
        self._fenced: FatalError | None = None  # set once another bridge took the id: this store writes no more
        # What the topic holds, key -> value, as last read or saved (UNKNOWN: a failed save may have written
        # it); None before a successful read: nothing is written then.
        self._stored: dict[bytes, bytes] | None = None

    def __str__(self) -> str:
        return f"checkpoint topic {self.topic} at {self.kafka.bootstrap_servers}"

    def lock(self) -> None:
        """Own the checkpoint for this run, until `close()`: checks the topic (created compacted when the Kafka
        sink has `create_topics`, else a `ConfigError`; a topic that is not compacted is a `ConfigError`) and,
        without a shared transaction, takes the transactional id `writer_id`, fencing a bridge that holds it."""
        if self._locked:
            return
        with self._admin() as admin:
            self._check_topic(admin)
        if self.transaction is None:
            self._writer = self._open_writer()
        self._locked = True

    def close(self) -> None:
        """Release the transactional id's producer (idempotent); nothing is saved after this."""
        writer, self._writer = self._writer, None
        self._locked = False
        if writer is not None:
            writer.close()

    def load(self) -> dict[ShardKey, ShardCheckpoint]:
        """All stored shard checkpoints; none when the topic does not exist."""
        return self.read()[0]

    def read(self) -> tuple[dict[ShardKey, ShardCheckpoint], dict[str, SnapshotCheckpoint]]:
        """Shard checkpoints and snapshots by table, read to the end of the topic; none when the topic does not
        exist (a bridge that never ran). A record that is not a checkpoint record of this format is a
        `ConfigError` naming it; brokers that do not answer within `timeout_s` are a `RetriableError`."""
        self._stored = None
        stored: dict[bytes, bytes] = {}
        shards: dict[ShardKey, ShardCheckpoint] = {}
        snapshots: dict[str, SnapshotCheckpoint] = {}
        with self._admin() as admin:
            partitions = self._partitions(admin)
        with contextlib.closing(self._records(partitions)) as records:  # the consumer closes on errors too
            for record in records:
                try:
                    kind, name, checkpoint = parse_record(record.key, record.value)
                except BadRecord as error:
                    raise ConfigError(self._unreadable(record, error)) from None
                held = shards if kind == "shard" else snapshots
                if checkpoint is None:
                    held.pop(name, None)
                    stored.pop(record.key, None)
                else:
                    held[name] = checkpoint
                    stored[record.key] = record.value
        self._stored = stored
        return shards, snapshots

    def save(
        self, checkpoints: dict[ShardKey, ShardCheckpoint], snapshots: dict[str, SnapshotCheckpoint] | None = None
    ) -> None:
        """Make these the stored checkpoints, writing only what changed since the last read or save. Own
        producer: one transaction; `FatalError` when another bridge took the transactional id, `RetriableError`
        when the brokers do not confirm it (what this store takes as stored then stays as it was). Shared
        transaction: the records are sent into it, the pipeline commits them."""
        if not self._locked:
            raise RuntimeError("KafkaCheckpointStore.save() without lock()")
        if self._fenced is not None:
            raise self._fenced
        if self._stored is None:
            raise FatalError(f"{self} was not read (or could not be read): nothing is written to it")
        stored = self._stored
        records = records_of(checkpoints, snapshots or {})
        changes = [(key, value) for key, value in sorted(records.items()) if stored.get(key) != value]
        changes += [(key, None) for key in sorted(stored) if key not in records]
        if not changes:
            return
        try:
            self._send(changes)
        except BaseException:
            stored.update(dict.fromkeys((key for key, _ in changes), UNKNOWN))
            raise
        for key, value in changes:
            if value is None:
                del stored[key]
            else:
                stored[key] = value

    def _send(self, changes: list[tuple[bytes, bytes | None]]) -> None:
        if self.transaction is not None:
            for key, value in changes:
                self.transaction.send(self.topic, key, value)
            return
        if self._writer is None:  # the last save failed: a new producer aborts what the broker holds of it
            self._writer = self._open_writer()
        writer = self._writer
        try:
            for key, value in changes:
                writer.send(self.topic, key, value)
            writer.commit()
        except FatalError as error:  # fenced: another bridge took the id; never take it back
            self._writer, self._fenced = None, error
            writer.close()
            raise
        except BaseException:
            self._writer = None
            with contextlib.suppress(BridgeError):
                writer.abort()
            writer.close()
            raise

    def _open_writer(self) -> KafkaTransaction:
        writer = KafkaTransaction(self.kafka, self.writer_id, self.timeout_s)
        writer.open()
        return writer

    @contextlib.contextmanager
    def _admin(self) -> Iterator[KafkaAdminClient]:
        with _connecting(self.kafka, "connection"):
            admin = KafkaAdminClient(**client_options(self.kafka), request_timeout_ms=self._timeout_ms)
        try:
            yield admin
        except KafkaError as error:
            raise RetriableError(
                f"Kafka at {self.kafka.bootstrap_servers} did not answer about {self}: {error}"
            ) from None
        finally:
            admin.close()

    @property
    def _timeout_ms(self) -> int:
        return int(self.timeout_s * 1000)

    def _check_topic(self, admin: KafkaAdminClient) -> None:
        if self.topic not in admin.list_topics():
            if not self.kafka.create_topics:
                raise ConfigError(
                    f"checkpoint topic {self.topic} does not exist at {self.kafka.bootstrap_servers}: create it "
                    "(1 partition, cleanup.policy=compact) or set `create_topics: true` on the kafka sink"
                )
            topic = NewTopic(self.topic, 1, self.kafka.replication_factor, topic_configs=TOPIC_CONFIGS)
            with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile by another bridge
                admin.create_topics([topic])
            admin.wait_for_topics([self.topic], timeout_ms=self._timeout_ms)
            log.info("created checkpoint topic %s (cleanup.policy=compact)", self.topic)
        resource = ConfigResource(ConfigResourceType.TOPIC, self.topic, ["cleanup.policy"])
        answer = admin.describe_configs([resource], config_filter="all").get("topic", {}).get(self.topic, {})
        policy = answer.get("cleanup.policy", {}).get("value")
        if policy is None:
            raise RetriableError(f"Kafka at {self.kafka.bootstrap_servers} did not tell the cleanup.policy of {self}")
        if policy.replace(" ", "") != "compact":
            raise ConfigError(
                f"checkpoint topic {self.topic} has cleanup.policy={policy}: its records would be deleted after "
                f"retention.ms, and with them the checkpoint. Make it compacted (kafka-configs.sh --alter "
                f"--entity-type topics --entity-name {self.topic} --add-config cleanup.policy=compact) or set "
                "checkpoint.topic to a topic of its own"
            )

    def _partitions(self, admin: KafkaAdminClient) -> list[int]:
        """The topic's partitions; none when it does not exist (asked without creating it)."""
        (answer,) = admin.describe_topics([self.topic])
        error = for_code(answer["error_code"])
        if error is UnknownTopicOrPartitionError:
            return []
        if answer["error_code"]:
            raise RetriableError(f"Kafka at {self.kafka.bootstrap_servers} cannot describe {self}: {error.__name__}")
        return sorted(partition["partition_index"] for partition in answer["partitions"])

    def _records(self, partitions: list[int]) -> Iterator[Any]:
        """Every committed record of `partitions`, from their start to their end offsets as the read begins,
        in offset order per partition; `RetriableError` when the read makes no progress for `timeout_s`."""
        if not partitions:
            return
        options = {
            **client_options(self.kafka),
            "group_id": None,
            "enable_auto_commit": False,
            "isolation_level": "read_committed",
            "request_timeout_ms": self._timeout_ms,
            "allow_auto_create_topics": False,
        }
        with _connecting(self.kafka, "consumer"):
            consumer = KafkaConsumer(**options)
        # As for producers (make_producer), kafka-python 3.0 does not hand `allow_auto_create_topics` on to the
        # metadata its consumer requests: a topic deleted meanwhile must not come back as a topic that deletes.
        cluster_config = getattr(getattr(consumer, "_cluster", None), "config", None)
        if isinstance(cluster_config, dict):
            cluster_config["allow_auto_create_topics"] = False
        try:
            assigned = [TopicPartition(self.topic, partition) for partition in partitions]
            consumer.assign(assigned)
            starts = consumer.beginning_offsets(assigned, timeout_ms=self._timeout_ms)
            ends = consumer.end_offsets(assigned, timeout_ms=self._timeout_ms)
            for tp in assigned:
                consumer.seek(tp, starts[tp])
            yield from self._to_the_end(consumer, ends)
        except KafkaError as error:
            raise RetriableError(f"reading {self} failed: {error}") from None
        finally:
            consumer.close()

    def _to_the_end(self, consumer: KafkaConsumer, ends: dict[TopicPartition, int]) -> Iterator[Any]:
        """The records of the assigned partitions up to `ends`; `RetriableError` after `timeout_s` without
        progress (transaction markers move positions on without records, so positions are what counts)."""
        positions = {tp: consumer.position(tp) for tp in ends}
        deadline = time.monotonic() + self.timeout_s
        while any(positions[tp] < end for tp, end in ends.items()):
            for tp, records in consumer.poll(timeout_ms=200).items():
                for record in records:
                    if record.offset < ends[tp]:
                        yield record
            moved = {tp: consumer.position(tp) for tp in ends}
            if moved != positions:
                positions, deadline = moved, time.monotonic() + self.timeout_s
            elif time.monotonic() > deadline:
                raise RetriableError(f"{self} was not read to its end: no progress for {self.timeout_s:g} s")

    def _unreadable(self, record: Any, error: BadRecord) -> str:
        where = f"checkpoint topic {self.topic} partition {record.partition} offset {record.offset}"
        if isinstance(error, OtherVersion):
            return (
                f"{where} is a checkpoint record of {error}; this cdc-bridge reads version {VERSION}. Run the "
                "cdc-bridge that wrote it (or a newer one), or set checkpoint.topic to a topic of this bridge's own"
            )
        return (
            f"{where} is not a cdc-bridge checkpoint record: {error}. Nothing was written. If another program "
            "writes to this topic, set checkpoint.topic to a topic of the bridge's own; to start over, delete the "
            "topic (tables then start at their start_position)"
        )


def kafka_store(config: Config, transaction: Transaction | None = None) -> KafkaCheckpointStore:
    """The Kafka store of `config` (`checkpoint.topic` on the first kafka sink's cluster), whichever store the
    config names: `checkpoints --copy-to kafka` fills it from the file."""
    kafka = config.kafka
    if kafka is None:
        raise ConfigError("the Kafka checkpoint store lives on the Kafka sink's cluster: the config has no kafka sink")
    return KafkaCheckpointStore(kafka, config.checkpoint.topic, config.checkpoint.writer_id, transaction)


def store_for(config: Config, transaction: Transaction | None = None) -> CheckpointStore | KafkaCheckpointStore:
    """The checkpoint store `config.checkpoint` names (the Kafka one on the first kafka sink's cluster)."""
    if config.checkpoint.store == "kafka":
        return kafka_store(config, transaction)
    return CheckpointStore(config.checkpoint.path)
