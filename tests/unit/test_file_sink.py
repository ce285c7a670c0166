"""file sink: path templates, rotation by size and time, fsync on flush, one open file per table."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import fastavro
import pytest

from bridge.codec import EnvelopeCodec
from bridge.config import parse_config
from bridge.errors import ConfigError
from bridge.sinks import TableEncoding
from bridge.sinks.file import FileSink
from tests.change_events import change

NOON = datetime(2026, 11, 28, 12, 30, tzinfo=UTC).timestamp()


def _sink(tmp_path: Path, tables=("Phones",), **settings) -> FileSink:
    settings = {"path": str(tmp_path / "{table}/{date}/{table}-{hour}"), **settings}
    config = parse_config(
        json.dumps({"tables": [{"name": t} for t in tables], "sinks": [{"type": "file", **settings}]})
    )
    sink = FileSink(config.sinks[0].settings, {t: TableEncoding(EnvelopeCodec()) for t in tables})
    sink.clock = lambda: NOON
    return sink


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_path_template_names_table_date_and_hour_in_utc(tmp_path):
    sink = _sink(tmp_path)
    sink.open()
    sink.write([change(1)])
    sink.flush(5)
    sink.close()
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jsonl")] == [
        "Phones/2026-11-28/Phones-12-0000.jsonl"
    ]


def test_jsonl_lines_are_the_stdout_view_without_topic(tmp_path):
    sink = _sink(tmp_path)
    sink.open()
    sink.write([change(1, size=5), change(2, op="d", size=5)])
    sink.flush(5)
    sink.close()
    (path,) = tmp_path.rglob("*.jsonl")
    first, second = _lines(path)
    assert first["key"] == "Acme" and first["op"] == "c" and first["after"]["Size"] == 5 and "topic" not in first
    assert second["op"] == "d" and second["after"] is None


def test_a_new_hour_starts_a_new_file(tmp_path):
    sink = _sink(tmp_path)
    sink.open()
    sink.write([change(1)])
    sink.clock = lambda: NOON + 3600
    sink.write([change(2)])
    sink.flush(5)
    sink.close()
    names = sorted(p.name for p in tmp_path.rglob("*.jsonl"))
    assert names == ["Phones-12-0000.jsonl", "Phones-13-0000.jsonl"]


def test_rotation_by_size_starts_numbered_files_and_keeps_order(tmp_path):
    sink = _sink(tmp_path, rotate_bytes=1000)
    sink.open()
    for sequence in range(1, 11):
        sink.write([change(sequence)])
    sink.flush(5)
    sink.close()
    paths = sorted(tmp_path.rglob("*.jsonl"))
    assert len(paths) > 2
    assert all(p.stat().st_size < 1000 + 700 for p in paths)  # rotated once past the limit
    sequences = [int(e["source"]["sequence_number"]) for p in paths for e in _lines(p)]
    assert sequences == list(range(1, 11))


def test_rotation_by_time_starts_a_new_file_after_the_interval(tmp_path):
    sink = _sink(tmp_path, path=str(tmp_path / "{table}"), rotate_interval_s=60)
    sink.open()
    sink.write([change(1)])
    sink.clock = lambda: NOON + 59
    sink.write([change(2)])
    sink.clock = lambda: NOON + 60
    sink.write([change(3)])
    sink.flush(5)
    sink.close()
    paths = sorted(tmp_path.glob("Phones-*.jsonl"))
    assert [len(_lines(p)) for p in paths] == [2, 1]


def test_a_restart_never_appends_to_an_existing_file(tmp_path):
    for sequence in (1, 2):
        sink = _sink(tmp_path)
        sink.open()
        sink.write([change(sequence)])
        sink.flush(5)
        sink.close()
    assert sorted(p.name for p in tmp_path.rglob("*.jsonl")) == ["Phones-12-0000.jsonl", "Phones-12-0001.jsonl"]


def test_one_open_file_per_table(tmp_path):
    sink = _sink(tmp_path, tables=("Phones", "Orders"), rotate_bytes=1000)
    sink.open()
    for sequence in range(1, 9):
        sink.write([change(sequence, table="Phones"), change(100 + sequence, table="Orders")])
        assert len(sink.files) == 2
        assert len({f.path for f in sink.files.values()}) == 2
        assert all(not f.handle.closed for f in sink.files.values())
    sink.close()
    assert {p.parent.parent.name for p in tmp_path.rglob("*.jsonl")} == {"Phones", "Orders"}


def test_flush_fsyncs_every_written_file_before_returning(tmp_path, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))

    sink = _sink(tmp_path, tables=("Phones", "Orders"), format="avro")
    sink.open()
    sink.write([change(1, table="Phones"), change(2, table="Orders")])
    monkeypatch.setattr(os, "fsync", recording_fsync)
    sink.flush(5)
    files = {str(f.path.resolve()) for f in sink.files.values()}
    assert files <= set(synced)
    for current in sink.files.values():  # the new files' folders are synced too (directory entries)
        assert str(current.path.parent.resolve()) in synced
    synced.clear()
    sink.flush(5)
    assert synced == []  # nothing written since: nothing to sync
    sink.close()
    for path in files:
        with open(path, "rb") as file:
            assert len(list(fastavro.reader(file))) == 1


def test_unwritable_folder_is_a_config_error_at_open(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    sink = _sink(tmp_path, path=str(blocker / "{table}"))
    with pytest.raises(ConfigError, match="cannot create folder"):
        sink.open()


@pytest.mark.parametrize("file_format", ["jsonl", "avro"])
def test_the_kafka_wire_format_does_not_reach_files(tmp_path, file_format):
    # with a schema registry the codec frames values for Kafka (confluent, registered by the Kafka sink only)
    config = parse_config(
        json.dumps(
            {
                "tables": [{"name": "Phones"}],
                "sinks": [{"type": "file", "path": str(tmp_path / "out"), "format": file_format}],
            }
        )
    )
    sink = FileSink(config.sinks[0].settings, {"Phones": TableEncoding(EnvelopeCodec(wire_format="confluent"))})
    sink.clock = lambda: NOON
    sink.open()
    sink.write([change(1, size=5)])
    sink.flush(5)
    sink.close()
    (written,) = tmp_path.glob("out*")
    if file_format == "avro":
        with written.open("rb") as file:
            (envelope,) = list(fastavro.reader(file))
        assert envelope["op"] == "c" and envelope["after"]["Size"]["value"] == 5
    else:
        assert json.loads(written.read_text())["after"]["Size"] == 5
