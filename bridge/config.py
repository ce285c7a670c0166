"""The YAML config: one frozen dataclass per section, each field with a description.

The dataclasses are the spec: loading validates against them (types, allowed values, unknown keys with a
"did you mean" hint), and every error names the file, the line, the field path and what was expected.
Strings may use `${VAR}` or `${VAR:-default}`; all missing variables are reported at once.
Relative paths in the file are relative to the working directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import re
import string
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from bridge.errors import ConfigError
from bridge.secret import Secret
from bridge.sinks import load_sink, sink_names

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def doc(text: str, **kwargs) -> Any:
    """A dataclass field with a description (shown in errors and the config reference)."""
    return field(metadata={"doc": text}, **kwargs)


@dataclass(frozen=True)
class SourceConfig:
    """Where and how DynamoDB Streams are read."""

    region: str = doc("AWS region of the tables.", default="us-east-1")
    endpoint_url: str | None = doc(
        "DynamoDB endpoint for local stacks (DynamoDB Local, moto); AWS when unset.", default=None
    )
    poll_interval_ms: int = doc("Wait between GetRecords calls on a shard that returned nothing.", default=250)
    discovery_interval_s: float = doc("How often shards are listed again to find new ones.", default=10.0)
    max_workers: int = doc("Shards read at the same time (threads).", default=8)


@dataclass(frozen=True)
class TableConfig:
    """One DynamoDB table whose changes are replicated."""

    name: str = doc("Table name.")
    start_position: Literal["trim_horizon", "latest"] = doc(
        "Where the first run (no checkpoint) starts: the oldest record kept (24 h) or only new changes.",
        default="trim_horizon",
    )
    on_trimmed: Literal["fail", "resume_from_trim_horizon"] = doc(
        "When a checkpoint is older than the stream's retention: stop with an error, or log the gap and go on.",
        default="fail",
    )
    key: Literal["partition", "primary"] = doc(
        "Kafka key: the partition key value, or partition + sort key as canonical JSON.", default="partition"
    )
    schema: str | None = doc(
        "Avro record schema file (.avsc) for the items: values are coerced to its field types (typed "
        "encoding); unset: the generic schema that holds any item. A name shipped in schemas/ also works.",
        default=None,
    )
    on_poison: Literal["fail", "dlq", "skip"] = doc(
        "A record that cannot be normalized, encoded or sent (too large): stop the bridge, write it to the "
        "dead-letter destination and go on, or count and log it and go on.",
        default="fail",
    )
    dead_letter_path: str | None = doc(
        "With `on_poison: dlq`: a JSON-lines file for dead letters; unset: the Kafka topic `<topic>.dlq`.",
        default=None,
    )
    include_ops: tuple[Literal["c", "u", "d"], ...] = doc(
        "Operations passed on to the sinks: `c` insert, `u` modify, `d` remove; others are dropped.",
        default=("c", "u", "d"),
    )
    drop_ttl_deletes: bool = doc(
        "Drop removals made by DynamoDB's time-to-live expiry (`ttl_expired`), keep user deletes.", default=False
    )
    exclude_attributes: tuple[str, ...] = doc(
        "Top-level attributes removed from `before` and `after` (e.g. PII). Key attributes stay in `keys` "
        "and in the Kafka key.",
        default=(),
    )


@dataclass(frozen=True)
class EncodingConfig:
    """How change events are encoded."""

    numbers: Literal["exact", "double", "string"] = doc(
        "DynamoDB numbers as exact long/decimal, lossy double, or text.", default="exact"
    )
    wire_format: Literal["single_object", "raw"] = doc(
        "Kafka value framing: Avro single-object encoding (C3 01 + fingerprint) or the bare Avro body.",
        default="single_object",
    )


@dataclass(frozen=True)
class CheckpointConfig:
    """Where progress is stored."""

    path: str = doc("Checkpoint file (JSON, replaced atomically).", default=".cdc-bridge/checkpoints.json")
    interval_s: float = doc("How often sinks are flushed and the checkpoint written.", default=1.0)


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus metrics, health endpoints and the retention warning."""

    port: int | None = doc(
        "Port serving /metrics (Prometheus), /healthz and /ready (9464 is usual); unset: no server.", default=None
    )
    host: str = doc("Address the metrics port listens on.", default="0.0.0.0")
    retention_warning_hours: float = doc(
        "Warn (log line and cdc_bridge_retention_warning) when records of a shard not yet checkpointed are this "
        "close to DynamoDB's 24 h trimming.",
        default=6.0,
    )


