"""config: hostile or broken files (alias bombs, deep nesting, stray bytes, nonsense numbers, secrets on a bad
line, missing TLS files) are one-paragraph config errors - exit 2, file and line named, no traceback, no hang,
no secret echoed."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from bridge.checkpoint import CheckpointStore
from bridge.commands.cli import main
from bridge.config import load_config, parse_config
from bridge.errors import ConfigError
from tests.bridge_process import run_bridge

TABLES = "tables: [{name: Phones}]\n"
SINKS = "sinks: [{type: stdout}]\n"
SECRET = "hunter2-Secret"


def _write(tmp_path, content: str | bytes, name: str = "bridge.yaml"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def _config_error(text: str | bytes, tmp_path) -> str:
    """The message of the `ConfigError` that loading `text` from `bridge.yaml` raises."""
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    return str(caught.value)


def _cli_errors(tmp_path, content: str | bytes, capsys, log_format: str = "text") -> list[str]:
    """stderr of `validate` and of `run` on `content`; each must exit 2 with one line and no traceback."""
    config = _write(tmp_path, content)
    errors = []
    for command in ("validate", "run"):
        code = main(["--log-format", log_format, command, "--config", str(config)])
        err = capsys.readouterr().err
        assert code == 2, err
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
        errors.append(err)
    return errors


# Case 6: a top-level key left out made the error-line lookup loop forever.


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SINKS, "tables: expected at least one table (or a `discover:` section"),
        (TABLES, "sinks: missing required key"),
        ("", "holds no settings"),
        ("# only a comment\n", "holds no settings"),
    ],
    ids=["no-tables", "no-sinks", "empty", "only-comments"],
)
def test_a_config_without_tables_or_sinks_or_anything_is_an_error_not_a_hang(text, expected, tmp_path, capsys):
    assert expected in _config_error(text, tmp_path)
    for err in _cli_errors(tmp_path, text, capsys):
        assert err.startswith(f"cdc-bridge: config error: {tmp_path / 'bridge.yaml'}") and expected in err


def test_the_bridge_command_without_a_tables_section_exits_2_instead_of_spinning(tmp_path):
    config = _write(tmp_path, SINKS)
    for command in ("validate", "run"):
        result = run_bridge(command, "--config", str(config), timeout=60)
        assert result.returncode == 2
        assert "tables: expected at least one table (or a `discover:` section" in result.stderr


# Case 10: alias bombs, deep nesting, bytes that are not UTF-8, values YAML cannot construct.


def _alias_bomb(levels: int = 9) -> str:
    text = 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for level in range(1, levels + 1):
        text += f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]\n"
    return TABLES + SINKS + text


@pytest.mark.timeout(20)
def test_an_alias_bomb_is_refused_before_it_grows(tmp_path, capsys):
    text = _alias_bomb()
    assert len(text) < 1000
    tracemalloc.start()
    try:
        message = _config_error(text, tmp_path)
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024 * 1024
    assert "bridge.yaml, line " in message and "aliases" in message
    for err in _cli_errors(tmp_path, text, capsys):
        assert "aliases" in err


def test_aliases_and_merge_keys_of_shared_settings_still_work():
    config = parse_config("tables: [&t {name: A, key: primary}, {<<: *t, name: B}]\nsinks: [&s {type: stdout}, *s]\n")
    assert [(t.name, t.key) for t in config.tables] == [("A", "primary"), ("B", "primary")]
    assert [s.type for s in config.sinks] == ["stdout", "stdout"]


@pytest.mark.timeout(20)
def test_a_recursive_alias_is_an_error_with_its_line(tmp_path, capsys):
    text = SINKS + "tables: &t [{name: Phones, exclude_attributes: *t}]\n"
    assert "bridge.yaml, line 2" in _config_error(text, tmp_path)
    for err in _cli_errors(tmp_path, text, capsys):
        assert "recursive alias" in err


@pytest.mark.parametrize(
    "text",
    [
        SINKS + "tables: " + "[" * 20_000 + "]" * 20_000 + "\n",
        SINKS + "tables:\n" + "".join(f"{' ' * i}- \n" for i in range(0, 2_000)),
        SINKS + "tables: &n0 [{name: Phones}]\n" + "".join(f"x{i}: &n{i + 1} [[[[[*n{i}]]]]]\n" for i in range(300)),
    ],
    ids=["flow-brackets", "block-sequences", "aliases-of-aliases"],
)
def test_deeply_nested_yaml_is_an_error_not_a_recursion_error(text, tmp_path, capsys):
    message = _config_error(text, tmp_path)
    assert "bridge.yaml, line " in message and "nested" in message
    for err in _cli_errors(tmp_path, text, capsys):
        assert "nested" in err


def test_a_deeply_nested_checkpoint_file_is_a_config_error(tmp_path, capsys):
    checkpoint = _write(tmp_path, '{"version": 1, "streams": ' + "[" * 100_000 + "]" * 100_000 + "}", "cp.json")
    with pytest.raises(ConfigError, match=r"checkpoint file .*cp\.json"):
        CheckpointStore(checkpoint).load()
    config = _write(tmp_path, TABLES + SINKS + f"checkpoint: {{path: '{checkpoint}'}}\n")
    assert main(["checkpoints", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "cp.json" in err and "Traceback" not in err


def test_a_config_that_is_not_utf8_names_the_byte_offset(tmp_path, capsys):
    content = (TABLES + SINKS + "checkpoint: {path: caf\xe9.json}\n").encode("latin-1")
    offset = content.index(b"\xe9")
    message = _config_error(content, tmp_path)
    assert f"bridge.yaml, line 3: not UTF-8 text: the byte at offset {offset} " in message
    for err in _cli_errors(tmp_path, content, capsys):
        assert f"offset {offset}" in err


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "shutdown_timeout_s: 2001-13-45\n",
            "line 3, column 21: not valid YAML: cannot read this timestamp: month must be in 1..12",
        ),
        (
            "shutdown_timeout_s: " + "9" * 5000 + "\n",
            "line 3, column 21: not valid YAML: cannot read this int: Exceeds the limit (4300 digits)",
        ),
        ("? [a, b]\n: c\n", "line 3: top level: expected a key that is a word or a string"),
    ],
    ids=["impossible-date", "5000-digit-number", "list-as-key"],
)
def test_a_value_yaml_cannot_construct_is_an_error_with_its_line(line, expected, tmp_path, capsys):
    assert expected in _config_error(TABLES + SINKS + line, tmp_path)
    _cli_errors(tmp_path, TABLES + SINKS + line, capsys)


NONSENSE_NUMBERS = [
    ("source: {max_workers: 0}", "source.max_workers: expected a whole number >= 1, got 0"),
    ("source: {poll_interval_ms: 0}", "source.poll_interval_ms: expected a whole number >= 1"),
    ("source: {discovery_interval_s: 0}", "source.discovery_interval_s: expected a number > 0"),
    ("source: {discovery_interval_s: .inf}", "source.discovery_interval_s: expected a finite number"),
    ("checkpoint: {interval_s: .nan}", "checkpoint.interval_s: expected a finite number"),
    ("checkpoint: {interval_s: 0.0}", "checkpoint.interval_s: expected a number > 0"),
    ("shutdown_timeout_s: .nan", "shutdown_timeout_s: expected a finite number"),
    ("shutdown_timeout_s: -.inf", "shutdown_timeout_s: expected a finite number"),
    ("shutdown_timeout_s: 0", "shutdown_timeout_s: expected a number > 0"),
    ("shutdown_timeout_s: 1e300", "shutdown_timeout_s: expected a number > 0 and <= 86400"),
    ("shutdown_timeout_s: 1" + "0" * 400, "shutdown_timeout_s: expected a finite number"),
    ("shutdown_timeout_s: '${CDC_TEST_NAN}'", "shutdown_timeout_s: expected a finite number"),
    ("metrics: {retention_warning_hours: .nan}", "metrics.retention_warning_hours: expected a finite number"),
    ("metrics: {port: 0}", "metrics.port: expected a whole number >= 1"),
    ("tables: [{name: ''}]", "tables[0].name: expected a table name: 1-255 characters"),
    ("tables: [{name: 'Pho nes'}]", "tables[0].name: expected a table name: 1-255 characters"),
    ("tables: [{name: " + "P" * 256 + "}]", "tables[0].name: expected a table name: 1-255 characters"),
    (
        "sinks: [{type: kafka, bootstrap_servers: k, partitions: 0}]",
        "sinks[0].partitions: expected a whole number >= 1",
    ),
    (
        "sinks: [{type: kafka, bootstrap_servers: k, replication_factor: 0}]",
        "sinks[0].replication_factor: expected a whole number >= 1",
    ),
    (
        "sinks: [{type: kafka, bootstrap_servers: k, max_request_size: 0}]",
        "sinks[0].max_request_size: expected a whole number >= 1",
    ),
    ("sinks: [{type: kafka, bootstrap_servers: ' , '}]", "sinks[0].bootstrap_servers: expected at least one"),
]


@pytest.mark.parametrize(("line", "expected"), NONSENSE_NUMBERS, ids=[n[0][:40] for n in NONSENSE_NUMBERS])
def test_values_that_validate_accepted_and_run_crashed_on_are_refused(line, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CDC_TEST_NAN", "nan")
    text = (TABLES if not line.startswith("tables:") else "") + (SINKS if not line.startswith("sinks:") else "")
    text += line + "\n"
    message = _config_error(text, tmp_path)
    assert message.startswith(f"{tmp_path / 'bridge.yaml'}, line ") and expected in message
    for err in _cli_errors(tmp_path, text, capsys):
        assert expected in err


def test_sensible_bounds_are_accepted():
    config = parse_config(
        "tables: [{name: my-table.v2_x}]\nsinks: [{type: kafka, bootstrap_servers: k, linger_ms: 0, batch_size: 0}]\n"
        "source: {max_workers: 1, poll_interval_ms: 1, discovery_interval_s: 0.5}\nshutdown_timeout_s: 0.1\n"
        "metrics: {retention_warning_hours: 0}\n"
    )
    assert config.source.max_workers == 1 and config.shutdown_timeout_s == 0.1
    assert config.sinks[0].settings.linger_ms == 0 and config.metrics.retention_warning_hours == 0


# Case 11: a syntax error on a line holding a literal secret must not echo it.

SECRET_LINES = [
    f"    sasl_password: @{SECRET}\n",
    f"    sasl_password: `{SECRET}\n",
    f'    sasl_password: "{SECRET}\\q"\n',
    f"    sasl_password: !{SECRET} x\n",
    f"    sasl_password: *{SECRET}\n",
    f"    sasl_password: {SECRET}: x\n",
    f'    sasl_password: "{SECRET}\n',
    f"    sasl_password: &{SECRET}\n    sasl_username: &{SECRET} u\n",
    f"    sasl_password: 'x'{SECRET}\n",
    f"    sasl_password: \x07{SECRET}\n",
]


@pytest.mark.parametrize("line", SECRET_LINES, ids=[f"secret-{i}" for i in range(len(SECRET_LINES))])
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_yaml_error_on_a_secret_line_never_prints_the_secret(line, log_format, tmp_path, capsys):
    text = TABLES + "sinks:\n  - type: kafka\n    bootstrap_servers: k:9092\n" + line
    message = _config_error(text, tmp_path)
    assert SECRET[:5] not in message and "sasl_password" not in message
    assert "bridge.yaml, line " in message and "not valid YAML" in message
    for err in _cli_errors(tmp_path, text, capsys, log_format):
        assert SECRET[:5] not in err and "not valid YAML" in err
        if log_format == "json":
            assert json.loads(err)["level"] == "ERROR"


# Case 12: TLS files that do not exist are config errors, not an unreachable broker.

KAFKA_TLS = TABLES + "sinks:\n  - type: kafka\n    bootstrap_servers: k:9093\n    security_protocol: SSL\n"


@pytest.mark.parametrize("name", ["ssl_cafile", "ssl_certfile", "ssl_keyfile"])
def test_a_tls_file_that_does_not_exist_names_the_field_and_the_file(name, tmp_path, capsys):
    text = KAFKA_TLS + f"    {name}: {tmp_path / 'missing.pem'}\n"
    message = _config_error(text, tmp_path)
    assert f"bridge.yaml, line 6: sinks[0].{name}: " in message and "missing.pem" in message
    for err in _cli_errors(tmp_path, text, capsys):
        assert f"sinks[0].{name}: " in err and "no Kafka broker" not in err


def test_a_tls_file_that_is_a_folder_is_refused(tmp_path):
    assert "sinks[0].ssl_cafile: " in _config_error(KAFKA_TLS + f"    ssl_cafile: {tmp_path}\n", tmp_path)


def test_tls_files_that_exist_are_accepted(tmp_path):
    ca = _write(tmp_path, "-----BEGIN CERTIFICATE-----\n", "ca.pem")
    config = parse_config(KAFKA_TLS + f"    ssl_cafile: {ca}\n")
    assert config.sinks[0].settings.ssl_cafile == str(ca)
