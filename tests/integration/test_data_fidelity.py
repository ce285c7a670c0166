"""Data fidelity end to end: moto server -> cdc-bridge (subprocess) -> real Kafka broker -> decode_value.

The items are generated (the strategies of the property tests, plus one item of DynamoDB's extremes) and
compared with boto3's `TypeDeserializer` reading what was written; the typed Phones schema and
`cdc-bridge schema infer` are checked against the same live services.
"""

from __future__ import annotations

import json
import uuid

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bridge.codec import decode_value, fingerprint
from bridge.codec.infer import scan_items
from bridge.commands.demo import create_phones
from tests.bridge_process import run_bridge, write_config
from tests.dynamo_values import EXTREME_NUMBERS, comparable, items, oracle
from tests.kafka_topic import read_topic
from tests.tables import create_stream_table

EXTREMES = {
    "pk": {"S": "extremes"},
    "numbers": {"L": [{"N": n} for n in EXTREME_NUMBERS]},
    "every_byte": {"B": bytes(range(256))},
    "empty": {"S": ""},
    "empty_map": {"M": {}},
    "empty_list": {"L": []},
    "sets": {
        "M": {"ss": {"SS": ["", "b", "a"]}, "ns": {"NS": ["1E-130", "-1.5", "7"]}, "bs": {"BS": [b"\x00", b"\xff"]}}
    },
    "deep": {"M": {"a": {"L": [{"M": {"b": {"L": [{"L": [{"M": {"c": {"NS": ["38"]}}}]}]}}}]}}},
}


def _config(tmp_path, moto_endpoint, kafka_bootstrap: str | None, table: dict) -> tuple[str, str]:
    """A config file for `table` with one Kafka sink (or, without `kafka_bootstrap`, stdout) and its topic."""
    topic = f"fidelity-{uuid.uuid4().hex[:8]}.{{table}}"
    sink = {"type": "kafka", "bootstrap_servers": kafka_bootstrap, "topic": topic, "create_topics": True}
    config = {
        "source": {"endpoint_url": moto_endpoint, "region": "us-east-1", "poll_interval_ms": 50},
        "tables": [table],
        "sinks": [sink if kafka_bootstrap else {"type": "stdout"}],
        "checkpoint": {"path": str(tmp_path / "checkpoints.json")},
    }
    return str(write_config(tmp_path / "bridge.yaml", config)), topic.format(table=table["name"])


def _create_table(dynamodb, name: str) -> None:
    create_stream_table(dynamodb, name)


