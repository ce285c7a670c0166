"""The Confluent wire format, read by Confluent's own client: moto server -> cdc-bridge (subprocess, `encoding:
{wire_format: confluent}`, schemas in the fake registry of tests/schema_registry.py) -> real Kafka broker ->
confluent-kafka (librdkafka `Consumer`, its `SchemaRegistryClient` and `AvroDeserializer`).

Every value the client decodes must equal what `bridge.codec.decode_value(value, registry=...)` gives. The two
do not hand back the same Python shapes, so both are brought to one form before comparing:
- generic items (table Phones): the client reads the raw Avro, each attribute an `AttributeValue` record
  `{"value": <union branch>}`; with `return_record_name=True` a branch that is a record comes as (full name,
  record), which is how the documented mapping is told apart: `VariableScaleDecimal` -> the exact number
  `unscaled * 10^-scale`, `StringSet`/`NumberSet`/`BinarySet` -> a set of that kind, arrays and maps ->
  lists and dicts of attributes. `decode_value` gives plain values with sets as `DynamoSet`.
- typed items (table Gadgets, tests/schemas/gadget.avsc): with `return_record_name=False` the client gives the
  item record as plain values (decimals as `Decimal`, nested records as dicts), which is what `decode_value`
  gives; only the envelope's `keys` (generic attributes) are unwrapped as above.
Scalars are compared with their Python type (a boolean read as the long 1 does not pass for `True`).
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from bridge.codec import decode_value
from bridge.commands.demo import create_phones
from bridge.normalize import DynamoSet
from tests.bridge_process import kafka_config, run_bridge
from tests.polling import wait_for
from tests.tables import create_stream_table

ROOT = Path(__file__).resolve().parents[2]
GADGET_SCHEMA = ROOT / "tests" / "schemas" / "gadget.avsc"
ENVELOPE = json.loads((ROOT / "schemas" / "envelope.avsc").read_text())
SETS = {"io.cdcbridge.StringSet": "SS", "io.cdcbridge.NumberSet": "NS", "io.cdcbridge.BinarySet": "BS"}

EVERY_TYPE = {  # a generic Phones item with every kind of DynamoDB value
    "Company": {"S": "Acme"},
    "Model": {"S": "Everything"},
    "Price": {"N": "9.99"},
    "Huge": {"N": "123456789012345678901234567890"},
    "Tiny": {"N": "-1E-130"},
    "Photo": {"B": b"\x00\xffpng"},
    "Sold": {"BOOL": False},
    "Recalled": {"NULL": True},
    "Specs": {"M": {"ram": {"N": "8"}, "os": {"S": "PhoneOS"}, "values": {"L": [{"S": "a map key named values"}]}}},
    "Sizes": {"L": [{"N": "5"}, {"N": "5.5"}, {"BOOL": True}]},
    "Ratings": {"NS": ["4.5", "3", "5"]},
    "Keys": {"BS": [b"\x02", b"\x01"]},
}
GADGETS = [
    {
        "pk": {"S": "g1"},
        "count": {"N": "3"},
        "small": {"N": "7"},
        "price": {"N": "12.5"},
        "cents": {"N": "4.25"},
        "ratio": {"N": "0.1"},
        "blob": {"B": b"\x00\xff"},
        "flag": {"BOOL": True},
        "tags": {"SS": ["b", "a"]},
        "scores": {"L": [{"N": "1"}, {"N": "2"}]},
        "attrs": {"M": {"k": {"S": "v"}}},
        "specs": {"M": {"ram": {"N": "8"}, "note": {"S": "fast"}}},
        "anything": {"S": "text"},
        "exact": {"N": "1E-130"},
    },
    {
        "pk": {"S": "g2"},
        "count": {"N": "0"},
        "price": {"N": "-1"},
        "ratio": {"N": "2"},
        "blob": {"B": b""},
        "flag": {"BOOL": False},
        "tags": {"L": []},
        "scores": {"L": []},
        "attrs": {"M": {}},
        "exact": {"N": "7"},
    },
]


class ClientSet(NamedTuple):
    """A DynamoDB set as read from the client's union branch record."""

    kind: str
    values: list


class Run(NamedTuple):
    phones_topic: str
    gadgets_topic: str
    config: Path