@dataclass(frozen=True)
class SinkSpec:
    """One sink: `type` picks the implementation, the other keys are its settings."""

    type: str
    settings: Any


@dataclass(frozen=True)
class Config:
    """The whole bridge configuration."""

    tables: tuple[TableConfig, ...] = doc("Tables to replicate.")
    sinks: tuple[SinkSpec, ...] = doc("Where every change goes (each table's changes go to every sink).")
    source: SourceConfig = doc("Stream reading.", default=SourceConfig())
    encoding: EncodingConfig = doc("Encoding.", default=EncodingConfig())
    checkpoint: CheckpointConfig = doc("Progress.", default=CheckpointConfig())
    metrics: MetricsConfig = doc("Metrics, health endpoints, retention warning.", default=MetricsConfig())
    shutdown_timeout_s: float = doc("On SIGTERM/SIGINT, how long sinks may take to flush.", default=30.0)

    def table(self, name: str) -> TableConfig:
        """The config of table `name`."""
        return next(table for table in self.tables if table.name == name)


class _Context:
    def __init__(self, file: str, lines: dict[str, int]) -> None:
        self.file = file
        self.lines = lines

    def error(self, path: str, message: str) -> ConfigError:
        """A `ConfigError` naming the file, the line of `path` (or of its nearest parent given in the file)."""
        line, parent = None, path
        while line is None and parent:
            line = self.lines.get(parent)
            parent = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", parent)
        where = f"{self.file}, line {line}" if line else self.file
        return ConfigError(f"{where}: {path or 'top level'}: {message}")


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _lines(node: yaml.Node, path: str, out: dict[str, int], ctx: _Context) -> None:
    """Record the line of every field path; a key given twice in one mapping is an error."""
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            child = _join(path, str(key.value))
            if key.value in seen:
                out[child] = key.start_mark.line + 1
                raise ctx.error(child, "key given twice in the same mapping (YAML would silently keep the last)")
            seen.add(key.value)
            out[child] = key.start_mark.line + 1
            _lines(value, child, out, ctx)
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            _lines(value, _join(path, index), out, ctx)


def _interpolate(value: Any, path: str, missing: list[tuple[str, str]]) -> Any:
    """`value` with `${VAR}` / `${VAR:-default}` replaced; unset variables are added to `missing` with their path."""
    if isinstance(value, str):

        def replace(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            missing.append((name, path))
            return ""

        return _VAR.sub(replace, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, _join(path, str(k)), missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, _join(path, i), missing) for i, v in enumerate(value)]
    return value


def check_template(template: str, allowed: tuple[str, ...]) -> str | None:
    """Why `template` is not a valid `{name}` template using only `allowed` names, or None when it is."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        return f"template {template!r} is malformed ({error}); write a literal brace as {{{{ or }}}}"
    names = ", ".join("{" + name + "}" for name in allowed)
    for _text, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in allowed or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            return f"template {template!r} uses {shown}; it may only use {names}"
    return None


def describe_type(tp: Any) -> str:
    """What a value of type `tp` must look like, in words (for errors and the config reference)."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(describe_type(a) for a in typing.get_args(tp) if a is not type(None)) + " (or null)"
    if origin is tuple:
        item = typing.get_args(tp)[0]
        if typing.get_origin(item) is Literal:
            return "a list of " + ", ".join(repr(a) for a in typing.get_args(item))
        return {str: "a list of strings"}.get(item, "a list")
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if tp is Secret:
        return "a string (secret)"
    return {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}.get(tp, str(tp))


def _convert(tp: Any, value: Any, path: str, ctx: _Context) -> Any:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in typing.get_args(tp):
            return None
        (tp,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(tp, value, path, ctx)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ctx.error(path, f"expected {describe_type(tp)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ctx.error(path, f"expected a list, got {type(value).__name__}")
        (item,) = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return tuple(_convert(item, v, _join(path, i), ctx) for i, v in enumerate(value))
    if tp is SinkSpec:
        return _sink(value, path, ctx)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path, ctx)
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):  # from ${VAR} interpolation
            return value.lower() == "true"
        if isinstance(value, bool):
            return value
    if tp in (int, float) and not isinstance(value, bool):
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = tp(value)
        if isinstance(value, int) or (tp is float and isinstance(value, float)):
            if value < 0:
                raise ctx.error(path, f"expected a number >= 0, got {value}")
            return tp(value)
    if tp is str and isinstance(value, str):
        return value
    if tp is Secret:
        if isinstance(value, str):
            return Secret(value)
        raise ctx.error(path, f"expected a string (secret; quote it or use ${{VAR}}), got a {type(value).__name__}")
    if tp is Any:
        return value
    raise ctx.error(path, f"expected {describe_type(tp)}, got {type(value).__name__} {value!r}")


