"""Reading a whole topic with a plain kafka-python consumer, as a downstream user would."""

from __future__ import annotations

import uuid

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from tests.polling import wait_for


def new_topic(bootstrap: str, prefix: str, partitions: int) -> str:
    """A topic of its own for one test, `prefix-<random>`, with `partitions` partitions; returns its name."""
    topic = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()
    return topic


def read_topic(bootstrap: str, topic: str, timeout: float = 30, committed: bool = False) -> list:
    """Every record of `topic` up to its current end offsets, in partition order (ConsumerRecords);
    `committed`: as a `read_committed` consumer sees them (no records of open or aborted transactions)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
        isolation_level="read_committed" if committed else "read_uncommitted",
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:  # the topic does not exist (yet)
            return []
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        ends = consumer.end_offsets(assigned)
        records: list = []

        def read_to_end() -> bool:
            if any(consumer.position(tp) < ends[tp] for tp in assigned):
                for batch in consumer.poll(timeout_ms=500).values():  # waits up to 0.5 s for records
                    records.extend(batch)
            return all(consumer.position(tp) >= ends[tp] for tp in assigned)

        wait_for(read_to_end, timeout, f"{topic} to be read to its end", interval=0)
        return records
    finally:
        consumer.close()
