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

With the C module built, the record's size and the record itself are written in C (bridge/codec/csrc/record.c):
`install_record_writer` puts that writer in place of kafka-python's `DefaultRecordBatchBuilder.append`, for
every producer of the process. It writes the same bytes (tests/unit/test_speedups_record.py) and hands any
argument of another type to kafka-python's own code.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kafka import TopicPartition
from kafka.errors import IllegalStateError, MessageSizeTooLargeError
from kafka.record.default_records import DefaultRecordBatchBuilder, DefaultRecordMetadata

try:
    from bridge.codec._speedups import record_append, record_size
except ImportError:  # installed without a C compiler: kafka-python's Python code sizes and writes records
    record_append = record_size = None

Append = Callable[[str, int, bytes, "bytes | None", list], object]  # (topic, partition, key, value, headers)

_PARTS = ("_accumulator", "_sender", "_transaction_manager", "_closed", "config")
_BUILDER_STATE = {"_first_timestamp", "_max_timestamp", "_num_records", "_last_offset", "_batch_size", "_buffer"}
_APPEND_ARGUMENTS = ("self", "offset", "timestamp", "key", "value", "headers")
# what a record costs in a batch beyond its key, value and headers (kafka-python's `estimate_size_in_bytes`)
_OVERHEAD = DefaultRecordBatchBuilder.HEADER_STRUCT.size + DefaultRecordBatchBuilder.MAX_RECORD_OVERHEAD


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
    install_record_writer()

    def append(topic: str, partition: int, key: bytes, value: bytes | None, headers: list) -> object:
        if producer._closed:
            raise IllegalStateError("KafkaProducer already closed!")
        size = record_size(key, value, headers) if record_size is not None else NotImplemented
        size = estimate(key, value, headers) if size is NotImplemented else _OVERHEAD + size
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


def install_record_writer() -> bool:
    """Let kafka-python's v2 batches write their records with the C writer, for every producer of the process;
    True once they do. Idempotent. Without the C module, or with a kafka-python whose batch builder is not the
    one the writer was written for, kafka-python keeps its own (False)."""
    original = DefaultRecordBatchBuilder.append
    if getattr(original, "c_writer", False):
        return True
    slots = set(getattr(DefaultRecordBatchBuilder, "__slots__", ()))
    arguments = getattr(getattr(original, "__code__", None), "co_varnames", ())[: len(_APPEND_ARGUMENTS)]
    if record_append is None or not _BUILDER_STATE.issubset(slots) or arguments != _APPEND_ARGUMENTS:
        return False
    clock = time.time

    def append(self, offset, timestamp, key, value, headers):
        if timestamp is None:  # as kafka-python's own append takes it
            timestamp = int(clock() * 1000)
        written = record_append(self, offset, timestamp, key, value, headers, DefaultRecordMetadata)
        return original(self, offset, timestamp, key, value, headers) if written is NotImplemented else written

    append.c_writer = True
    append.__wrapped__ = original
    DefaultRecordBatchBuilder.append = append
    return True


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
