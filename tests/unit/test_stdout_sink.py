"""stdout sink: json or pretty, `fields` selection, colour only on a terminal (or when asked)."""

from __future__ import annotations

import io
import json
import sys

import pytest

from bridge.codec import EnvelopeCodec
from bridge.config import parse_config
from bridge.errors import ConfigError
from bridge.sinks import TableEncoding
from bridge.sinks.stdout import StdoutSink
from tests.change_events import change


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _printed(monkeypatch, out: io.StringIO, **settings) -> str:
    config = parse_config(json.dumps({"tables": [{"name": "Phones"}], "sinks": [{"type": "stdout", **settings}]}))
    monkeypatch.setattr(sys, "stdout", out)
    sink = StdoutSink(config.sinks[0].settings, {"Phones": TableEncoding(EnvelopeCodec())})
    sink.open()
    sink.write([change(1, size=5), change(2, op="u", size=6)])
    sink.flush(5)
    sink.close()
    return out.getvalue()


def test_json_prints_one_line_per_event_with_topic_key_and_envelope(monkeypatch):
    lines = _printed(monkeypatch, io.StringIO()).splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert list(first)[:4] == ["topic", "key", "op", "keys"]
    assert first["topic"] == "dynamodb.Phones" and first["key"] == "Acme" and first["after"]["Size"] == 5


def test_pretty_prints_indented_json(monkeypatch):
    text = _printed(monkeypatch, io.StringIO(), format="pretty")
    assert text.startswith('{\n  "topic": "dynamodb.Phones",\n')
    decoder = json.JSONDecoder()
    first, end = decoder.raw_decode(text)
    assert first["op"] == "c" and decoder.raw_decode(text[end:].lstrip())[0]["op"] == "u"


def test_fields_select_dotted_paths(monkeypatch):
    lines = _printed(monkeypatch, io.StringIO(), fields=["op", "key", "after.Size", "source.sequence_number"])
    assert [json.loads(line) for line in lines.splitlines()] == [
        {"op": "c", "key": "Acme", "after": {"Size": 5}, "source": {"sequence_number": "000000000000000000001"}},
        {"op": "u", "key": "Acme", "after": {"Size": 6}, "source": {"sequence_number": "000000000000000000002"}},
    ]


def test_no_colour_when_stdout_is_not_a_terminal(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\x1b[" not in _printed(monkeypatch, io.StringIO())


def test_colour_on_a_terminal_marks_names_and_the_operation(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    text = _printed(monkeypatch, Terminal())
    assert '\x1b[36m"op"\x1b[0m:\x1b[32m"c"\x1b[0m' in text and '\x1b[33m"u"\x1b[0m' in text


def test_no_color_environment_variable_turns_colour_off_on_a_terminal(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in _printed(monkeypatch, Terminal())


def test_colour_never_wins_over_a_terminal(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\x1b[" not in _printed(monkeypatch, Terminal(), color="never")


@pytest.mark.parametrize("fields", [["afterr.Size"], ["after..Size"], ["ops"]])
def test_fields_outside_the_event_are_config_errors(fields):
    text = json.dumps({"tables": [{"name": "T"}], "sinks": [{"type": "stdout", "fields": fields}]})
    with pytest.raises(ConfigError, match=r"sinks\[0\]\.fields: field"):
        parse_config(text)


def test_the_kafka_wire_format_does_not_reach_stdout(monkeypatch):
    # with a schema registry the codec frames values for Kafka (confluent); stdout prints the envelope itself
    config = parse_config(json.dumps({"tables": [{"name": "Phones"}], "sinks": [{"type": "stdout"}]}))
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    sink = StdoutSink(config.sinks[0].settings, {"Phones": TableEncoding(EnvelopeCodec(wire_format="confluent"))})
    sink.open()
    sink.write([change(1, size=5)])
    sink.flush(5)
    assert json.loads(out.getvalue())["after"]["Size"] == 5
