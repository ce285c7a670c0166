"""Lambda benchmark: CPU per record of a warm invocation of `bridge.aws_lambda` on a 1,000-record batch.

`python -m bench.lambda_invoke [--records 1000] [--runs 7]` starts a broker with `tests/services.py`'s
`KafkaBroker` (4 partitions), builds the handler's warm state (`LambdaBridge`: config, routes, Kafka sink;
DescribeTable answered by a stub, as the cold start is not measured), then times with `time.process_time`
(every thread of the process: the handler and kafka-python's sender) the median of `--runs` invocations of
one ESM-shaped batch of corpus records (the same records as `make bench`'s end-to-end row, with
`eventSourceARN`), after one warm-up invocation. Each invocation routes, writes and flushes (in chunks of
`CDC_BRIDGE_LAMBDA_CHUNK_RECORDS`, 250 by default; `--chunks 250,1000` compares) and answers
`batchItemFailures`. In-process: the runtime's own cost (awslambdaric, the Runtime API's HTTP round trip
and the event's JSON decoding) is not included; the JSON decoding of a 1,000-record event is timed apart.

Compare with the long-running bridge's CPU per record in bench/README.md (end-to-end row).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench import corpus
from bench.process import ROOT

STREAM_ARN = f"arn:aws:dynamodb:{corpus.REGION}:123456789012:table/{corpus.TABLE}/stream/2026-01-01T00:00:00.000"


class _DescribeOnly:
    """Answers DescribeTable for the corpus table (the cold start's only DynamoDB call)."""

    class meta:
        endpoint_url = "stub"
        region_name = corpus.REGION

    def describe_table(self, TableName: str) -> dict:
        return {
            "Table": {
                "TableName": TableName,
                "LatestStreamArn": STREAM_ARN,
                "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
            }
        }


def _event(count: int) -> dict:
    records = [dict(record, eventSourceARN=STREAM_ARN) for _, record in corpus.records(count)]
    return {"Records": records}


def measure(bootstrap: str, records: int, runs: int, chunk: int) -> dict:
    from bridge.aws_lambda import LambdaBridge
    from bridge.config import parse_config

    topic = f"bench-lambda-{uuid.uuid4().hex[:8]}"
    config = parse_config(
        json.dumps(
            {
                "tables": [{"name": corpus.TABLE}],
                "sinks": [
                    {
                        "type": "kafka",
                        "bootstrap_servers": bootstrap,
                        "topic": topic,
                        "create_topics": True,
                        "partitions": 4,
                    }
                ],
            }
        )
    )
    os.environ["CDC_BRIDGE_LAMBDA_CHUNK_RECORDS"] = str(chunk)
    bridge = LambdaBridge(config, dynamodb=_DescribeOnly())
    text = json.dumps(_event(records))
    try:
        bridge.handle(json.loads(text), None)  # warm-up: topic metadata, connections, caches
        cpu, wall = [], []
        for _ in range(runs):
            event = json.loads(text)
            started_cpu, started = time.process_time(), time.perf_counter()
            answer = bridge.handle(event, None)
            cpu.append(time.process_time() - started_cpu)
            wall.append(time.perf_counter() - started)
            if answer["batchItemFailures"]:
                raise RuntimeError(f"an invocation reported failures: {answer}")
        started = time.process_time()
        for _ in range(runs):
            json.loads(text)
        decode = (time.process_time() - started) / runs
    finally:
        bridge.close()
    return {
        "chunk": chunk,
        "records": records,
        "cpu_us_per_record": statistics.median(cpu) / records * 1e6,
        "wall_ms_per_invocation": statistics.median(wall) * 1000,
        "event_json_decode_us_per_record": decode / records * 1e6,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lambda_invoke", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--chunks", default="250", help="comma-separated records per flush to compare")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from tests.services import KafkaBroker

    results = []
    with tempfile.TemporaryDirectory() as temp:
        broker = KafkaBroker(Path(temp), partitions=4)
        broker.start()
        try:
            for chunk in (int(text) for text in args.chunks.split(",")):
                result = measure(broker.bootstrap, args.records, args.runs, chunk)
                results.append(result)
                print(
                    f"lambda warm invocation, {result['records']} records, chunk {chunk}: "
                    f"{result['cpu_us_per_record']:.1f} us CPU/record, {result['wall_ms_per_invocation']:.1f} ms "
                    f"wall; event JSON decoding {result['event_json_decode_us_per_record']:.1f} us/record more",
                    flush=True,
                )
        finally:
            broker.stop()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
