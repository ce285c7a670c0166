"""The baseline of the end-to-end benchmark: the plain loop most people write first.

boto3 `get_records` (botocore parses every attribute), `TypeDeserializer`, fastavro on the generic envelope
schema without union branch hints, one `producer.send` per record (acks=all, idempotent, kafka-python's
defaults otherwise) and no `crc32c` package (kafka-python then computes CRC32C in pure Python). Shards are
read one after the other until each returns an empty page; then the producer is flushed.

Run: `python -m bench.plainloop --endpoint URL --bootstrap HOST:PORT --topic T` (prints one JSON line).
"""

from __future__ import annotations

import sys

sys.modules["crc32c"] = None  # type: ignore[assignment]  # as if the package were not installed

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402

import boto3  # noqa: E402
import fastavro  # noqa: E402
from boto3.dynamodb.types import TypeDeserializer  # noqa: E402
from kafka import KafkaProducer  # noqa: E402

from bench import corpus  # noqa: E402
from bench.codec import naive_envelope  # noqa: E402
from bridge.codec.avro import envelope_schema  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The plain read-deserialize-encode-send loop.")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    args = parser.parse_args(argv)
    streams = boto3.client("dynamodbstreams", endpoint_url=args.endpoint, region_name=corpus.REGION)
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all", enable_idempotence=True)
    schema = envelope_schema()
    deserializer = TypeDeserializer()
    sent = 0
    description = streams.describe_stream(StreamArn=corpus.STREAM_ARN)["StreamDescription"]
    for shard in description["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=corpus.STREAM_ARN, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            if not page["Records"]:
                break
            for record in page["Records"]:
                out = io.BytesIO()
                fastavro.schemaless_writer(out, schema, naive_envelope(record, deserializer, avro=True))
                key = record["dynamodb"]["Keys"]["pk"]["S"].encode()
                producer.send(args.topic, key=key, value=out.getvalue())
                sent += 1
            iterator = page.get("NextShardIterator")
    producer.flush()
    producer.close()
    json.dump({"sent": sent}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
