"""Every registered sink (entry-point group `bridge.sinks`, third-party ones included) meets the sink contract.

For each sink a harness knows how to configure it and how to read back, independently of the sink, what
reached its destination as `(key, op, sequence_number)` triples. The checks are the same for all sinks:
open/close, flush durability, per-key order, and close without flush. The Kafka sink runs against the real
broker of the test session. The third-party sink (tests/plugin_sink) also shows the plugin API is enough,
and that an event a sink refuses with `RejectedEvent` gets its table's `on_poison` while the rest goes on.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import fastavro
import pytest

from bridge.codec import EnvelopeCodec, decode_value
from bridge.config import parse_config
from bridge.pipeline import Pipeline
from bridge.sinks import Sink, TableEncoding, load_sink, sink_names
from tests.change_events import change
from tests.fake_streams import FakeAWS
from tests.kafka_topic import read_topic

Triple = tuple[str, str, str]  # (key, op, sequence_number)


@dataclass
class Harness:
    """How to build one sink from YAML settings and how to read back what it delivered."""

    settings: dict
    read_back: Callable[[], list[Triple]]
    prepare: Callable[[], None] = lambda: None  # run before each sink is made (inside the test call)


def _file_harness(tmp_path: Path, request, extra: dict) -> Harness:
    fmt = extra.get("format", "jsonl")

    def read_back() -> list[Triple]:
        triples = []
        for path in sorted(tmp_path.glob(f"out/**/*.{fmt}")):
            if fmt == "jsonl":
                events = [json.loads(line) for line in path.read_text().splitlines()]
            else:
                with path.open("rb") as file:  # generic items: every attribute is an AttributeValue record
                    events = [
                        {**e, "keys": {k: v["value"] for k, v in e["keys"].items()}} for e in fastavro.reader(file)
                    ]
            triples += [(e["keys"]["Company"], e["op"], e["source"]["sequence_number"]) for e in events]
        return triples

    return Harness({"path": str(tmp_path / "out/{table}/{date}/{table}-{hour}"), "format": fmt}, read_back)


def _stdout_harness(tmp_path: Path, request, extra: dict) -> Harness:
    capture = tmp_path / "stdout.txt"
    stream = open(capture, "w", buffering=1 << 20)  # noqa: SIM115 - a big buffer: only flush() empties it
    monkeypatch = request.getfixturevalue("monkeypatch")
    request.addfinalizer(stream.close)

    def read_back() -> list[Triple]:
        events = [json.loads(line) for line in capture.read_text().splitlines()]
        return [(e["key"], e["op"], e["source"]["sequence_number"]) for e in events]

    return Harness({}, read_back, lambda: monkeypatch.setattr(sys, "stdout", stream))


def _kafka_harness(tmp_path: Path, request, extra: dict) -> Harness:
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    topic = f"conformance-{uuid.uuid4().hex[:8]}"

    def read_back() -> list[Triple]:
        records = sorted(read_topic(bootstrap, topic), key=lambda r: (r.partition, r.offset))
        events = [decode_value(r.value) for r in records]
        return [(e["keys"]["Company"], e["op"], e["source"]["sequence_number"]) for e in events]

    settings = {"bootstrap_servers": bootstrap, "topic": topic, "create_topics": True, "partitions": 3}
    return Harness(settings, read_back)


def _lines_harness(tmp_path: Path, request, extra: dict) -> Harness:
    path = tmp_path / "lines.txt"

    def read_back() -> list[Triple]:
        if not path.exists():
            return []
        rows = [line.split(" ") for line in path.read_text().splitlines()]
        return [(key, op, sequence) for _table, key, op, sequence in rows]

    return Harness({"path": str(path)}, read_back)


HARNESSES: dict[str, Callable[[Path, pytest.FixtureRequest, dict], Harness]] = {
    "file": _file_harness,
    "kafka": _kafka_harness,
    "stdout": _stdout_harness,
    "lines": _lines_harness,  # tests/plugin_sink, installed as a separate package
}
VARIANTS = {"file": [{}, {"format": "avro"}]}  # extra settings: each variant runs every check


def _cases() -> list:
    cases = []
    for name in sink_names():
        for extra in VARIANTS.get(name, [{}]):
            label = name + "".join(f"-{v}" for v in extra.values())
            cases.append(pytest.param((name, extra), id=label))
    return cases


@pytest.fixture(params=_cases())
def sink_case(request, tmp_path) -> tuple[Callable[[], Sink], Harness]:
    name, extra = request.param
    if name not in HARNESSES:
        pytest.fail(f"sink {name!r} is registered but has no conformance harness in this module", pytrace=False)
    harness = HARNESSES[name](tmp_path, request, extra)
    settings = {"type": name, **harness.settings, **extra}
    # settings go through the real config loader, as a user's YAML would
    config = parse_config(json.dumps({"tables": [{"name": "Phones"}], "sinks": [settings]}))
    encodings = {"Phones": TableEncoding(EnvelopeCodec(), "partition")}

    def make() -> Sink:
        harness.prepare()
        return load_sink(name)(config.sinks[0].settings, encodings)

    return make, harness


def _triple(event) -> Triple:
    return (event.keys["Company"], event.op, event.position.sequence_number)


def _interleaved(first: int, count: int) -> list:
    """`count` changes of three items, interleaved, with increasing sequence numbers from `first`."""
    companies = ["Acme", "Bolt", "Cato"]
    return [change(first + i, companies[i % 3], "c" if i < 3 else "u", size=i) for i in range(count)]


def test_every_registered_sink_has_a_harness_and_the_third_party_sink_is_found():
    assert "lines" in sink_names(), "tests/plugin_sink is not installed: run `make test` (or pip install -e it)"
    assert set(sink_names()) <= set(HARNESSES)


def test_open_then_close_delivers_nothing_and_raises_nothing(sink_case):
    make, harness = sink_case
    sink = make()
    sink.open()
    sink.write([])
    sink.flush(10)
    sink.close()
    assert harness.read_back() == []


def test_close_without_open_raises_nothing(sink_case):
    make, _harness = sink_case
    make().close()


def test_flush_makes_every_written_event_readable_at_the_destination(sink_case):
    make, harness = sink_case
    sink = make()
    sink.open()
    try:
        events = _interleaved(1, 9)
        sink.write(events[:4])
        sink.write(events[4:])
        sink.flush(30)
        assert sorted(harness.read_back()) == sorted(_triple(e) for e in events)
    finally:
        sink.close()


def test_events_of_one_key_arrive_in_write_order(sink_case):
    make, harness = sink_case
    sink = make()
    sink.open()
    try:
        events = _interleaved(1, 30)
        for start in range(0, 30, 7):
            sink.write(events[start : start + 7])
        sink.flush(30)
    finally:
        sink.close()
    delivered = harness.read_back()
    for company in ("Acme", "Bolt", "Cato"):
        expected = [_triple(e) for e in events if e.keys["Company"] == company]
        assert [t for t in delivered if t[0] == company] == expected


def test_close_without_flush_keeps_flushed_events_intact_and_a_new_sink_goes_on(sink_case):
    make, harness = sink_case
    flushed, unflushed, later = _interleaved(1, 6), _interleaved(7, 6), _interleaved(13, 3)
    first = make()
    first.open()
    first.write(flushed)
    first.flush(30)
    first.write(unflushed)
    first.close()  # no flush: the unflushed events may be lost, nothing else may be

    second = make()  # a restart re-sends from the checkpoint
    second.open()
    second.write(later)
    second.flush(30)
    second.close()

    delivered = harness.read_back()
    everything = [_triple(e) for e in flushed + unflushed + later]
    assert set(delivered) >= {_triple(e) for e in flushed + later}
    assert set(delivered) <= set(everything)
    for company in ("Acme", "Bolt", "Cato"):
        mine = [t for t in delivered if t[0] == company]
        assert mine == sorted(mine, key=lambda t: t[2]), f"order of {company} broken"


def test_avro_files_are_plain_object_container_files(tmp_path):
    """Any Avro tool reads them: the header holds the writer schema, each record the full envelope."""
    config = parse_config(
        json.dumps(
            {
                "tables": [{"name": "Phones"}],
                "sinks": [{"type": "file", "format": "avro", "avro_codec": "deflate", "path": str(tmp_path / "p")}],
            }
        )
    )
    sink = load_sink("file")(config.sinks[0].settings, {"Phones": TableEncoding(EnvelopeCodec())})
    sink.open()
    sink.write([change(1, size=7), change(2, op="d", size=7)])
    sink.flush(5)
    sink.close()
    (path,) = tmp_path.glob("p-*.avro")
    with path.open("rb") as file:
        reader = fastavro.reader(file)
        records = list(reader)
        assert reader.metadata["avro.codec"] == "deflate"
    assert [r["op"] for r in records] == ["c", "d"]
    assert records[0]["after"]["Size"] == {"value": 7} and records[1]["after"] is None


def test_importing_the_plugin_api_alone_is_enough_for_a_third_party_sink():
    source = Path(sys.modules[load_sink("lines").__module__].__file__).read_text()
    imports = {line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert {name for name in imports if name.startswith("bridge")} == {"bridge.sinks"}


@pytest.mark.parametrize("policy", ["skip", "dlq"])
def test_an_event_the_plugin_rejects_gets_the_tables_on_poison_and_the_rest_is_written(tmp_path, policy):
    aws = FakeAWS()
    aws.create_table("Phones", key_names=("Company",))
    for key in ("Acme", "Bolt Co", "Cato", "Acme"):
        aws.write("Phones", key, 1)
    lines, dead = tmp_path / "lines.txt", tmp_path / "dead.jsonl"
    table = {"name": "Phones", "on_poison": policy, "snapshot": "never"} | (
        {"dead_letter_path": str(dead)} if policy == "dlq" else {}
    )
    config = parse_config(
        json.dumps(
            {
                "tables": [table],
                "sinks": [{"type": "lines", "path": str(lines)}],
                "checkpoint": {"path": str(tmp_path / "cp.json")},
            }
        )
    )
    run = Pipeline(config, dynamodb=aws.dynamodb, streams=aws.streams)
    run.run(until_caught_up=True)
    assert [line.split(" ")[1] for line in lines.read_text().splitlines()] == ["Acme", "Cato", "Acme"]
    assert run.poison_counts == {("Phones", policy): 1}
    if policy == "dlq":
        (letter,) = [json.loads(line) for line in dead.read_text().splitlines()]
        assert letter["stage"] == "LinesSink" and "cannot be one field" in letter["reason"]
        assert letter["record"]["dynamodb"]["Keys"] == {"Company": {"S": "Bolt Co"}}
