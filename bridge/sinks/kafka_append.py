"""Records handed to a kafka-python producer the way `KafkaProducer.send` hands them, minus the checks that
`send` repeats for every record and that the Kafka sink's records never need.

`send` (kafka-python 3.0) validates each header's type, runs the (absent) serializers, copies the cluster's
topic set and the topic's partitions twice to check an explicit partition, sizes the record in Python and
formats the producer's name for a debug line: about half of its cost (bench/README.md). The sink's records are
always bytes with `(str, bytes)` headers, for a partition taken from the producer's own metadata at the start of
the `write`, so what is left is what decides delivery, in `send`'s order: the producer is open, the record fits
`max_request_size` (else `MessageSizeTooLargeError`, as from `send`), the producer's metadata holds the topic
and the partition (asked once per topic-partition: the sender sends only to partitions whose leader it
knows; the sink asks for the topic's partitions at every `write`), the partition joins the open transaction,
the producer's accumulator takes it (batching, sequence numbers and retries stay kafka-python's) and the sender
wakes when a batch is full or new. A producer without those parts (another kafka-python version) gets `send`.
"""

from __future__ import annotations

from collections.abc import Callable

from kafka import TopicPartition
from kafka.errors import IllegalStateError, MessageSizeTooLargeError
from kafka.record.default_records import DefaultRecordBatchBuilder

Append = Callable[[str, int, bytes, "bytes | None", list], object]  # (topic, partition, key, value, headers)

_PARTS = ("_accumulator", "_sender", "_transaction_manager", "_closed", "config")


def record_appender(producer) -> Append:
    """A function handing one record to `producer`, returning its `FutureRecordMetadata` as `send` does."""
    if not _plain(producer):
        return lambda topic, partition, key, value, headers: producer.send(
            topic, value=value, key=key, headers=headers, partition=partition
        )
    accumulator = producer._accumulator
    wake_sender = producer._sender.wakeup
    transactions = producer._transaction_manager
    transactional = transactions is not None and transactions.is_transactional()
    max_size = producer.config["max_request_size"]
    estimate = DefaultRecordBatchBuilder.estimate_size_in_bytes
    partitions: dict[tuple[str, int], TopicPartition] = {}

    def append(topic: str, partition: int, key: bytes, value: bytes | None, headers: list) -> object:
        if producer._closed:
            raise IllegalStateError("KafkaProducer already closed!")
        size = estimate(key, value, headers)
        if size > max_size:
            raise MessageSizeTooLargeError(
                f"The message is {size} bytes when serialized which is larger than the maximum request size "
                "you have configured with the max_request_size configuration"
            )
        tp = partitions.get((topic, partition))
        if tp is None:
            tp = partitions[topic, partition] = _known(producer, topic, partition)
        if transactional:
            transactions.maybe_add_partition_to_transaction(tp)
        future, batch_is_full, new_batch, _ = accumulator.append(tp, None, key, value, headers)
        if batch_is_full or new_batch:
            wake_sender()
        return future

    return append


def _known(producer, topic: str, partition: int) -> TopicPartition:
    """The topic-partition, once the producer's metadata holds the topic (asked for and waited for as `send`
    does, `KafkaTimeoutError` after `max_block_ms`; the sender sends only to partitions it knows the leader of)
    and has that partition (else `ValueError`, as from `send`)."""
    if partition not in producer.partitions_for(topic):
        raise ValueError(f"Unrecognized partition {partition} for topic {topic}")
    return TopicPartition(topic, partition)


def _plain(producer) -> bool:
    """Whether `producer` has the parts `send` uses, no serializers and the v2 record format."""
    if not all(hasattr(producer, name) for name in _PARTS):
        return False
    config, accumulator_config = producer.config, getattr(producer._accumulator, "config", {})
    serializers = config.get("key_serializer") or config.get("value_serializer")
    return not serializers and accumulator_config.get("message_version") == 2 and "max_request_size" in config
