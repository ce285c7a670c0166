"""Latency benchmark: moto server `put_item` at 50 writes/s -> the bridge -> Kafka -> a consumer.

The bridge runs as its own process (`python -m bridge run`) with the default poll interval. Each write is
a ~1 KB item from the corpus with its own id; its latency is the time from just before `put_item` is
called to the moment a consumer in this process receives the Kafka record of that id. The writer keeps a
fixed schedule (write i at start + i / rate), so a slow bridge does not slow the writes down.

`exactly_once`: the bridge with `delivery: exactly_once` and the default checkpoint interval (1 s, what users
get), read by a `read_committed` consumer: a record counts when its transaction commits, so its latency
includes the wait for the end of its interval and the commit.

`BENCH_LATENCY_SECONDS` shortens the run for development (default 60, as the benchmark is specified).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import boto3
from kafka import KafkaConsumer

from bench import corpus
from bench.endtoend import bridge_config
from bench.process import ROOT, environment, python
from tests.services import MotoServer
from tests.tables import create_stream_table

RATE = 50
TABLE = "Latency"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _create_table(dynamodb) -> None:
    create_stream_table(dynamodb, TABLE, key="id")


class _Consumer(threading.Thread):
    """Notes when each key first arrives on the topic (`committed`: as a `read_committed` consumer)."""

    def __init__(self, bootstrap: str, topic: str, committed: bool) -> None:
        super().__init__(daemon=True)
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=20,
            enable_auto_commit=False,
            metadata_max_age_ms=500,  # find the topic soon after the bridge creates it
            isolation_level="read_committed" if committed else "read_uncommitted",
        )
        self.topic = topic

    def run(self) -> None:
        self.consumer.subscribe(pattern=f"^{self.topic}$")
        while not self.stop.is_set():
            for records in self.consumer.poll(timeout_ms=50).values():
                now = time.monotonic()
                for record in records:
                    self.seen.setdefault(record.key.decode(), now)
        self.consumer.close()


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def run(bootstrap: str, workdir: Path, seconds: float | None = None, *, exactly_once: bool = False) -> dict:
    """Write at `RATE`/s for `seconds` and return latency percentiles (seconds) of the records seen
    (`exactly_once`: with `delivery: exactly_once`, the records of committed transactions)."""
    seconds = seconds if seconds is not None else float(os.environ.get("BENCH_LATENCY_SECONDS", "60"))
    for name, value in environment().items():
        if name.startswith("AWS_"):
            os.environ.setdefault(name, value)
    moto = MotoServer(workdir)
    moto.start()
    bridge = consumer = None
    log = tempfile.TemporaryFile()  # noqa: SIM115  # closed in the finally below
    try:
        dynamodb = boto3.client("dynamodb", endpoint_url=moto.endpoint, region_name="us-east-1")
        _create_table(dynamodb)
        topic = f"bench-latency-{uuid.uuid4().hex[:6]}"
        config = bridge_config(workdir, moto.endpoint, bootstrap, topic, exactly_once=exactly_once)
        config.write_text(config.read_text().replace(corpus.TABLE, TABLE))
        bridge = subprocess.Popen(
            python("-m", "bridge", "--log-level", "WARNING", "run", "--config", str(config)),
            env=environment(),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        consumer = _Consumer(bootstrap, topic, committed=exactly_once)
        consumer.start()
        template = next(record for _, record in corpus.records(1, binary="bytes"))["dynamodb"]["NewImage"]
        dynamodb.put_item(TableName=TABLE, Item={**template, "id": {"S": "warm-up"}})
        try:
            _wait_for(lambda: "warm-up" in consumer.seen, 120, "the bridge to deliver a first record")
        except RuntimeError:
            log.seek(0)
            raise RuntimeError(f"no first record; bridge log:\n{log.read().decode()[-3000:]}") from None
        sent: dict[str, float] = {}
        count = round(RATE * seconds)
        start = time.monotonic()
        for index in range(count):
            delay = start + index / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            key = f"item-{index:06d}"
            sent[key] = time.monotonic()
            dynamodb.put_item(TableName=TABLE, Item={**template, "id": {"S": key}})
        write_rate = count / (time.monotonic() - start)
        with contextlib.suppress(RuntimeError):  # what is still missing then is reported as missing
            _wait_for(lambda: sent.keys() <= consumer.seen.keys(), 30, "every write to reach Kafka")
        latencies = [consumer.seen[key] - at for key, at in sent.items() if key in consumer.seen]
        if bridge.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"the bridge exited {bridge.returncode}:\n{log.read().decode()[-3000:]}")
    finally:
        if consumer is not None:
            consumer.stop.set()
        if bridge is not None and bridge.poll() is None:
            os.killpg(bridge.pid, signal.SIGTERM)
            bridge.wait(timeout=60)
        moto.stop()
        log.close()
    return {
        "benchmark": "latency/exactly-once" if exactly_once else "latency",
        "records": len(sent),
        "missing": len(sent) - len(latencies),
        "seconds": round(seconds, 1),
        "write_rate_per_s": round(write_rate, 1),
        "p50_s": round(_percentile(latencies, 0.50), 3),
        "p95_s": round(_percentile(latencies, 0.95), 3),
        "p99_s": round(_percentile(latencies, 0.99), 3),
        "max_s": round(max(latencies), 3),
    }