def _sink(value: Any, path: str, ctx: _Context) -> SinkSpec:
    names = sink_names()
    if not isinstance(value, dict) or "type" not in value:
        raise ctx.error(path, f"expected a mapping with `type:` (one of {', '.join(names)})")
    kind = value["type"]
    if kind not in names:
        hint = difflib.get_close_matches(str(kind), names, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ctx.error(_join(path, "type"), f"unknown sink type {kind!r}{suggestion}; known: {', '.join(names)}")
    try:
        sink_class = load_sink(kind)
    except ConfigError as error:
        raise ctx.error(_join(path, "type"), str(error)) from None
    settings = {k: v for k, v in value.items() if k != "type"}
    return SinkSpec(kind, build(sink_class.Config, settings, path, ctx))


def build(cls: type, data: Any, path: str, ctx: _Context) -> Any:
    """An instance of dataclass `cls` from parsed YAML `data`, validated field by field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ctx.error(path, f"expected a mapping ({(cls.__doc__ or '').strip()}), got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            hint = difflib.get_close_matches(str(key), fields, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ctx.error(_join(path, str(key)), f"unknown key{suggestion}; expected one of {', '.join(fields)}")
    values = {}
    for name, spec in fields.items():
        if name in data:
            values[name] = _convert(hints[name], data[name], _join(path, name), ctx)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            what = spec.metadata.get("doc", describe_type(hints[name]))
            raise ctx.error(_join(path, name), f"missing required key ({what})")
    return cls(**values)


def _check(config: Config, ctx: _Context) -> None:
    if not config.tables:
        raise ctx.error("tables", "expected at least one table")
    if not config.sinks:
        raise ctx.error("sinks", "expected at least one sink")
    if config.metrics.port is not None and config.metrics.port > 65535:
        raise ctx.error("metrics.port", f"expected a port number up to 65535, got {config.metrics.port}")
    if config.metrics.retention_warning_hours > 24:
        raise ctx.error("metrics.retention_warning_hours", "expected at most 24 (DynamoDB keeps records 24 h)")
    seen: set[str] = set()
    for index, table in enumerate(config.tables):
        if table.name in seen:
            raise ctx.error(_join(_join("tables", index), "name"), f"table {table.name!r} is listed twice")
        seen.add(table.name)
        if not table.include_ops:
            raise ctx.error(_join(_join("tables", index), "include_ops"), "expected at least one of c, u, d")
    names = tuple(table.name for table in config.tables)
    for index, sink in enumerate(config.sinks):
        path = _join("sinks", index)
        topic = getattr(sink.settings, "topic", None)
        if isinstance(topic, str):
            problem = check_template(topic, ("table",))
            if problem:
                raise ctx.error(_join(path, "topic"), problem)
        for name, problem in load_sink(sink.type).check_config(sink.settings, names):
            raise ctx.error(_join(path, name), problem)
        if getattr(sink.settings, "tombstones", False):
            for table_index, table in enumerate(config.tables):
                if table.key != "primary":
                    raise ctx.error(
                        _join(_join("tables", table_index), "key"),
                        f"`tombstones: true` on {path} needs `key: primary` (a tombstone deletes every record "
                        f"with its key, and a partition key alone may stand for several items of {table.name!r})",
                    )


def parse_config(text: str, file: str = "<config>") -> Config:
    """A validated `Config` from YAML text; `file` names it in errors."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{file}: not valid YAML: {error}") from None
    lines: dict[str, int] = {}
    ctx = _Context(file, lines)
    if node is not None:
        _lines(node, "", lines, ctx)
    missing: list[tuple[str, str]] = []
    data = _interpolate(data, "", missing)
    if missing:
        where = "; ".join(
            f"{name} (in {path}{f', line {lines[path]}' if path in lines else ''})" for name, path in sorted(missing)
        )
        raise ConfigError(f"{file}: environment variable(s) not set: {where}; use ${{VAR:-default}} for a default")
    config = build(Config, data, "", ctx)
    _check(config, ctx)
    return config


def load_config(path: str | os.PathLike) -> Config:
    """Read and validate a config file; every problem is a `ConfigError` naming the file."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read: {error.strerror or error}") from None
    return parse_config(text, str(path))
