"""Codec benchmark: normalize + Avro-encode stream records, against the naive Avro and JSON chains.

Chains (each runs alone in a fresh process so that its peak RSS is its own):
- `normalize`, `encode`, `normalize+encode`: the bridge's path. Input is what the bridge's read path hands
  on (raw `GetRecords` JSON: binaries as base64 text); `encode` is `EnvelopeCodec.encode` on events
  normalized beforehand (all kept in memory); the other chains handle one record at a time and keep nothing,
  like the naive chains.
- `transcode`: the Kafka path of the bridge: lazy events from records whose images are JSON text, as the
  read path hands them on (`bridge.normalize.RawImage`), encoded by `EnvelopeCodec.encode`, which writes
  the images from their text (bridge/codec/csrc/). Cutting the images out of the page is reading's
  work and is not timed here.
- `naive-avro`: boto3's `TypeDeserializer` on records shaped as boto3 returns them, then
  `fastavro.schemaless_writer` on the same generic envelope schema, with no union branch hints.
- `naive-json`: `TypeDeserializer`, then `json.dumps(default=str)` of the same envelope.

Times are CPU seconds of the process (`time.process_time`): one core, and not skewed by other load.

Run one chain: `python -m bench.codec --chain normalize+encode --records 100000` (prints one JSON line).
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import time
from decimal import Decimal

import fastavro
import orjson
from boto3.dynamodb.types import Binary, TypeDeserializer

from bench import corpus
from bridge.codec.avro import EnvelopeCodec, decode_value, envelope_schema
from bridge.normalize import INT64_MAX, INT64_MIN, RawImage, to_change_event

OURS = ("normalize", "encode", "normalize+encode", "transcode")
BASELINES = ("naive-avro", "naive-json")
KEY_NAMES = ("pk", "sk")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _events(records: list[dict]) -> list:
    return [
        to_change_event(r, table=corpus.TABLE, stream_arn=corpus.STREAM_ARN, shard_id="s", key_names=KEY_NAMES)
        for r in records
    ]


def naive_value(value):
    """A `TypeDeserializer` value in the generic schema's shape, leaving the union branch to fastavro (the naive
    chains' way; also bench/scanloop.py's)."""
    if isinstance(value, Decimal):
        if value == value.to_integral_value() and INT64_MIN <= value <= INT64_MAX:
            return {"value": int(value)}
        sign, digits, exponent = value.as_tuple()
        unscaled = int("".join(map(str, digits))) * (-1 if sign else 1)
        raw = unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)
        return {"value": {"scale": -exponent, "value": raw}}
    if isinstance(value, Binary):
        return {"value": value.value}
    if isinstance(value, set):
        first = next(iter(value))
        if isinstance(first, str):
            return {"value": {"values": sorted(value)}}
        if isinstance(first, Binary):
            return {"value": {"values": sorted(b.value for b in value)}}
        return {"value": {"values": [naive_value(v) for v in sorted(value)]}}
    if isinstance(value, dict):
        return {"value": {k: naive_value(v) for k, v in value.items()}}
    if isinstance(value, list):
        return {"value": [naive_value(v) for v in value]}
    return {"value": value}


def _str(value) -> str:
    """`json.dumps(default=str)`, except that boto3's `Binary` needs its bytes taken out first."""
    return str(value.value if isinstance(value, Binary) else value)


_OPS = {"INSERT": "c", "MODIFY": "u", "REMOVE": "d"}