@settings(
    max_examples=1,
    phases=[Phase.generate],
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(generated=st.lists(items, min_size=25, max_size=25))
def test_generated_items_reach_kafka_exactly_as_typedeserializer_reads_them(
    tmp_path, dynamodb, moto_endpoint, kafka_bootstrap, generated
):
    written = {"extremes": EXTREMES}
    for index, item in enumerate(generated):
        written[f"item-{index}"] = {**item, "pk": {"S": f"item-{index}"}}
    _create_table(dynamodb, "Fidelity")
    for item in written.values():
        dynamodb.put_item(TableName="Fidelity", Item=item)
    config, topic = _config(tmp_path, moto_endpoint, kafka_bootstrap, {"name": "Fidelity"})

    result = run_bridge("run", "--config", config, "--until-caught-up")

    assert result.returncode == 0, result.stderr
    received = {}
    for record in read_topic(kafka_bootstrap, topic):
        event = decode_value(record.value)
        received[record.key.decode()] = event["after"]
    assert sorted(received) == sorted(written)
    for key, item in written.items():
        assert comparable(received[key]) == comparable(oracle({"M": item})), key


def test_typed_phones_table_reaches_kafka_with_its_item_schema(tmp_path, dynamodb, moto_endpoint, kafka_bootstrap):
    create_phones(dynamodb)
    table = {"name": "Phones", "schema": "schemas/phones.avsc"}
    config, topic = _config(tmp_path, moto_endpoint, kafka_bootstrap, table)

    result = run_bridge("run", "--config", config, "--until-caught-up")

    assert result.returncode == 0, result.stderr
    printed = run_bridge("schema", "--config", config, "--table", "Phones")
    assert printed.returncode == 0, printed.stderr
    records = read_topic(kafka_bootstrap, topic)
    assert {r.value[2:10] for r in records} == {fingerprint(json.loads(printed.stdout))}
    updates = [decode_value(r.value) for r in records if r.key == b"Motorola"]
    update = next(e for e in updates if e["op"] == "u")
    assert update["before"] == {
        "Company": "Motorola",
        "Model": "Lame Phone",
        "Size": 9,
        "Colors": ["Blue", "Green", "Orange"],
    }
    assert update["after"]["Size"] == 10


def test_typed_item_that_does_not_fit_stops_the_bridge_naming_the_field(
    tmp_path, dynamodb, moto_endpoint, kafka_bootstrap
):
    create_phones(dynamodb)
    dynamodb.put_item(TableName="Phones", Item={"Company": {"S": "Acme"}, "Model": {"S": "X"}, "Size": {"N": "6.1"}})
    table = {"name": "Phones", "schema": "schemas/phones.avsc"}
    config, _ = _config(tmp_path, moto_endpoint, kafka_bootstrap, table)

    result = run_bridge("run", "--config", config, "--until-caught-up")

    assert result.returncode == 1
    assert "after.Size" in result.stderr and "6.1 is not a whole number" in result.stderr


def test_schema_infer_proposes_a_schema_every_scanned_item_fits(tmp_path, dynamodb, moto_endpoint):
    create_phones(dynamodb)
    dynamodb.put_item(TableName="Phones", Item={"Company": {"S": "Acme"}, "Model": {"S": "X"}, "Price": {"N": "9.99"}})
    config, _ = _config(tmp_path, moto_endpoint, None, {"name": "Phones"})

    result = run_bridge("schema", "infer", "--config", config, "--table", "Phones", "--limit", "100")

    assert result.returncode == 0, result.stderr
    proposal = json.loads(result.stdout)
    fields = {f["name"]: f for f in proposal["fields"]}
    assert [f["name"] for f in proposal["fields"]][:2] == ["Company", "Model"]
    assert fields["Company"]["type"] == "string" and fields["Size"]["type"] == ["null", "long"]
    assert fields["Colors"]["type"] == ["null", {"type": "array", "items": "string"}]
    assert fields["Price"]["type"] == ["null", {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 2}]
    assert "from 4 item(s)" in proposal["doc"]  # 3 phones left after the demo's delete, plus Acme

    (tmp_path / "proposal.avsc").write_text(result.stdout)  # every change of the table fits the proposal
    typed, _ = _config(tmp_path, moto_endpoint, None, {"name": "Phones", "schema": str(tmp_path / "proposal.avsc")})
    run = run_bridge("run", "--config", typed, "--until-caught-up")
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(events) == 7 and events[-1]["after"]["Price"] == 9.99


def test_scan_for_inference_pages_through_the_table_and_stops_at_the_limit(dynamodb):
    _create_table(dynamodb, "Many")
    for index in range(10):
        dynamodb.put_item(TableName="Many", Item={"pk": {"S": f"k{index}"}, "n": {"N": str(index)}})
    assert len(list(scan_items(dynamodb, "Many", limit=100, page_size=3))) == 10
    assert len(list(scan_items(dynamodb, "Many", limit=7, page_size=3))) == 7


def test_schema_infer_of_a_missing_table_is_a_config_error(tmp_path, dynamodb, moto_endpoint):
    config, _ = _config(tmp_path, moto_endpoint, None, {"name": "Nowhere"})
    result = run_bridge("schema", "infer", "--config", config, "--table", "Nowhere")
    assert result.returncode == 2 and "Nowhere" in result.stderr
