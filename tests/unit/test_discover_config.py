"""The `discover:` config section: patterns and tags checked with the field path, a template that has every
setting of a table but its name and passes the same checks as the tables, `tables` optional beside it."""

from __future__ import annotations

import pytest

from bridge.config import DiscoverConfig, TableConfig, TableTemplate, parse_config
from bridge.errors import ConfigError
from tests.bridge_process import run_bridge

STDOUT = "sinks: [{type: stdout}]\n"
KAFKA = "sinks: [{type: kafka, bootstrap_servers: 'k:9092'}]\n"


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as error:
        parse_config(text, "f.yaml")
    return str(error.value)


@pytest.mark.parametrize("pattern", ["orders-*", "*", "orders.v?", "[abc]-table", "[!x]y_[0-9]*", "Exact.Name-1"])
def test_patterns_of_table_names_are_accepted(pattern):
    config = parse_config(f"discover: {{include: ['{pattern}'], exclude: ['{pattern}-old']}}\n{STDOUT}")
    assert config.discover.include == (pattern,)
    assert config.discover.exclude == (f"{pattern}-old",)
    assert config.discover.enabled


@pytest.mark.parametrize("pattern", ["orders/*", "", "[abc", "a b", "orders]", "[]", "t$"])
def test_a_pattern_that_cannot_match_a_table_name_is_refused_naming_its_index(pattern):
    message = _error(f"discover: {{include: [orders-*, '{pattern}']}}\n{STDOUT}")
    assert message.startswith(f"f.yaml, line 1: discover.include[1]: {pattern!r} is not a pattern of table names")


def test_a_bad_exclude_pattern_is_refused_naming_exclude():
    message = _error(f"discover:\n  include: ['*']\n  exclude: ['tmp/*']\n{STDOUT}")
    assert message.startswith("f.yaml, line 3: discover.exclude[0]: 'tmp/*' is not a pattern of table names")


def test_tags_alone_enable_discover():
    config = parse_config(f"discover: {{tags: {{cdc: enabled, team: ''}}}}\n{STDOUT}")
    assert config.discover.tags == {"cdc": "enabled", "team": ""}
    assert config.discover.include == () and config.discover.enabled


def test_tags_that_are_not_a_mapping_are_refused():
    assert _error(f"discover: {{tags: [cdc]}}\n{STDOUT}").startswith(
        "f.yaml, line 1: discover.tags: expected a mapping of strings to strings, got list"
    )


@pytest.mark.parametrize(("value", "kind"), [("1", "int 1"), ("true", "bool True"), ("[a]", "list")])
def test_a_tag_value_that_is_not_a_string_is_refused_naming_its_key(value, kind):
    assert f"discover.tags.cdc: expected a string, got {kind}" in _error(
        f"discover: {{tags: {{cdc: {value}}}}}\n{STDOUT}"
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [("k" * 129, "v"), ("k", "v" * 257)],
    ids=["key-of-129", "value-of-257"],
)
def test_tag_keys_and_values_longer_than_dynamodb_holds_are_refused(key, value):
    message = _error(f"discover: {{tags: {{{key}: {value}}}}}\n{STDOUT}")
    assert f"discover.tags.{key}: a DynamoDB tag has a key of 1-128 characters and a value of at most 256" in message


def test_an_empty_tag_key_is_refused():
    assert "a DynamoDB tag has a key of 1-128 characters" in _error(f"discover: {{tags: {{'': v}}}}\n{STDOUT}")


def test_tags_of_the_longest_lengths_dynamodb_holds_are_accepted():
    config = parse_config(f"discover: {{tags: {{{'k' * 128}: {'v' * 256}}}}}\n{STDOUT}")
    assert config.discover.tags == {"k" * 128: "v" * 256}


def test_a_template_name_is_refused():
    message = _error(f"discover: {{include: ['*'], template: {{name: T}}}}\n{STDOUT}")
    assert message.startswith("f.yaml, line 1: discover.template.name: a template has no name")


def test_a_template_alone_finds_nothing_and_is_refused():
    message = _error(f"tables: [{{name: T}}]\ndiscover: {{template: {{snapshot: never}}}}\n{STDOUT}")
    assert message.startswith("f.yaml, line 2: discover: give `include`, `exclude` or `tags`")


def test_tables_are_optional_with_discover():
    config = parse_config(f"discover: {{include: [orders-*]}}\n{STDOUT}")
    assert config.tables == ()


def test_tables_are_required_without_discover():
    assert _error(STDOUT).startswith("f.yaml: tables: expected at least one table")


def test_explicit_tables_and_a_template_go_together():
    config = parse_config(
        "tables: [{name: Users, snapshot: never}]\n"
        "discover: {include: [orders-*], template: {snapshot: initial, key: primary, exclude_attributes: [Email]}}\n"
        + STDOUT
    )
    assert [table.name for table in config.tables] == ["Users"]
    assert config.tables[0].snapshot == "never"
    template = config.discover.template
    assert (template.snapshot, template.key, template.exclude_attributes) == ("initial", "primary", ("Email",))


def test_the_template_refuses_an_unknown_key_naming_its_path():
    message = _error(f"discover: {{include: ['*'], template: {{strat_position: latest}}}}\n{STDOUT}")
    assert "discover.template.strat_position: unknown key (did you mean 'start_position'?)" in message


def test_the_template_needs_at_least_one_operation():
    message = _error(f"discover: {{include: ['*'], template: {{include_ops: []}}}}\n{STDOUT}")
    assert message.startswith("f.yaml, line 1: discover.template.include_ops: expected at least one of c, u, d")


