"""Snapshot benchmark: a table's parallel Scan -> the real bridge (`snapshot: initial_only`) -> a real Kafka broker.

The local endpoint (`python -m bench.fakeaws --records 0 --items N`) holds a table of N items
(`corpus.table_item`, unique partition keys) and an idle stream of open shards. The bridge runs as its own
process with one table, `snapshot: initial_only` and the default snapshot settings (4 segments, consistent
reads, 1 s handoff margin): it positions the stream at its latest records, scans, writes every item as an
`op: r` envelope to a 4-partition topic it creates, and exits 0 once the snapshot is done. Items/s is N over
the process's whole wall time, start-up and final flush included. The benchmark then reads the topic back:
exactly N records, each item once (by its Kafka key, the partition key), and every `SAMPLE`-th value decoded
and compared with the item as the naive chain writes it. The naive loop (`bench/scanloop.py`) runs against
the same endpoint code and broker in the same run.
"""

from __future__ import annotations

import io
import time
import uuid
from pathlib import Path

import fastavro
from boto3.dynamodb.types import TypeDeserializer
from kafka import KafkaConsumer, TopicPartition

from bench import corpus
from bench.endtoend import bridge_config, failed, figures, run_baseline
from bench.process import Service, measure, python
from bench.scanloop import naive_row
from bridge.codec.avro import decode_value, envelope_schema

SAMPLE = 97  # every SAMPLE-th item's value is decoded and compared in full
READ_BACK_S = 300.0


def _server(items: int) -> Service:
    return Service(python("-m", "bench.fakeaws", "--records", "0", "--items", str(items)))


def run_bridge(bootstrap: str, items: int, workdir: Path, name: str) -> dict:
    """The bridge's snapshot of a table of `items` items; raises unless the topic then holds each item once."""
    server = _server(items)
    try:
        topic = f"bench-{name.replace('/', '-')}-{uuid.uuid4().hex[:6]}"
        config = bridge_config(
            workdir, f"http://127.0.0.1:{server.port}", bootstrap, topic, table={"snapshot": "initial_only"}
        )
        run = measure(python("-m", "bridge", "--log-level", "WARNING", "run", "--config", str(config)))
    finally:
        server.stop()
    if run.returncode != 0:
        raise failed("the bridge", run)
    check_topic(bootstrap, topic, items)
    return figures(name, items, run)


def run_naive_loop(bootstrap: str, items: int) -> dict:
    """The naive scan loop over a table of `items` items; raises unless the topic then holds each item once."""
    topic, run = run_baseline(_server(items), "bench.scanloop", bootstrap, "the naive scan loop")
    check_topic(bootstrap, topic, items)
    return figures("snapshot/naive-scan", items, run)


def check_topic(bootstrap: str, topic: str, items: int) -> None:
    """Raise unless `topic` holds exactly one record per item of a table of `items` items, keyed by its partition
    key, and every `SAMPLE`-th value decodes to the `op: r` row of its item with the item's values."""
    expected = _Expected()
    seen = bytearray(items)
    count = 0
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        deadline = time.monotonic() + READ_BACK_S
        while any(consumer.position(p) < ends[p] for p in partitions):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topic}: read {count} of {sum(ends.values())} records in {READ_BACK_S:.0f} s")
            for records in consumer.poll(timeout_ms=1000, max_records=10_000).values():
                for record in records:
                    count += 1
                    number = _number(record.key)
                    if not 0 <= number < items:
                        raise RuntimeError(f"{topic}: a record of no item: key {record.key!r}")
                    if seen[number]:
                        raise RuntimeError(f"{topic}: item {number} (key {record.key!r}) was written twice")
                    seen[number] = 1
                    if number % SAMPLE == 0:
                        expected.check(number, record.value, topic)
    finally:
        consumer.close()
    if count != items:
        missing = [n for n in range(items) if not seen[n]][:5]
        raise RuntimeError(f"{topic} holds {count} records for {items} items (missing, first ones: {missing})")


def _number(key: bytes | None) -> int:
    try:
        return int(key.removeprefix(b"customer#"))
    except (AttributeError, ValueError):
        return -1


class _Expected:
    """The decoded `op: r` rows items should come out as: the naive chain's, so that a met ratio compares two
    chains that write the same data."""

    def __init__(self) -> None:
        self.pool = corpus.table_pool(binary="bytes")
        self.schema = envelope_schema()
        self.deserializer = TypeDeserializer()

    def check(self, number: int, value: bytes, topic: str) -> None:
        out = io.BytesIO()
        row = naive_row(corpus.table_item(number, self.pool), self.deserializer, started_ms=0, index=0)
        fastavro.schemaless_writer(out, self.schema, row)
        want = decode_value(out.getvalue(), self.schema)
        got = decode_value(value)
        for field in ("op", "keys", "before", "after"):
            if got[field] != want[field]:
                raise RuntimeError(
                    f"{topic}: item {number} has {field} {got[field]!r:.300}, expected {want[field]!r:.300}"
                )
        if not got["source"]["snapshot"]:
            raise RuntimeError(f"{topic}: item {number} is not marked as a snapshot read")
