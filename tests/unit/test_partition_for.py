"""The Kafka sink picks a key's partition as kafka-python's (and Java's) default partitioner does.

Consumers and other producers that key by the same partition key rely on it: the same key lands in the same
partition whoever wrote it. The C `partition` and the Python fallback must agree with kafka-python's murmur2
for keys of every length (the tail of 1 to 3 bytes has its own branch) and for any partition count.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner import murmur2

from bridge.sinks import kafka as kafka_sink
from bridge.sinks.kafka import c_partition, partition_for


def kafka_python(key: bytes, partitions: list[int]) -> int:
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]


def test_the_install_compiled_the_c_partitioner():
    assert c_partition is not None, "bridge/codec/csrc/ was not built: is a C compiler installed?"


@given(st.binary(max_size=64), st.integers(1, 1000))
def test_c_partition_is_kafka_pythons_choice(key, count):
    partitions = list(range(count))
    assert partition_for(key, partitions) == kafka_python(key, partitions)


@given(st.binary(max_size=64), st.integers(1, 50))
def test_python_fallback_is_kafka_pythons_choice(key, count):
    partitions = list(range(0, 2 * count, 2))  # the sorted ids, not necessarily 0..n-1
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kafka_sink, "c_partition", None)
        assert partition_for(key, partitions) == kafka_python(key, partitions)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        c_partition(b"key", 0)
    with pytest.raises(TypeError):
        c_partition("key", 3)
