"""The Kafka sink's produce path against a real broker: partitions, send latency, records the broker refuses."""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from bridge.codec import EnvelopeCodec
from bridge.errors import FatalError, RetriableError
from bridge.ops import metrics
from bridge.sinks.base import TableEncoding
from bridge.sinks.kafka import KafkaConfig, KafkaSink
from tests.change_events import change
from tests.kafka_topic import read_topic
from tests.polling import wait_for

ENCODINGS = {"Phones": TableEncoding(EnvelopeCodec(), "partition")}


def _sink(bootstrap: str, topic: str, **settings) -> KafkaSink:
    sink = KafkaSink(KafkaConfig(bootstrap_servers=bootstrap, topic=topic, **settings), ENCODINGS)
    sink.open()
    return sink


def _latency_count() -> float:
    return metrics.value("cdc_bridge_kafka_send_latency_seconds_count") or 0.0


def test_each_key_lands_on_the_partition_kafkas_default_partitioner_picks(kafka_bootstrap):
    topic = f"partitions-{uuid.uuid4().hex[:8]}"
    reference = f"{topic}-reference"
    companies = [f"company-{n}" for n in range(60)]
    sink = _sink(kafka_bootstrap, topic, create_topics=True, partitions=5)
    try:
        sink.write([change(n, company=company) for n, company in enumerate(companies)])
        sink.flush(30)
    finally:
        sink.close()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(reference, 5, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)  # kafka-python's default partitioner
    try:
        for company in companies:
            producer.send(reference, key=company.encode(), value=b"x")
        producer.flush(30)
    finally:
        producer.close()

    ours = {record.key: record.partition for record in read_topic(kafka_bootstrap, topic)}
    expected = {record.key: record.partition for record in read_topic(kafka_bootstrap, reference)}
    assert len(ours) == len(companies) and len(set(ours.values())) == 5
    assert ours == expected


def test_send_latency_is_observed_once_per_partition_of_each_write(kafka_bootstrap):
    topic = f"latency-{uuid.uuid4().hex[:8]}"
    sink = _sink(kafka_bootstrap, topic, create_topics=True, partitions=3)
    writes = [[change(n, company=f"c{n % 7}") for n in range(20)], [change(n, company="c1") for n in range(20, 25)]]
    try:
        count_before = _latency_count()
        sum_before = metrics.value("cdc_bridge_kafka_send_latency_seconds_sum") or 0.0
        for events in writes:
            sink.write(events)
        sink.flush(30)
        count = _latency_count() - count_before
        total = (metrics.value("cdc_bridge_kafka_send_latency_seconds_sum") or 0.0) - sum_before
    finally:
        sink.close()

    partition_of = {record.key: record.partition for record in read_topic(kafka_bootstrap, topic)}
    groups = sum(len({partition_of[event.keys["Company"].encode()] for event in events}) for events in writes)
    assert len(set(partition_of.values())) > 1  # the first write spans several partitions
    assert count == groups
    assert total > 0


def test_a_record_the_topic_refuses_makes_flush_fatal_and_counts_the_error(kafka_bootstrap):
    topic = f"refusing-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:  # the sink's max_request_size (1 MB) lets the record go; the topic's max.message.bytes refuses it
        admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "2000"})])
    finally:
        admin.close()
    labels = {"sink": "kafka", "error": "MessageSizeTooLargeError"}
    errors_before = metrics.value("cdc_bridge_sink_errors_total", labels) or 0.0
    sink = _sink(kafka_bootstrap, topic)
    try:
        sink.write([change(1, extra={"Blob": "x" * 5000})])

        def final_error() -> FatalError | None:
            try:
                sink.flush(30)
            except RetriableError:  # kafka-python may first report the batch it is splitting: retriable, then final
                return None
            except FatalError as error:
                return error
            pytest.fail("flush returned although the broker refused the record")

        first = wait_for(final_error, 60, "a FatalError from flushing a record the broker refused", interval=0)
        errors = (metrics.value("cdc_bridge_sink_errors_total", labels) or 0.0) - errors_before
        with pytest.raises(FatalError):  # and stays fatal: nothing after the last checkpoint may be trusted
            sink.flush(30)
        errors_after_second_flush = (metrics.value("cdc_bridge_sink_errors_total", labels) or 0.0) - errors_before
    finally:
        sink.close()

    assert "MessageSizeTooLargeError" in str(first)
    assert errors == 1 and errors_after_second_flush == 1  # each refused record is counted once
    assert read_topic(kafka_bootstrap, topic) == []
