"""`record_appender` against a real broker: records reach the topic as `KafkaProducer.send` puts them there,
the checks `send` makes that decide delivery still hold, and a producer it does not know gets `send`."""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaProducer
from kafka.errors import IllegalStateError, MessageSizeTooLargeError
from kafka.serializer import Serializer

from bridge.sinks.kafka_append import record_appender
from tests.kafka_topic import new_topic, read_topic

PARTITIONS = 3


def _records(count: int) -> list[tuple[int, bytes, bytes | None, list]]:
    """(partition, key, value, headers); every fifth value None (a tombstone), headers of varying sizes."""
    return [
        (
            n % PARTITIONS,
            f"customer#{n}".encode(),
            None if n % 5 == 4 else bytes([n % 251]) * (n * 37 % 3000),
            [("op", b"u"), ("event_id", f"event-{n}".encode()), ("empty", b""), ("é", "ü".encode() * n)],
        )
        for n in range(count)
    ]


def _topic(bootstrap: str, name: str) -> str:
    return new_topic(bootstrap, name, PARTITIONS)


def _producer(bootstrap: str, **options) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **options)


def _contents(bootstrap: str, topic: str, committed: bool = False) -> dict[int, list]:
    by_partition: dict[int, list] = {}
    for record in read_topic(bootstrap, topic, committed=committed):
        by_partition.setdefault(record.partition, []).append((record.key, record.value, record.headers))
    return by_partition


def test_appended_records_land_as_send_puts_them(kafka_bootstrap):
    records = _records(400)
    sent, appended = _topic(kafka_bootstrap, "sent"), _topic(kafka_bootstrap, "appended")
    producer = _producer(kafka_bootstrap, batch_size=16384)  # small batches: many of them, new and full
    try:
        append = record_appender(producer)
        for partition, key, value, headers in records:
            producer.send(sent, value=value, key=key, headers=headers, partition=partition)
            future = append(appended, partition, key, value, headers)
        producer.flush(30)
        assert future.is_done and future.exception is None
        assert future.value.topic == appended and future.value.partition == records[-1][0]
    finally:
        producer.close()

    theirs, ours = _contents(kafka_bootstrap, sent), _contents(kafka_bootstrap, appended)
    assert sum(map(len, ours.values())) == len(records)
    assert ours == theirs


def test_a_record_over_max_request_size_is_refused_before_the_producer_takes_it(kafka_bootstrap):
    topic = _topic(kafka_bootstrap, "large")
    producer = _producer(kafka_bootstrap, max_request_size=10_000)
    try:
        append = record_appender(producer)
        with pytest.raises(MessageSizeTooLargeError) as theirs:
            producer.send(topic, value=b"x" * 9_950, key=b"k", headers=[("op", b"c")], partition=0)
        with pytest.raises(MessageSizeTooLargeError) as ours:
            append(topic, 0, b"k", b"x" * 9_950, [("op", b"c")])
        append(topic, 0, b"k", b"x" * 9_800, [("op", b"c")])  # what send takes, append takes
        producer.send(topic, value=b"x" * 9_800, key=b"k", headers=[("op", b"c")], partition=0)
        producer.flush(30)
    finally:
        producer.close()
    assert str(ours.value) == str(theirs.value)
    assert [len(record.value) for record in read_topic(kafka_bootstrap, topic)] == [9_800, 9_800]


def test_a_closed_producer_refuses_the_record(kafka_bootstrap):
    producer = _producer(kafka_bootstrap)
    append = record_appender(producer)
    producer.close()
    with pytest.raises(IllegalStateError):
        append(_topic(kafka_bootstrap, "closed"), 0, b"k", b"v", [])


def test_appended_records_belong_to_the_open_transaction(kafka_bootstrap):
    topic = _topic(kafka_bootstrap, "transaction")
    producer = _producer(kafka_bootstrap, transactional_id=f"append-{uuid.uuid4().hex[:8]}", retry_backoff_ms=10)
    try:
        producer.init_transactions()
        append = record_appender(producer)
        producer.begin_transaction()
        for partition in range(PARTITIONS):
            append(topic, partition, b"aborted", b"a", [])
        producer.flush(30)
        producer.abort_transaction()
        producer.begin_transaction()
        for partition in range(PARTITIONS):
            append(topic, partition, b"committed", b"c", [])
        producer.commit_transaction()
    finally:
        producer.close()
    contents = _contents(kafka_bootstrap, topic, committed=True)
    assert contents == {partition: [(b"committed", b"c", [])] for partition in range(PARTITIONS)}


class _OtherProducer:
    """A producer with `send` and nothing else of kafka-python 3.0's."""

    def __init__(self) -> None:
        self.sent: list = []

    def send(self, topic, value=None, key=None, headers=None, partition=None):
        self.sent.append((topic, partition, key, value, headers))
        return "future"


def test_a_producer_without_kafka_python_3_parts_gets_send():
    producer = _OtherProducer()
    assert record_appender(producer)("t", 2, b"k", b"v", [("op", b"d")]) == "future"
    assert producer.sent == [("t", 2, b"k", b"v", [("op", b"d")])]


class _Upper(Serializer):
    def serialize(self, topic, headers, value):
        return value.upper()


def test_a_producer_with_serializers_gets_send(kafka_bootstrap):
    topic = _topic(kafka_bootstrap, "serializer")
    producer = _producer(kafka_bootstrap, value_serializer=_Upper())
    try:
        record_appender(producer)(topic, 1, b"k", b"quiet", [])
        producer.flush(30)
    finally:
        producer.close()
    assert [record.value for record in read_topic(kafka_bootstrap, topic)] == [b"QUIET"]
