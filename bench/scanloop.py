"""The baseline of the snapshot benchmark: the table copy most people write first.

boto3's `Scan` paginator over the whole table in one segment (botocore parses every attribute), boto3's
`TypeDeserializer`, fastavro on the generic envelope schema without union branch hints (the values shaped as
bench/codec.py's naive chains shape them), one `producer.send` per item keyed by the partition key (acks=all,
idempotent, kafka-python's defaults otherwise), then one `flush`. As in bench/plainloop.py, no `crc32c`
package (kafka-python then computes CRC32C in pure Python).

Run: `python -m bench.scanloop --endpoint URL --bootstrap HOST:PORT --topic T` (prints one JSON line).
"""

from __future__ import annotations

import sys

sys.modules["crc32c"] = None  # type: ignore[assignment]  # as if the package were not installed

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import boto3  # noqa: E402
import fastavro  # noqa: E402
from boto3.dynamodb.types import TypeDeserializer  # noqa: E402
from kafka import KafkaProducer  # noqa: E402

from bench import corpus  # noqa: E402
from bench.codec import naive_value  # noqa: E402
from bridge.codec.avro import envelope_schema  # noqa: E402

KEY_NAMES = ("pk", "sk")


def naive_row(item: dict, deserializer: TypeDeserializer, *, started_ms: int, index: int) -> dict:
    """The `op: r` envelope of one scanned item (boto3-shaped), in the generic schema's shape."""
    after = {name: naive_value(deserializer.deserialize(value)) for name, value in item.items()}
    return {
        "op": "r",
        "keys": {name: after[name] for name in KEY_NAMES},
        "before": None,
        "after": after,
        "source": {
            "table": corpus.TABLE,
            "region": corpus.REGION,
            "stream_arn": corpus.STREAM_ARN,
            "shard_id": "snapshot-segment-0",
            "sequence_number": "",
            "event_id": f"snapshot-{started_ms}-0-{index}",
            "approximate_creation_ms": started_ms,
            "ttl_expired": False,
            "snapshot": True,
            "current_item": True,
            "view_type": "NEW_AND_OLD_IMAGES",
        },
        "ts_ms": int(time.time() * 1000),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The plain scan-deserialize-encode-send loop.")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    args = parser.parse_args(argv)
    dynamodb = boto3.client("dynamodb", endpoint_url=args.endpoint, region_name=corpus.REGION)
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all", enable_idempotence=True)
    schema = envelope_schema()
    deserializer = TypeDeserializer()
    started_ms = int(time.time() * 1000)
    sent = 0
    for page in dynamodb.get_paginator("scan").paginate(TableName=corpus.TABLE):
        for item in page["Items"]:
            out = io.BytesIO()
            fastavro.schemaless_writer(out, schema, naive_row(item, deserializer, started_ms=started_ms, index=sent))
            producer.send(args.topic, key=item["pk"]["S"].encode(), value=out.getvalue())
            sent += 1
    producer.flush()
    producer.close()
    json.dump({"sent": sent}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
