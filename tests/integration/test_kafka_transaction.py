"""The exactly-once transaction against the real broker: committed records show to read_committed readers,
aborted ones never; a second holder of the transactional id fences the first, which then stops."""

from __future__ import annotations

import uuid

import pytest

from bridge.errors import FatalError
from bridge.ops import metrics
from bridge.sinks.kafka import KafkaConfig
from bridge.sinks.transaction import KafkaTransaction
from tests.kafka_topic import new_topic, read_topic


@pytest.fixture
def topic(kafka_bootstrap) -> str:
    return new_topic(kafka_bootstrap, "tx", 2)


def transaction(bootstrap: str, transactional_id: str) -> KafkaTransaction:
    tx = KafkaTransaction(KafkaConfig(bootstrap_servers=bootstrap), transactional_id, timeout_s=20)
    tx.open()
    return tx


def values(bootstrap: str, topic: str, committed: bool) -> list[bytes]:
    return sorted(record.value for record in read_topic(bootstrap, topic, committed=committed))


def test_committed_records_show_and_aborted_ones_never(kafka_bootstrap, topic):
    tx = transaction(kafka_bootstrap, f"id-{uuid.uuid4().hex[:6]}")
    committed_before = metrics.value("cdc_bridge_transactions_total", {"outcome": "committed"}) or 0
    try:
        for n in range(5):
            tx.send(topic, f"k{n}".encode(), f"kept-{n}".encode())
        tx.commit()
        tx.send(topic, b"k9", b"aborted")
        tx.producer.flush()  # on the broker, inside the open transaction
        tx.abort()
    finally:
        tx.close()
    assert values(kafka_bootstrap, topic, committed=True) == [f"kept-{n}".encode() for n in range(5)]
    assert b"aborted" in values(kafka_bootstrap, topic, committed=False), "the aborted record reached the broker"
    assert metrics.value("cdc_bridge_transactions_total", {"outcome": "committed"}) == committed_before + 1
    assert tx.producer is None, "abort closes the producer: a new run starts with a new one"


def test_a_commit_with_nothing_sent_does_nothing(kafka_bootstrap):
    tx = transaction(kafka_bootstrap, f"id-{uuid.uuid4().hex[:6]}")
    try:
        tx.commit()
        assert tx.open_since is None
    finally:
        tx.close()


def test_a_second_holder_of_the_id_fences_the_first(kafka_bootstrap, topic):
    shared = f"id-{uuid.uuid4().hex[:6]}"
    first = transaction(kafka_bootstrap, shared)
    second = None
    try:
        first.send(topic, b"a", b"first-committed")
        first.commit()
        first.send(topic, b"a", b"first-open")
        first.producer.flush()
        second = transaction(kafka_bootstrap, shared)  # aborts what the first left open, and fences it
        second.send(topic, b"b", b"second")
        second.commit()
        with pytest.raises(FatalError) as fenced:
            first.send(topic, b"a", b"zombie")
            first.commit()
        assert "fenced" in str(fenced.value) and shared in str(fenced.value)
    finally:
        first.close()
        if second is not None:
            second.close()
    assert values(kafka_bootstrap, topic, committed=True) == [b"first-committed", b"second"]