def naive_envelope(record: dict, deserializer: TypeDeserializer, avro: bool) -> dict:
    """The envelope the naive chains build from a boto3-shaped record (`avro`: in the schema's shape)."""
    data = record["dynamodb"]

    def image(name: str):
        raw = data.get(name)
        if raw is None:
            return None
        plain = {k: deserializer.deserialize(v) for k, v in raw.items()}
        return {k: naive_value(v) for k, v in plain.items()} if avro else plain

    return {
        "op": _OPS[record["eventName"]],
        "keys": image("Keys"),
        "before": image("OldImage"),
        "after": image("NewImage"),
        "source": {
            "table": corpus.TABLE,
            "region": record["awsRegion"],
            "stream_arn": corpus.STREAM_ARN,
            "shard_id": "s",
            "sequence_number": data["SequenceNumber"],
            "event_id": record["eventID"],
            "approximate_creation_ms": int(data["ApproximateCreationDateTime"].timestamp() * 1000),
            "ttl_expired": False,
            "snapshot": False,
            "current_item": False,
            "view_type": data["StreamViewType"],
        },
        "ts_ms": 1,
    }


def run_chain(chain: str, count: int) -> dict:
    """Time one chain over the first `count` corpus records; returns the figures."""
    binary = "bytes" if chain in BASELINES else "base64"
    records = [record for _, record in corpus.records(count, binary=binary)]
    codec = EnvelopeCodec()
    deserializer = TypeDeserializer()
    schema = envelope_schema()
    out = io.BytesIO()
    if chain == "encode":
        events = _events(records)
        start = time.process_time()
        for event in events:
            codec.encode(event, 1)
    elif chain == "normalize":
        start = time.process_time()
        for record in records:
            to_change_event(record, table=corpus.TABLE, stream_arn=corpus.STREAM_ARN, shard_id="s", key_names=KEY_NAMES)
    elif chain == "normalize+encode":
        start = time.process_time()
        for record in records:
            event = to_change_event(
                record, table=corpus.TABLE, stream_arn=corpus.STREAM_ARN, shard_id="s", key_names=KEY_NAMES
            )
            codec.encode(event, 1)
    elif chain == "transcode":
        for record in records:
            data = record["dynamodb"]
            for side in ("NewImage", "OldImage"):
                if side in data:
                    data[side] = RawImage(orjson.dumps(data[side]))
        start = time.process_time()
        for record in records:
            event = to_change_event(
                record, table=corpus.TABLE, stream_arn=corpus.STREAM_ARN, shard_id="s", key_names=KEY_NAMES, lazy=True
            )
            codec.encode(event, 1)
    elif chain == "naive-avro":
        start = time.process_time()
        for record in records:
            out.seek(0)
            fastavro.schemaless_writer(out, schema, naive_envelope(record, deserializer, avro=True))
    elif chain == "naive-json":
        start = time.process_time()
        for record in records:
            json.dumps(naive_envelope(record, deserializer, avro=False), default=_str)
    else:
        raise SystemExit(f"unknown chain {chain!r}")
    seconds = time.process_time() - start
    return {
        "benchmark": f"codec/{chain}",
        "records": count,
        "seconds": round(seconds, 3),
        "records_per_s": round(count / seconds),
        "us_per_record": round(seconds / count * 1e6, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def check_same_output(count: int = 300) -> None:
    """The naive Avro chain and the bridge's codec must write the same data, or the comparison is void."""
    deserializer = TypeDeserializer()
    codec = EnvelopeCodec(wire_format="raw")
    schema = envelope_schema()
    wire = [r for _, r in corpus.records(count)]
    boto = [r for _, r in corpus.records(count, binary="bytes")]
    for ours, theirs, event in zip(wire, boto, _events(wire), strict=True):
        out = io.BytesIO()
        fastavro.schemaless_writer(out, schema, naive_envelope(theirs, deserializer, avro=True))
        naive = decode_value(out.getvalue(), schema)
        bridge = decode_value(codec.encode(event, 1), schema)
        for side in ("keys", "before", "after"):
            if naive[side] != bridge[side]:
                raise AssertionError(f"naive chain and bridge disagree on {side} of {ours['eventID']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run one codec chain and print its figures as JSON.")
    parser.add_argument("--chain", required=True, choices=OURS + BASELINES)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args(argv)
    if args.chain == "naive-avro":
        check_same_output()
    json.dump(run_chain(args.chain, args.records), sys.stdout)
    print()


if __name__ == "__main__":
    main()
