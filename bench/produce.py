"""Produce-path benchmark: CPU per record of the Kafka sink (`KafkaSink.write` + `flush`) against a real broker.

`python -m bench.produce [--records 20000] [--runs 5]` starts a broker with `tests/services.py`'s `KafkaBroker`
(4 partitions), turns corpus records into change events the way the pipeline does (lazy events, images
transcoded beforehand), then times, in this one process, with `time.process_time` (every thread: the caller
and kafka-python's sender), the median of `--runs` runs of:

- `sink`: `KafkaSink.write` in batches of one `GetRecords` page (370 events) and `flush` every 4,000 events
  (about one checkpoint interval of the bridge), then a final flush: encode, key, headers, send, acks;
- `encode`: the sink's own work before `send` on the same events: `codec.encode` (splicing the transcoded
  images into the envelope) and `kafka_key`;
- `produce` = `sink` - `encode`: the part of the sink that is Kafka (headers, `send`, futures, flushes,
  the sender thread);
- `send`: bare `producer.send` + `flush` of the same keys, values and headers, prebuilt, with the sink's
  producer settings: the floor kafka-python sets;
- `murmur2`: kafka-python's pure-Python partitioner hash of the same keys (part of `send`).

`--gap-us 80` makes each run look more like the bridge, where the pipeline thread spends some 50-170 us per
record reading, normalizing and transcoding between two `write` calls: after each page the main thread
spins for that long (its CPU time is subtracted), so that kafka-python's sender thread works while the
caller does something else, as it does in the bridge, rather than competing with back-to-back sends.

Prints one line per measurement and a JSON line with every figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from kafka.partitioner import murmur2

from bench import corpus
from bench.process import ROOT
from bridge.codec.avro import EnvelopeCodec
from bridge.codec.keys import kafka_key
from bridge.normalize import to_change_event
from bridge.sinks.base import TableEncoding
from bridge.sinks.kafka import KafkaConfig, KafkaSink
from bridge.sinks.kafka_client import ensure_topics, make_producer

PARTITIONS = 4
PAGE = 370  # records per GetRecords page of the corpus (1 MB)
FLUSH_EVERY = 4_000  # events between flushes: about one checkpoint interval at the bridge's rate
KEY_NAMES = ("pk", "sk")


def events(count: int, encoding: TableEncoding) -> list:
    """Corpus records as the pipeline hands them to the sink: lazy events with both images transcoded."""
    out = []
    for shard, record in corpus.records(count):
        event = to_change_event(
            record,
            table=corpus.TABLE,
            stream_arn=corpus.STREAM_ARN,
            shard_id=corpus.shard_id(shard),
            key_names=KEY_NAMES,
            region=corpus.REGION,
            lazy=True,
        )
        encoding.codec.transcoder.sides(event)
        out.append(event)
    return out


class Gap:
    """The simulated pipeline work between two pages: spins the calling thread, and keeps count of it."""

    def __init__(self, us_per_record: float) -> None:
        self.us_per_record = us_per_record
        self.spent = 0.0

    def __call__(self, records: int) -> None:
        if not self.us_per_record:
            return
        started = time.thread_time()
        end = started + self.us_per_record * records / 1e6
        while time.thread_time() < end:
            pass
        self.spent += time.thread_time() - started


def cpu(work, gap: Gap | None = None) -> float:
    """CPU seconds of this process (all threads) spent in `work()`, less the simulated gaps."""
    gc.collect()
    started = time.process_time()
    work()
    return time.process_time() - started - (gap.spent if gap else 0.0)


def sink_run(config: KafkaConfig, encoding: TableEncoding, batch: list, gap: Gap) -> float:
    sink = KafkaSink(config, {corpus.TABLE: encoding})
    sink.open()
    try:

        def work() -> None:
            written = 0
            for start in range(0, len(batch), PAGE):
                page = batch[start : start + PAGE]
                sink.write(page)
                written += len(page)
                if written >= FLUSH_EVERY:
                    sink.flush(60)
                    written = 0
                gap(len(page))
            sink.flush(60)

        return cpu(work, gap)
    finally:
        sink.close()


def encode_run(encoding: TableEncoding, batch: list) -> float:
    def work() -> None:
        ts_ms = int(time.time() * 1000)
        for event in batch:
            encoding.codec.encode(event, ts_ms)
            kafka_key(event, encoding.key)

    return cpu(work)


def send_run(config: KafkaConfig, prebuilt: list, gap: Gap) -> float:
    producer = make_producer(config)
    topic = config.topic.format(table=corpus.TABLE)
    try:

        def work() -> None:
            send = producer.send
            for number, (key, value, headers) in enumerate(prebuilt, 1):
                send(topic, value=value, key=key, headers=headers)
                if number % FLUSH_EVERY == 0:
                    producer.flush(60)
                if number % PAGE == 0:
                    gap(PAGE)
            producer.flush(60)

        return cpu(work, gap)
    finally:
        producer.close(timeout=5)


def murmur_run(prebuilt: list) -> float:
    keys = [key for key, _, _ in prebuilt]
    return cpu(lambda: [murmur2(key) for key in keys])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.produce", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--gap-us", type=float, default=0, help="simulated pipeline CPU per record between pages")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from tests.services import KafkaBroker

    encoding = TableEncoding(EnvelopeCodec())
    batch = events(args.records, encoding)
    ts_ms = int(time.time() * 1000)
    prebuilt = [
        (
            kafka_key(event, encoding.key),
            encoding.codec.encode(event, ts_ms),
            [
                ("op", event.op.encode()),
                ("table", event.table.encode()),
                ("event_id", event.event_id.encode()),
                ("sequence_number", event.position.sequence_number.encode()),
                ("schema_fingerprint", encoding.codec.fingerprint.hex().encode()),
                ("content_type", b"application/vnd.apache.avro"),
            ],
        )
        for event in batch
    ]
    size = statistics.mean(len(value) for _, value, _ in prebuilt)
    gc.freeze()  # like `cdc-bridge run`: the events stay alive for every run
    gc.set_threshold(100_000, 50, 100)

    with tempfile.TemporaryDirectory(prefix="cdc-produce-") as temp:
        broker = KafkaBroker(Path(temp), partitions=PARTITIONS)
        broker.start()
        try:

            def config() -> KafkaConfig:
                topic = f"produce-{uuid.uuid4().hex[:8]}"
                return KafkaConfig(
                    bootstrap_servers=broker.bootstrap, topic=topic, create_topics=True, partitions=PARTITIONS
                )

            times: dict[str, list[float]] = {"sink": [], "encode": [], "send": [], "murmur2": []}
            for _ in range(args.runs):  # interleaved, so that load from elsewhere spreads over all of them
                times["sink"].append(sink_run(config(), encoding, batch, Gap(args.gap_us)))
                times["encode"].append(encode_run(encoding, batch))
                send_config = config()
                ensure_topics(send_config, [send_config.topic])
                times["send"].append(send_run(send_config, prebuilt, Gap(args.gap_us)))
                times["murmur2"].append(murmur_run(prebuilt))
        finally:
            broker.stop()

    us = {name: statistics.median(values) / args.records * 1e6 for name, values in times.items()}
    us["produce"] = us["sink"] - us["encode"]
    print(
        f"{args.records} events, values {size:.0f} B on average, gap {args.gap_us:g} us/record, "
        f"medians of {args.runs} runs (CPU us/record):"
    )
    for name in ("sink", "encode", "produce", "send", "murmur2"):
        spread = times.get(name)
        low_high = (
            f"  [{min(spread) / args.records * 1e6:.1f} .. {max(spread) / args.records * 1e6:.1f}]" if spread else ""
        )
        print(f"  {name:<8} {us[name]:7.1f}{low_high}")
    print(
        json.dumps(
            {
                "records": args.records,
                "runs": args.runs,
                "gap_us": args.gap_us,
                "value_bytes": round(size),
                **{f"{name}_us": round(value, 1) for name, value in us.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