@pytest.fixture
def run(tmp_path, dynamodb, moto_endpoint, kafka_bootstrap, registry) -> Run:
    """Phones (generic) and Gadgets (typed) written, and a config that bridges both with the Confluent wire
    format into topics of their own."""
    create_phones(dynamodb)
    dynamodb.put_item(TableName="Phones", Item=EVERY_TYPE)
    create_stream_table(dynamodb, "Gadgets")
    for item in GADGETS:
        dynamodb.put_item(TableName="Gadgets", Item=item)
    dynamodb.update_item(
        TableName="Gadgets",
        Key={"pk": {"S": "g1"}},
        UpdateExpression="SET #count = :count",
        ExpressionAttributeNames={"#count": "count"},
        ExpressionAttributeValues={":count": {"N": "4"}},
    )
    dynamodb.delete_item(TableName="Gadgets", Key={"pk": {"S": "g2"}})
    topic = f"cw-{uuid.uuid4().hex[:8]}.{{table}}"
    path = kafka_config(
        tmp_path / "bridge.yaml",
        moto_endpoint,
        kafka_bootstrap,
        topic,
        [{"name": "Phones"}, {"name": "Gadgets", "schema": str(GADGET_SCHEMA)}],
        encoding={"wire_format": "confluent"},
        schema_registry={"url": registry.url},
    )
    return Run(topic.format(table="Phones"), topic.format(table="Gadgets"), path)


def _bridge(run: Run) -> None:
    result = run_bridge("run", "--config", str(run.config), "--until-caught-up")
    assert result.returncode == 0, result.stderr


def _consume(bootstrap: str, topic: str, timeout: float = 30) -> list:
    """Every record of `topic` up to its end offsets, read by a librdkafka consumer (confluent_kafka.Message)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"cw-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        ends = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions]
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        messages: list = []

        def read_to_end() -> bool:
            message = consumer.poll(0.5)
            if message is not None:
                if message.error():
                    raise KafkaException(message.error())
                messages.append(message)
            positions = consumer.position([TopicPartition(topic, p) for p in partitions])
            return all(end == 0 or tp.offset >= end for tp, end in zip(positions, ends, strict=True))

        wait_for(read_to_end, timeout, f"{topic} to be read to its end", interval=0)
        return messages
    finally:
        consumer.close()


def _bridge_registry(url: str):
    """The bridge's own registry client, as `decode_value(..., registry=)` takes it."""
    from bridge.codec.registry import SchemaRegistry
    from bridge.config import SchemaRegistryConfig

    return SchemaRegistry(SchemaRegistryConfig(url=url))


def _attribute(wrapper: dict) -> Any:
    """An `AttributeValue` record as the client reads it, as the plain value it stands for."""
    value = wrapper["value"]
    if isinstance(value, tuple):  # a record branch, named (return_record_name=True)
        name, record = value
        if name == "io.cdcbridge.VariableScaleDecimal":  # exactly: Decimal arithmetic would round to 28 digits
            unscaled = int.from_bytes(record["value"], "big", signed=True)
            return Decimal((unscaled < 0, tuple(int(d) for d in str(abs(unscaled))), -record["scale"]))
        kind = SETS[name]
        return ClientSet(kind, [_attribute(v) for v in record["values"]] if kind == "NS" else record["values"])
    if isinstance(value, dict):
        return {name: _attribute(v) for name, v in value.items()}
    if isinstance(value, list):
        return [_attribute(v) for v in value]
    return value


def _generic_items(event: dict) -> dict:
    items = {side: None if event[side] is None else _attribute({"value": event[side]}) for side in ("before", "after")}
    return {**event, "keys": _attribute({"value": event["keys"]}), **items}


def _typed_keys(event: dict) -> dict:
    return {**event, "keys": _attribute({"value": event["keys"]})}


def _tagged(value: Any) -> Any:
    """One form for both readers: sets as (kind, sorted values), scalars with their type."""
    if isinstance(value, DynamoSet | ClientSet):
        kind, values = (value.kind, list(value)) if isinstance(value, DynamoSet) else value
        return ("set", kind, sorted((_tagged(v) for v in values), key=repr))
    if isinstance(value, dict):
        return {name: _tagged(v) for name, v in value.items()}
    if isinstance(value, list | tuple):
        return [_tagged(v) for v in value]
    return (type(value).__name__, value)


