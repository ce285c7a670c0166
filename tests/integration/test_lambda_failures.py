"""The Lambda handler when things go wrong, in AWS's runtime (aws-lambda-rie + awslambdaric), real broker and
moto: the broker stopped during a batch, and a poison record under each `on_poison` policy."""

from __future__ import annotations

import copy
import json
import threading
from collections import defaultdict

import boto3
from kafka import KafkaConsumer, TopicPartition

from bridge.codec.avro import decode_value
from tests.integration.test_lambda_handler import lambda_config
from tests.kafka_topic import read_topic
from tests.lambda_runtime import EventSourceMapping, esm_records
from tests.polling import wait_for
from tests.tables import create_stream_table

CHUNK = 100  # records per flush in these functions


def _put_items(endpoint: str, table: str, count: int, keys: int) -> None:
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    for i in range(count):
        client.put_item(TableName=table, Item={"pk": {"S": f"k{i % keys}"}, "v": {"N": str(i)}})


def _records_on(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(partitions).values()) if partitions else 0
    finally:
        consumer.close()


def test_a_broker_stopped_during_a_batch_is_reported_and_the_retry_delivers_the_rest_in_key_order(
    dynamodb, moto_endpoint, kafka_broker, kafka_bootstrap, tmp_path, lambda_function
):
    if kafka_broker is None:
        import pytest

        pytest.skip("stopping the broker needs the test run's own broker (KAFKA_BOOTSTRAP_SERVERS is set)")
    create_stream_table(dynamodb, "Outage")
    _put_items(moto_endpoint, "Outage", 3000, keys=9)
    records = esm_records(moto_endpoint, "Outage")
    config, topic = lambda_config(tmp_path, moto_endpoint, kafka_bootstrap, "Outage")
    function = lambda_function(config, env={"CDC_BRIDGE_LAMBDA_CHUNK_RECORDS": str(CHUNK)}, timeout_s=20)
    function.invoke({"Records": records[:1]})  # cold start (topic created, producer connected) before the outage
    esm = EventSourceMapping(function, records[1:], batch_size=len(records) - 1)
    stopped = threading.Event()

    def stop_once_a_chunk_is_acknowledged() -> None:
        wait_for(lambda: _records_on(kafka_bootstrap, topic) > CHUNK, 60, "the first chunk on the topic", interval=0)
        kafka_broker.stop()
        stopped.set()

    stopper = threading.Thread(target=stop_once_a_chunk_is_acknowledged)
    stopper.start()
    try:
        outage = esm.step()  # waits for acknowledgements until the invocation's time is nearly up
    finally:
        stopper.join(timeout=120)
        if not stopped.is_set():
            kafka_broker.stop()
        kafka_broker.start()

    assert not outage.error, outage.payload
    assert len(outage.failures) == 1, "the broker stopped after the whole batch was acknowledged"
    reported = int(outage.failures[0])
    numbers = [int(record["dynamodb"]["SequenceNumber"]) for record in records]
    assert numbers.index(reported) > 1, "the broker was away before the batch began"
    assert numbers.index(reported) % CHUNK == 1  # the first record of a chunk (the batch began at record 1)
    esm.run()  # the retry from the reported record, with the broker back
    changes = [decode_value(record.value) for record in read_topic(kafka_bootstrap, topic)]
    sequences = [int(change["source"]["sequence_number"]) for change in changes]
    assert set(sequences) == set(numbers)  # every change
    assert all(n >= reported for n in sequences if sequences.count(n) > 1)  # duplicates: the retried tail only
    by_key: dict[str, list[int]] = defaultdict(list)
    for change, number in zip(changes, sequences, strict=True):
        if number not in by_key[change["after"]["pk"]]:  # first copies, in partition order
            by_key[change["after"]["pk"]].append(number)
    assert all(values == sorted(values) for values in by_key.values())
    failed_line = next(line for line in function.metric_lines() if line["Failed"])
    assert failed_line["Failed"] == len(records) - numbers.index(reported)


def _poisoned(endpoint: str, table: str) -> list[dict]:
    """Five ESM records of `table`; the third (key k2) has a number DynamoDB would never send."""
    _put_items(endpoint, table, 5, keys=5)
    records = esm_records(endpoint, table)
    records[2] = copy.deepcopy(records[2])
    records[2]["dynamodb"]["NewImage"]["v"] = {"N": "twelve"}
    return records


def _keys(bootstrap: str, topic: str) -> list[str]:
    return [decode_value(record.value)["after"]["pk"] for record in read_topic(bootstrap, topic)]


def test_poison_under_dlq_goes_to_the_dead_letter_topic_and_the_batch_succeeds(
    dynamodb, moto_endpoint, kafka_bootstrap, tmp_path, lambda_function
):
    create_stream_table(dynamodb, "Dlq")
    records = _poisoned(moto_endpoint, "Dlq")
    config, topic = lambda_config(tmp_path, moto_endpoint, kafka_bootstrap, "Dlq", on_poison="dlq")
    function = lambda_function(config)

    answer = function.invoke({"Records": records})

    assert answer.failures == []
    assert _keys(kafka_bootstrap, topic) == ["k0", "k1", "k3", "k4"]
    (letter,) = [json.loads(record.value) for record in read_topic(kafka_bootstrap, f"{topic}.dlq")]
    assert letter["position"]["sequence_number"] == records[2]["dynamodb"]["SequenceNumber"]
    assert letter["record"]["dynamodb"]["NewImage"]["v"] == {"N": "twelve"}
    assert function.metric_lines()[-1]["DeadLetters"] == 1


def test_poison_under_skip_is_counted_and_the_batch_succeeds(
    dynamodb, moto_endpoint, kafka_bootstrap, tmp_path, lambda_function
):
    create_stream_table(dynamodb, "Skip")
    records = _poisoned(moto_endpoint, "Skip")
    config, topic = lambda_config(tmp_path, moto_endpoint, kafka_bootstrap, "Skip", on_poison="skip")
    function = lambda_function(config)

    answer = function.invoke({"Records": records})

    assert answer.failures == []
    assert _keys(kafka_bootstrap, topic) == ["k0", "k1", "k3", "k4"]
    assert function.metric_lines()[-1]["Skipped"] == 1
    assert "SKIPPED (on_poison: skip)" in function.logs()


def test_poison_under_fail_is_reported_after_the_records_before_it_are_delivered(
    dynamodb, moto_endpoint, kafka_bootstrap, tmp_path, lambda_function
):
    create_stream_table(dynamodb, "Fail")
    records = _poisoned(moto_endpoint, "Fail")
    config, topic = lambda_config(tmp_path, moto_endpoint, kafka_bootstrap, "Fail")
    function = lambda_function(config)
    esm = EventSourceMapping(function, records, batch_size=5)

    first, retry = esm.step(), esm.step()

    poison = records[2]["dynamodb"]["SequenceNumber"]
    assert first.failures == [poison] and retry.failures == [poison]  # the ESM retries it until it gives up
    assert _keys(kafka_bootstrap, topic) == ["k0", "k1"]
    assert "poison record (normalize)" in function.logs()
    assert [line["Failed"] for line in function.metric_lines()] == [3, 3]