def test_an_initial_only_template_beside_a_streaming_table_is_refused():
    message = _error(
        f"tables: [{{name: T}}]\ndiscover: {{include: ['*'], template: {{snapshot: initial_only}}}}\n{STDOUT}"
    )
    assert "discover.template.snapshot: `initial_only` ends the run" in message


def test_an_initial_only_table_beside_a_streaming_template_is_refused():
    message = _error(f"tables: [{{name: T, snapshot: initial_only}}]\ndiscover: {{include: ['*']}}\n{STDOUT}")
    assert "tables[0].snapshot: `initial_only` ends the run" in message


def test_initial_only_everywhere_is_accepted():
    config = parse_config(
        f"tables: [{{name: T, snapshot: initial_only}}]\n"
        f"discover: {{include: ['*'], template: {{snapshot: initial_only}}}}\n{STDOUT}"
    )
    assert config.discover.template.snapshot == "initial_only"


EXACTLY_ONCE = "delivery: exactly_once\ncheckpoint: {store: kafka}\n" + KAFKA


def test_exactly_once_refuses_a_dead_letter_file_in_the_template():
    message = _error(
        "discover: {include: ['*'], template: {on_poison: dlq, dead_letter_path: dead.jsonl}}\n" + EXACTLY_ONCE
    )
    assert "discover.template.dead_letter_path: with `delivery: exactly_once` dead letters go to" in message


def test_exactly_once_accepts_a_template_with_kafka_dead_letters():
    config = parse_config("discover: {include: ['*'], template: {on_poison: dlq}}\n" + EXACTLY_ONCE)
    assert config.discover.template.on_poison == "dlq" and config.discover.template.dead_letter_path is None


TOMBSTONES = "sinks: [{type: kafka, bootstrap_servers: 'k:9092', tombstones: true}]\n"


def test_tombstones_need_key_primary_in_the_template():
    message = _error("discover: {include: ['*']}\n" + TOMBSTONES)
    assert "discover.template.key: `tombstones: true` on sinks[0] needs `key: primary`" in message
    assert "several items of the tables found" in message


def test_tombstones_accept_a_template_with_key_primary():
    config = parse_config("discover: {include: ['*'], template: {key: primary}}\n" + TOMBSTONES)
    assert config.discover.template.key == "primary"


def test_a_file_path_without_table_is_refused_when_discover_adds_tables_to_share_it():
    # the explicit table and every table found would all write to `out.jsonl`
    message = _error("tables: [{name: T}]\ndiscover: {include: [orders-*]}\nsinks: [{type: file, path: out}]\n")
    assert "sinks[0].path: template 'out' needs {table}" in message


def test_a_topic_template_that_no_table_name_makes_legal_is_refused_with_discover():
    message = _error(
        "discover: {include: [orders-*]}\nsinks: [{type: kafka, bootstrap_servers: 'k:9092', topic: 'cdc/{table}'}]\n"
    )
    assert "sinks[0].topic:" in message and "is not a legal Kafka topic name" in message


def test_the_template_gives_its_settings_to_each_table_found_with_its_name():
    template = TableTemplate(snapshot="never", key="primary", include_ops=("c", "d"), exclude_attributes=("Email",))
    table = template.for_table("orders-1")
    assert type(table) is TableConfig
    assert table == TableConfig(
        name="orders-1", snapshot="never", key="primary", include_ops=("c", "d"), exclude_attributes=("Email",)
    )


def test_with_found_adds_the_tables_found_after_the_explicit_ones_with_the_template_settings():
    config = parse_config(
        "tables: [{name: Users, snapshot: never}]\n"
        "discover: {include: [orders-*], template: {start_position: latest, snapshot: never}}\n" + STDOUT
    )
    found = config.with_found(["orders-1", "orders-2"])
    assert [table.name for table in found.tables] == ["Users", "orders-1", "orders-2"]
    assert found.tables[0] == config.tables[0]
    assert found.table("orders-2") == config.discover.template.for_table("orders-2")
    assert found.table("orders-2").start_position == "latest"
    assert config.tables == (config.tables[0],)  # the config itself is unchanged
    assert found.discover == config.discover and found.sinks == config.sinks


def test_with_found_of_no_tables_keeps_the_tables():
    config = parse_config(f"tables: [{{name: Users}}]\ndiscover: {{tags: {{cdc: 'on'}}}}\n{STDOUT}")
    assert config.with_found([]).tables == config.tables


def test_no_discover_section_is_disabled():
    config = parse_config(f"tables: [{{name: T}}]\n{STDOUT}")
    assert config.discover == DiscoverConfig() and not config.discover.enabled


def test_validate_with_an_invalid_pattern_exits_2_with_one_line_and_no_traceback(tmp_path):
    path = tmp_path / "bridge.yaml"
    path.write_text("discover:\n  include: ['orders/*']\nsinks: [{type: stdout}]\n")
    result = run_bridge("validate", "--config", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"cdc-bridge: config error: {path}, line 2: discover.include[0]: 'orders/*' is not a")
    assert "Traceback" not in result.stderr


def test_validate_checks_the_schema_file_of_the_template(tmp_path):
    path = tmp_path / "bridge.yaml"
    path.write_text("discover: {include: [orders-*], template: {schema: missing.avsc}}\nsinks: [{type: stdout}]\n")
    result = run_bridge("validate", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2, result.stdout
    assert "discover.template.schema: schema file missing.avsc cannot be read" in result.stderr
    assert "Traceback" not in result.stderr