def _decoded_pairs(registry_url: str, messages: list, topic: str, *, names: bool) -> list[tuple[dict, dict]]:
    """(confluent-kafka's value, decode_value's value) of each message."""
    client = AvroDeserializer(SchemaRegistryClient({"url": registry_url}), return_record_name=names)
    ours = _bridge_registry(registry_url)
    context = SerializationContext(topic, MessageField.VALUE)
    return [(client(m.value(), context), decode_value(m.value(), registry=ours)) for m in messages]


def test_confluent_kafka_decodes_every_generic_record_as_decode_value_does(run, registry, kafka_bootstrap):
    _bridge(run)

    messages = _consume(kafka_bootstrap, run.phones_topic)
    pairs = _decoded_pairs(registry.url, messages, run.phones_topic, names=True)

    assert len(pairs) == 7
    for client, ours in pairs:
        assert _tagged(_generic_items(client)) == _tagged(ours)
    by_model = {(c["op"], _attribute({"value": c["keys"]})["Model"]): _generic_items(c) for c, _ in pairs}
    every = by_model[("c", "Everything")]["after"]  # the client's own reading, against what was written
    assert every["Price"] == Decimal("9.99") and every["Tiny"] == Decimal("-1E-130")
    assert every["Huge"] == Decimal("123456789012345678901234567890") and every["Photo"] == b"\x00\xffpng"
    assert every["Ratings"] == ClientSet("NS", [3, Decimal("4.5"), 5]) and every["Recalled"] is None
    assert every["Specs"]["values"] == ["a map key named values"] and every["Sold"] is False
    update = by_model[("u", "Lame Phone")]
    assert update["before"]["Size"] == 9 and update["after"]["Size"] == 10


def test_confluent_kafka_decodes_every_typed_record_as_decode_value_does(run, registry, kafka_bootstrap):
    _bridge(run)

    messages = _consume(kafka_bootstrap, run.gadgets_topic)
    pairs = _decoded_pairs(registry.url, messages, run.gadgets_topic, names=False)

    assert len(pairs) == 4
    for client, ours in pairs:
        assert _tagged(_typed_keys(client)) == _tagged(ours)
    [update] = [client for client, _ in pairs if client["op"] == "u"]
    assert update["before"]["count"] == 3 and update["after"]["count"] == 4
    after = update["after"]
    assert after["price"] == Decimal("12.5") and after["cents"] == Decimal("4.25") and after["small"] == 7
    assert after["specs"] == {"ram": 8, "note": "fast"} and after["tags"] == ["a", "b"]
    [delete] = [client for client, _ in pairs if client["op"] == "d"]
    assert delete["after"] is None and delete["before"]["pk"] == "g2" and delete["before"]["specs"] is None


def test_each_value_schema_is_registered_under_its_topic_name_strategy_subject(run, registry, kafka_bootstrap):
    _bridge(run)

    phones, gadgets = registry.latest(f"{run.phones_topic}-value"), registry.latest(f"{run.gadgets_topic}-value")
    assert registry.subjects() == sorted([f"{run.phones_topic}-value", f"{run.gadgets_topic}-value"])
    assert registry.schema(phones["id"]) == ENVELOPE
    typed = {f["name"]: f["type"] for f in registry.schema(gadgets["id"])["fields"]}
    assert typed["before"][1]["name"] == "Gadget" and typed["after"] == ["null", "test.typed.Gadget"]
    for topic, subject in ((run.phones_topic, phones), (run.gadgets_topic, gadgets)):
        frames = {m.value()[:5] for m in _consume(kafka_bootstrap, topic)}
        assert frames == {b"\x00" + subject["id"].to_bytes(4, "big")}


def test_registry_requests_do_not_grow_with_the_number_of_records(run, registry, dynamodb, kafka_bootstrap):
    _bridge(run)
    first = registry.count()
    for index in range(60):
        item = {"Company": {"S": f"Maker {index}"}, "Model": {"S": "Bulk"}, "Size": {"N": str(index)}}
        dynamodb.put_item(TableName="Phones", Item=item)

    _bridge(run)

    second = registry.count() - first
    assert len(_consume(kafka_bootstrap, run.phones_topic)) == 7 + 60
    assert 0 < second <= first, [f"{r.method} {r.path}" for r in registry.requests]
