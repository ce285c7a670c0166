"""docs/config.md and config/example.yaml are generated from the config dataclasses and kept current."""

from __future__ import annotations

import dataclasses

from bridge.commands import config_docs
from bridge.config import load_config


def test_generated_files_are_current_run_make_docs_when_this_fails():
    for path, text in config_docs.outputs().items():
        assert (config_docs.ROOT / path).read_text() == text, f"{path} is stale: run `make docs`"


def test_example_config_validates():
    config = load_config(config_docs.ROOT / config_docs.EXAMPLE)
    assert [sink.type for sink in config.sinks] == ["file", "kafka", "stdout"]


def test_example_and_reference_mention_every_field_of_every_section():
    example = (config_docs.ROOT / config_docs.EXAMPLE).read_text()
    reference = (config_docs.ROOT / config_docs.DOCS).read_text()
    sections = list(config_docs.sections())
    assert {s.path for s in sections} >= {"top level", "tables[]", "source", "encoding", "checkpoint"}
    for section in sections:
        assert f"## {section.path}" in reference
        for field in dataclasses.fields(section.cls):
            assert f"| `{field.name}` |" in reference, f"{section.path}.{field.name} missing in docs/config.md"
            assert f"{field.name}:" in example, f"{section.path}.{field.name} missing in config/example.yaml"
            assert field.metadata.get("doc"), f"{section.path}.{field.name} has no description"


def test_example_shows_each_default_value():
    config = load_config(config_docs.ROOT / config_docs.EXAMPLE)
    for table in config.tables:
        for field in dataclasses.fields(table):
            if field.default is not dataclasses.MISSING:
                assert getattr(table, field.name) == field.default, f"tables[0].{field.name}"
    for sink in config.sinks:
        for field in dataclasses.fields(sink.settings):
            if field.default is not dataclasses.MISSING:
                assert getattr(sink.settings, field.name) == field.default, f"{sink.type}.{field.name}"
    for name in ("source", "encoding", "checkpoint"):
        assert getattr(config, name) == type(getattr(config, name))()


def test_check_mode_reports_stale_files(tmp_path, monkeypatch):
    monkeypatch.setattr(config_docs, "ROOT", tmp_path)
    assert config_docs.main(["--check"]) == 1
    assert config_docs.main([]) == 0
    assert config_docs.main(["--check"]) == 0
