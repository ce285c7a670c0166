"""Reading a whole topic with a plain kafka-python consumer, as a downstream user would."""

from __future__ import annotations

import time

from kafka import KafkaConsumer, TopicPartition


def read_topic(bootstrap: str, topic: str, timeout: float = 30) -> list:
    """Every record of `topic` up to its current end offsets, in partition order (ConsumerRecords)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=1000)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        ends = consumer.end_offsets(assigned)
        records: list = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in assigned):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {timeout} s")
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()
