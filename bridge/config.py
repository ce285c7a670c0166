"""The YAML config: one frozen dataclass per section, each field with a description.

The dataclasses are the spec: loading validates against them (types, allowed values, bounds of numbers, the
alphabet of names, unknown keys with a "did you mean" hint), and every error names the file, the line, the
field path and what was expected. Strings may use `${VAR}` or `${VAR:-default}`; all missing variables are
reported at once. Relative paths in the file are relative to the working directory.

The file is untrusted input: it must be UTF-8, YAML is read with a `yaml.SafeLoader` that refuses nesting
deeper than `MAX_DEPTH` and aliases that expand to more than `MAX_NODES` nodes (an "alias bomb"), and a YAML
error names its line and column but never quotes the file's text, which may hold a literal secret.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import fnmatch
import math
import operator
import os
import re
import string
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from bridge.errors import ConfigError
from bridge.secret import Secret
from bridge.sinks import load_sink, sink_names

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PARENT = re.compile(r"(\.?[^.\[]+|\[\d+\])$")  # the last step of a field path: `.name`, `name` or `[3]`

MAX_DEPTH = 64  # nesting levels a config may have, aliases expanded (a real one has about 6)
MAX_NODES = 100_000  # YAML nodes a config may expand to through aliases (a real one has a few hundred)
TABLE_NAME = (r"[a-zA-Z0-9_.-]{1,255}", "a table name: 1-255 characters of a-z, A-Z, 0-9, '_', '.', '-'")
# The alphabets STS accepts (ASCII only: `(?a)`), from the AssumeRole API reference.
ROLE_ARN = (
    r"(?a)arn:aws[\w-]*:iam::\d{12}:role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}",
    "an IAM role ARN: arn:aws:iam::ACCOUNT:role/[PATH/]NAME with a 12-digit ACCOUNT",
)
SESSION_NAME = (r"(?a)[\w+=,.@-]{2,64}", "an STS session name: 2-64 characters of a-z, A-Z, 0-9 and _+=,.@-")
EXTERNAL_ID = (r"(?a)[\w+=,.@:/-]{2,1224}", "an STS external id: 2-1224 characters of a-z, A-Z, 0-9 and _+=,.@:/-")
PROFILE_NAME = (r"[^\s\[\]]+", "an AWS config profile name (no spaces or brackets)")
DEFAULT_SESSION_NAME = "cdc-bridge"
TEMPLATE_NAME = "{table}"  # the name of `discover.template`: not a table name, so never taken for one
# A glob pattern of table names: the table name alphabet and `*`, `?`, `[...]` / `[!...]` classes.
NAME_PATTERN = re.compile(r"(?:[a-zA-Z0-9_.*?-]|\[!?[a-zA-Z0-9_.-]+\])+")
DEFAULT_ROLE_DURATION_S = 3600  # what STS gives when asked for no duration
DAY_S = 86400.0

# Bounds of a number field, as `doc()` keywords and metadata keys: (comparison, its sign in messages).
_BOUNDS = {"at_least": (operator.ge, ">="), "above": (operator.gt, ">"), "at_most": (operator.le, "<=")}


def doc(
    text: str,
    *,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    matches: tuple[str, str] | None = None,
    **kwargs,
) -> Any:
    """A dataclass field with a description (shown in errors and the config reference) and its rules.

    A number must be finite and `>= at_least`, `> above`, `<= at_most` where given (`>= 0` when no lower
    bound is given); a string must fully match the regular expression `matches[0]`, described by `matches[1]`.
    Fields made with `field()` give the same rules as metadata keys of the same names.
    """
    rules = {"at_least": at_least, "above": above, "at_most": at_most, "matches": matches}
    return field(metadata={"doc": text, **{k: v for k, v in rules.items() if v is not None}}, **kwargs)


@dataclass(frozen=True)
class SourceConfig:
    """Where and how DynamoDB Streams are read."""

    region: str = doc("AWS region of the tables.", default="us-east-1")
    endpoint_url: str | None = doc(
        "DynamoDB endpoint for local stacks (DynamoDB Local, moto); AWS when unset.", default=None
    )
    poll_interval_ms: int = doc(
        "Wait between GetRecords calls on a shard that returned nothing.", at_least=1, at_most=DAY_S * 1000, default=250
    )
    discovery_interval_s: float = doc(
        "How often shards are listed again to find new ones, and (with `discover`) tables are found again.",
        above=0,
        at_most=DAY_S,
        default=10.0,
    )
    max_workers: int = doc("Shards read at the same time (threads).", at_least=1, default=8)
    profile: str | None = doc(
        "Named profile of the AWS config files (~/.aws/config, `AWS_CONFIG_FILE`); unset: the default chain "
        "(environment, web identity, instance or task role).",
        matches=PROFILE_NAME,
        default=None,
    )
    role_arn: str | None = doc(
        "IAM role assumed with STS (from the profile's or the default chain's credentials); the credentials "
        "are refreshed before they expire. Unset: no role is assumed.",
        matches=ROLE_ARN,
        default=None,
    )
    external_id: str | None = doc(
        "With `role_arn`: the external id the role's trust policy asks for.", matches=EXTERNAL_ID, default=None
    )
    session_name: str | None = doc(
        f"With `role_arn`: the STS session name (in CloudTrail and the assumed-role ARN); unset: "
        f"`{DEFAULT_SESSION_NAME}`.",
        matches=SESSION_NAME,
        default=None,
    )
    duration_s: int | None = doc(
        "With `role_arn`: seconds each set of assumed-role credentials lives (at most the role's maximum session "
        f"duration); new ones are fetched when a quarter of it is left. Unset: {DEFAULT_ROLE_DURATION_S}.",
        at_least=900,
        at_most=43200,
        default=None,
    )


@dataclass(frozen=True)
class TableConfig:
    """One DynamoDB table whose changes are replicated."""

    name: str = doc("Table name.", matches=TABLE_NAME)
    start_position: Literal["trim_horizon", "latest"] = doc(
        "Where the first run (no checkpoint) starts: the oldest record kept (24 h) or only new changes.",
        default="trim_horizon",
    )
    on_trimmed: Literal["fail", "resume_from_trim_horizon", "resnapshot"] = doc(
        "When a checkpoint is older than the stream's retention: stop with an error, log the gap and go on, or "
        "log the gap and take a new snapshot of the table (same handoff as `snapshot`) so consumers converge.",
        default="fail",
    )
    snapshot: Literal["never", "initial", "initial_only"] = doc(
        "Read every item of the table as an `op: r` event: `initial` when the checkpoint knows nothing of the "
        "table, then keep streaming; `initial_only` the same, then exit 0 once every such table is done; "
        "`never` streams changes only. With a snapshot the stream starts at its latest position, fixed before "
        "the first Scan page (`start_position` applies to `never` only).",
        default="initial",
    )
    snapshot_segments: int = doc(
        "Parallel Scan segments of a snapshot (threads; resumable each).", at_least=1, at_most=1000, default=4
    )
    snapshot_max_read_units_per_s: float | None = doc(
        "Read capacity a snapshot may use per second (from the Scan answers' ConsumedCapacity), shared by its "
        "segments; unset: no budget (DynamoDB throttling still backs the scan off).",
        above=0,
        default=None,
    )
    snapshot_consistent_read: bool = doc(
        "Scan with strongly consistent reads (twice the read units of eventually consistent ones).", default=True
    )
    snapshot_handoff_margin_ms: int = doc(
        "How long after a write its stream record may still be unseen, and how far this host's clock may be "
        "from AWS's: a scanned page is written only when the stream was read that far past the page.",
        at_most=600_000,
        default=1000,
    )
    enrich: Literal["none", "current_item"] = doc(
        "`current_item`: fill `after` of inserts and modifies whose stream record has no new image (`KEYS_ONLY`, "
        "`OLD_IMAGE` streams) with the item as a consistent BatchGetItem reads it (marked `source.current_item`).",
        default="none",
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
class TableTemplate(TableConfig):
    """The settings of every table `discover` finds: any key of a `tables` entry but `name`."""

    name: str = doc("Not given: each table found keeps its own name.", default=TEMPLATE_NAME)

    def for_table(self, name: str) -> TableConfig:
        """The config of the found table `name`."""
        settings = {f.name: getattr(self, f.name) for f in dataclasses.fields(TableConfig)}
        return TableConfig(**{**settings, "name": name})


@dataclass(frozen=True)
class DiscoverConfig:
    """Tables found by name pattern and/or tag (ListTables, ListTagsOfResource), besides `tables`."""

    include: tuple[str, ...] = doc(
        "Glob patterns (`*`, `?`, `[abc]`, `[!abc]`) of table names to replicate; unset: every table name.",
        default=(),
    )
    exclude: tuple[str, ...] = doc("Glob patterns of table names never replicated (wins over `include`).", default=())
    tags: dict[str, str] = doc(
        "Tags a table must all have, with these values (`{cdc: enabled}`); unset: tags are not read.",
        default_factory=dict,
    )
    template: TableTemplate = doc(
        "Per-table settings of the tables found (an entry of `tables` with the same name wins).",
        default=TableTemplate(),
    )

    @property
    def enabled(self) -> bool:
        """The section was given: at least one pattern or tag."""
        return bool(self.include or self.exclude or self.tags)


@dataclass(frozen=True)
class EncodingConfig:
    """How change events are encoded."""

    numbers: Literal["exact", "double", "string"] = doc(
        "DynamoDB numbers as exact long/decimal, lossy double, or text.", default="exact"
    )
    wire_format: Literal["auto", "single_object", "confluent", "raw"] = doc(
        "Kafka value framing: `confluent` (00 + 4-byte schema id from `schema_registry`, what Kafka Connect, "
        "ksqlDB and the Confluent deserializers read), `single_object` (C3 01 + fingerprint: no registry "
        "needed), `raw` (the bare Avro body); `auto`: confluent when `schema_registry.url` is set, else "
        "single_object.",
        default="auto",
    )

    def framing(self, registry: SchemaRegistryConfig) -> str:
        """The wire format in effect: `auto` resolved by whether a registry is configured."""
        if self.wire_format != "auto":
            return self.wire_format
        return "confluent" if registry.url else "single_object"


@dataclass(frozen=True)
class SchemaRegistryConfig:
    """A Confluent-compatible schema registry (Confluent, Apicurio, Karapace, Redpanda) for `wire_format: confluent`."""

    url: str | None = doc(
        "Registry URL; several, comma-separated, are tried in turn (e.g. `http://registry:8081`).", default=None
    )
    basic_auth_user: str | None = doc("User for HTTP basic auth.", default=None)
    basic_auth_password: Secret | None = doc("Password for HTTP basic auth (use `${ENV}`).", default=None)
    bearer_token: Secret | None = doc("Bearer token sent as `Authorization: Bearer` (use `${ENV}`).", default=None)
    ssl_cafile: str | None = doc("CA bundle for an https registry; unset: the system's.", default=None)
    ssl_certfile: str | None = doc("Client certificate (PEM) for mutual TLS.", default=None)
    ssl_keyfile: str | None = doc("Client key (PEM) for mutual TLS.", default=None)
    timeout_s: float = doc("Timeout of each registry request.", above=0, at_most=300, default=10.0)
    subject_name_strategy: Literal["topic", "record", "topic_record"] = doc(
        "Subject of a table's value schema: `topic` (`<topic>-value`, Confluent's TopicNameStrategy), `record` "
        "(the record's full name) or `topic_record` (`<topic>-<record full name>`).",
        default="topic",
    )
    auto_register: bool = doc(
        "Register each table's writer schema at start; false: look up the version registered beforehand (by "
        "CI, `cdc-bridge schema --register`) and stop with a clear error when it is missing.",
        default=True,
    )
    normalize: bool = doc("Ask the registry to normalize schemas before registering or looking up.", default=False)
    key_format: Literal["plain", "avro"] = doc(
        "Kafka keys: `plain` (the key value's bytes, as without a registry) or `avro` (a Confluent-framed Avro "
        "record of the key attributes, registered under `<topic>-key`, for converters that need Avro keys; "
        "records then go to other partitions than with plain keys).",
        default="plain",
    )


TRANSACTIONAL_ID = (r"[\x21-\x7e]{1,249}", "1-249 printable ASCII characters, no spaces")


@dataclass(frozen=True)
class CheckpointConfig:
    """Where progress is stored."""

    store: Literal["file", "kafka"] = doc(
        "`file`: a JSON file on this machine's disk (`path`); `kafka`: a compacted topic (`topic`) on the Kafka "
        "sink's cluster, so a bridge rescheduled onto another machine resumes where it was.",
        default="file",
    )
    path: str = doc(
        "Checkpoint file (JSON, replaced atomically), with `store: file`.", default=".cdc-bridge/checkpoints.json"
    )
    topic: str = doc(
        "Compacted checkpoint topic, with `store: kafka`: one per bridge deployment (created with "
        "`cleanup.policy=compact` when the Kafka sink has `create_topics: true`).",
        default="cdc-bridge-checkpoints",
        matches=(r"[a-zA-Z0-9._-]{1,249}", "a Kafka topic name: 1-249 characters of a-z, A-Z, 0-9, '.', '_', '-'"),
    )
    transactional_id: str | None = doc(
        "Kafka transactional id of this bridge's writes (`store: kafka`): a second bridge started with the same "
        "id fences the first, which stops. Unset: the checkpoint topic's name.",
        default=None,
        matches=TRANSACTIONAL_ID,
    )
    interval_s: float = doc(
        "How often sinks are flushed and the checkpoint written (with `delivery: exactly_once`, how long "
        "one transaction lasts).",
        above=0,
        at_most=DAY_S,
        default=1.0,
    )

    @property
    def writer_id(self) -> str:
        """The transactional id of the Kafka store's writes (and of the records' with exactly-once delivery)."""
        return self.transactional_id or self.topic


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus metrics, health endpoints and the retention warning."""

    port: int | None = doc(
        "Port serving /metrics (Prometheus), /healthz and /ready (9464 is usual); unset: no server.",
        at_least=1,
        default=None,
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


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole bridge configuration."""

    tables: tuple[TableConfig, ...] = doc("Tables to replicate (with `discover`, besides those found).", default=())
    sinks: tuple[SinkSpec, ...] = doc("Where every change goes (each table's changes go to every sink).")
    source: SourceConfig = doc("Stream reading.", default=SourceConfig())
    discover: DiscoverConfig = doc("Tables found by name pattern or tag.", default=DiscoverConfig())
    encoding: EncodingConfig = doc("Encoding.", default=EncodingConfig())
    schema_registry: SchemaRegistryConfig = doc(
        "Schema registry for the Confluent wire format.", default=SchemaRegistryConfig()
    )
    checkpoint: CheckpointConfig = doc("Progress.", default=CheckpointConfig())
    metrics: MetricsConfig = doc("Metrics, health endpoints, retention warning.", default=MetricsConfig())
    shutdown_timeout_s: float = doc(
        "On SIGTERM/SIGINT, how long sinks may take to flush.", above=0, at_most=DAY_S, default=30.0
    )
    delivery: Literal["at_least_once", "exactly_once"] = doc(
        "`at_least_once`: every change reaches the sinks, a crash may send some again; `exactly_once`: each "
        "checkpoint interval is one Kafka transaction (records, dead letters and checkpoint), so `read_committed` "
        "consumers see every change once. Needs `checkpoint.store: kafka` and one Kafka sink as the only sink.",
        default="at_least_once",
    )

    def with_found(self, names: typing.Iterable[str]) -> Config:
        """This config with the tables `discover` found (`names`) added, each with the template's settings."""
        found = tuple(self.discover.template.for_table(name) for name in names)
        return dataclasses.replace(self, tables=self.tables + found)

    def table(self, name: str) -> TableConfig:
        """The config of table `name`."""
        return next(table for table in self.tables if table.name == name)

    @property
    def kafka(self) -> Any:
        """The settings of the first kafka sink (the cluster of dead letters, the Kafka checkpoint store and
        transactions), None without one."""
        return next((sink.settings for sink in self.sinks if sink.type == "kafka"), None)


class _Context:
    def __init__(self, file: str, lines: dict[str, int]) -> None:
        self.file = file
        self.lines = lines

    def error(self, path: str, message: str, line: int | None = None) -> ConfigError:
        """A `ConfigError` naming the file, `line` or else the line of `path` (or of its nearest parent given in
        the file)."""
        parent = path
        while line is None and parent:
            line = self.lines.get(parent)
            shorter = _PARENT.sub("", parent)
            parent = shorter if shorter != parent else ""  # a key `_PARENT` cannot cut (`a[`) ends the search
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
            if not isinstance(key, yaml.ScalarNode):
                kind = "list" if isinstance(key, yaml.SequenceNode) else "mapping"
                raise ctx.error(
                    path, f"expected a key that is a word or a string, got a {kind}", key.start_mark.line + 1
                )
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


class _Loader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses, while composing, what would exhaust the stack or the memory later: nesting
    deeper than `MAX_DEPTH`, recursive aliases, and aliases that make the document expand to more than `MAX_NODES`
    nodes. Every node's expanded size and depth is known once it is composed (an alias can only name a node
    composed before it), so the check costs one addition per node, whatever the aliases would expand to."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.depth = 0  # collections open while composing
        self.expanded: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, depth) with aliases expanded

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            if id(node) not in self.expanded:
                raise yaml.composer.ComposerError(None, None, "found a recursive alias (inside its own anchor)", mark)
            return node
        mark = self.peek_event().start_mark
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
        node = super().compose_node(parent, index)
        self.depth -= 1
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        sizes = [self.expanded[id(child)] for child in children]
        nodes, depth = 1 + sum(n for n, _ in sizes), 1 + max((d for _, d in sizes), default=0)
        if depth > MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested more than {MAX_DEPTH} levels deep once its aliases are expanded", mark
            )
        if nodes > MAX_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"expands to more than {MAX_NODES} values through aliases (an alias bomb?)", mark
            )
        self.expanded[id(node)] = (nodes, depth)
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as error:  # a timestamp like 2001-13-45, an int of 5,000 digits
            kind = node.tag.rsplit(":", 1)[-1]
            reason = str(error).split("; use sys.set_int_max_str_digits")[0]  # advice for programmers, not users
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this {kind}: {reason}", node.start_mark
            ) from None


# Quoted text in PyYAML's messages: a token name (`'<block end>'`), punctuation, or a piece of the file.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'" + r'|"(?:[^"\\]|\\.)*"')
_SYNTAX = re.compile(r"""'<[a-z ]+>'|'[\[\]{},:?\- ]'""")


def _unquoted(text: str) -> str:
    """`text` of a PyYAML message without the pieces of the file it quotes (they may be a secret)."""
    return _QUOTED.sub(lambda m: m.group(0) if _SYNTAX.fullmatch(m.group(0)) else "(not shown)", text)


def _yaml_error(error: yaml.YAMLError, text: str, file: str) -> ConfigError:
    """A `ConfigError` naming the line and column of a YAML error and its problem, never the file's text: PyYAML's
    own message quotes the offending line, which may hold a literal secret (`sasl_password: @...`)."""
    line = column = None
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        if mark is not None:
            line, column = mark.line + 1, mark.column + 1
        problem = _unquoted(error.problem or error.context or "a syntax error")
        if error.context and error.problem:
            since = f" from line {error.context_mark.line + 1}" if error.context_mark else ""
            problem += f" ({_unquoted(error.context)}{since})"
    elif isinstance(error, yaml.reader.ReaderError):
        line = text.count("\n", 0, error.position) + 1
        column = error.position - text.rfind("\n", 0, error.position)
        problem = "a control character that YAML does not allow"
    else:
        problem = type(error).__name__
    where = f"{file}, line {line}, column {column}" if line else file
    return ConfigError(f"{where}: not valid YAML: {problem}")


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


def _bounds(rules: typing.Mapping[str, Any]) -> list[tuple[Callable[[Any, Any], bool], str, float]]:
    """The (comparison, sign, limit) bounds of a number field; `>= 0` when it gives no lower bound."""
    given = dict(rules)
    if "at_least" not in given and "above" not in given:
        given["at_least"] = 0
    return [(*_BOUNDS[name], given[name]) for name in _BOUNDS if name in given]


def _bounds_text(rules: typing.Mapping[str, Any]) -> str:
    """` >= 1`, ` > 0 and <= 86400`: the bounds of a number field in words."""
    shown = [f"{sign} {int(limit) if float(limit).is_integer() else limit}" for _, sign, limit in _bounds(rules)]
    return " " + " and ".join(shown)


def describe_type(tp: Any, rules: typing.Mapping[str, Any] | None = None) -> str:
    """What a value of type `tp` must look like, in words (for errors and the config reference); `rules` are the
    field's metadata (bounds of numbers, the alphabet of strings, see `doc()`)."""
    rules = rules or {}
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (types.UnionType, typing.Union):
        kinds = " or ".join(describe_type(a, rules) for a in typing.get_args(tp) if a is not type(None))
        return kinds + " (or null)"
    if origin is tuple:
        item = typing.get_args(tp)[0]
        if typing.get_origin(item) is Literal:
            return "a list of " + ", ".join(repr(a) for a in typing.get_args(item))
        return {str: "a list of strings"}.get(item, "a list")
    if origin is dict:
        return "a mapping of strings to strings"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if tp is Secret:
        return "a string (secret)"
    if tp in (int, float):
        return ("a whole number" if tp is int else "a number") + _bounds_text(rules)
    if tp is str and "matches" in rules:
        return rules["matches"][1]
    return {str: "a string", bool: "true or false"}.get(tp, str(tp))


def _number(tp: type, value: int | float, rules: typing.Mapping[str, Any], path: str, ctx: _Context) -> Any:
    """`value` as `tp` when it is finite and within the field's bounds."""
    try:
        number = tp(value)
    except OverflowError:  # an int beyond the range of floats
        raise ctx.error(path, f"expected a finite number{_bounds_text(rules)}, got a number beyond 1e308") from None
    if tp is float and not math.isfinite(number):
        raise ctx.error(path, f"expected a finite number{_bounds_text(rules)}, got {number}")
    if not all(compare(number, limit) for compare, _, limit in _bounds(rules)):
        raise ctx.error(path, f"expected {describe_type(tp, rules)}, got {number}")
    return number


def _convert(tp: Any, value: Any, path: str, ctx: _Context, rules: typing.Mapping[str, Any] | None = None) -> Any:
    """`value` as type `tp`, checked against the field's `rules` (see `doc()`)."""
    rules = rules or {}
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in typing.get_args(tp):
            return None
        (tp,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(tp, value, path, ctx, rules)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ctx.error(path, f"expected {describe_type(tp)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ctx.error(path, f"expected a list, got {type(value).__name__}")
        (item,) = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return tuple(_convert(item, v, _join(path, i), ctx, rules) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ctx.error(path, f"expected {describe_type(tp)}, got {type(value).__name__}")
        key_type, value_type = typing.get_args(tp)
        return {
            _convert(key_type, k, path, ctx): _convert(value_type, v, _join(path, str(k)), ctx)
            for k, v in value.items()
        }
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
            return _number(tp, value, rules, path, ctx)
    if tp is str and isinstance(value, str):
        if "matches" in rules and not re.fullmatch(rules["matches"][0], value):
            raise ctx.error(path, f"expected {rules['matches'][1]}, got {value!r}")
        return value
    if tp is Secret:
        if isinstance(value, str):
            return Secret(value)
        raise ctx.error(path, f"expected a string (secret; quote it or use ${{VAR}}), got a {type(value).__name__}")
    if tp is Any:
        return value
    raise ctx.error(path, f"expected {describe_type(tp, rules)}, got {type(value).__name__} {value!r}")


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
            values[name] = _convert(hints[name], data[name], _join(path, name), ctx, spec.metadata)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            what = spec.metadata.get("doc", describe_type(hints[name], spec.metadata))
            raise ctx.error(_join(path, name), f"missing required key ({what})")
    return cls(**values)


def table_entries(config: Config) -> list[tuple[str, TableConfig]]:
    """Each table setting of `config` with its field path: the `tables` entries, then `discover.template`."""
    entries = [(_join("tables", index), table) for index, table in enumerate(config.tables)]
    if config.discover.enabled:
        entries.append(("discover.template", config.discover.template))
    return entries


def _check(config: Config, ctx: _Context) -> None:
    _check_discover(config.discover, ctx)
    if not config.tables and not config.discover.enabled:
        raise ctx.error("tables", "expected at least one table (or a `discover:` section that finds them)")
    if not config.sinks:
        raise ctx.error("sinks", "expected at least one sink")
    if config.source.role_arn is None:
        for name in ("external_id", "session_name", "duration_s"):
            if getattr(config.source, name) is not None:
                raise ctx.error(f"source.{name}", "only applies with `source.role_arn` (the role to assume)")
    if config.metrics.port is not None and config.metrics.port > 65535:
        raise ctx.error("metrics.port", f"expected a port number up to 65535, got {config.metrics.port}")
    if config.metrics.retention_warning_hours > 24:
        raise ctx.error("metrics.retention_warning_hours", "expected at most 24 (DynamoDB keeps records 24 h)")
    seen: set[str] = set()
    for index, table in enumerate(config.tables):
        if table.name in seen:
            raise ctx.error(_join(_join("tables", index), "name"), f"table {table.name!r} is listed twice")
        seen.add(table.name)
    entries = table_entries(config)
    for path, table in entries:
        if not table.include_ops:
            raise ctx.error(_join(path, "include_ops"), "expected at least one of c, u, d")
    if len({table.snapshot == "initial_only" for _, table in entries}) > 1:
        path = next(path for path, table in entries if table.snapshot == "initial_only")
        raise ctx.error(
            _join(path, "snapshot"),
            "`initial_only` ends the run once its snapshot is done, which would stop the other tables' streams "
            "too: give every table `initial_only`, or run the snapshot-only tables with a config of their own",
        )
    _check_delivery(config, ctx)
    _check_registry(config, ctx)
    names = tuple(table.name for table in config.tables) + names_found(config.discover)
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
            for table_path, table in entries:
                if table.key != "primary":
                    what = "the tables found" if table_path == "discover.template" else repr(table.name)
                    raise ctx.error(
                        _join(table_path, "key"),
                        f"`tombstones: true` on {path} needs `key: primary` (a tombstone deletes every record "
                        f"with its key, and a partition key alone may stand for several items of {what})",
                    )


def names_found(discover: DiscoverConfig) -> tuple[str, ...]:
    """Names of tables `discover` may find, for checks that depend on table names (topic and path templates):
    a pattern without wildcards names one table; any other gives two names it matches (several tables)."""
    if not discover.enabled:
        return ()
    names: list[str] = []
    for pattern in discover.include or ("*",):
        fillers = ("a", "b") if any(char in pattern for char in "*?[") else ("",)
        names += [_matching_name(pattern, filler) for filler in fillers]
    return tuple(dict.fromkeys(names))


def _matching_name(pattern: str, filler: str) -> str:
    """A table name `pattern` (checked by `NAME_PATTERN`) matches: `filler` for `*` and `?`, a member of each class."""
    name, index = [], 0
    while index < len(pattern):
        char = pattern[index]
        if char == "[":
            end = pattern.index("]", index)
            members = (
                c for c in "abcdefghijklmnopqrstuvwxyz0123456789_.-" if fnmatch.fnmatchcase(c, pattern[index : end + 1])
            )
            name.append(next(members, filler))
            index = end + 1
            continue
        name.append(filler if char in "*?" else char)
        index += 1
    return "".join(name)


def _check_discover(discover: DiscoverConfig, ctx: _Context) -> None:
    """Patterns that can match a table name, tags DynamoDB can hold, a template without a name."""
    if not discover.enabled:
        if discover != DiscoverConfig():
            raise ctx.error("discover", "give `include`, `exclude` or `tags`: without them no table is found")
        return
    for key in ("include", "exclude"):
        for index, pattern in enumerate(getattr(discover, key)):
            if not NAME_PATTERN.fullmatch(pattern):
                raise ctx.error(
                    _join(f"discover.{key}", index),
                    f"{pattern!r} is not a pattern of table names: expected characters of table names "
                    "(a-z, A-Z, 0-9, '_', '.', '-') with `*`, `?` and classes such as `[abc]` or `[!abc]`",
                )
    for key, value in discover.tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256:
            raise ctx.error(
                _join("discover.tags", key),
                "a DynamoDB tag has a key of 1-128 characters and a value of at most 256",
            )
    if discover.template.name != TEMPLATE_NAME:
        raise ctx.error("discover.template.name", "a template has no name: each table found keeps its own")


def _check_registry(config: Config, ctx: _Context) -> None:
    """The Confluent wire format has a registry, and the registry's settings go together."""
    registry = config.schema_registry
    if config.encoding.wire_format == "confluent" and not registry.url:
        raise ctx.error(
            "encoding.wire_format", "`confluent` frames each value with a schema id: set `schema_registry.url`"
        )
    if registry.url:
        for index, url in enumerate(part.strip() for part in registry.url.split(",")):
            if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
                raise ctx.error("schema_registry.url", f"URL {index + 1} ({url!r}) must start with http:// or https://")
    if (registry.basic_auth_user is None) != (registry.basic_auth_password is None):
        raise ctx.error(
            "schema_registry.basic_auth_user", "basic auth needs both basic_auth_user and basic_auth_password"
        )
    if registry.basic_auth_user is not None and registry.bearer_token is not None:
        raise ctx.error("schema_registry.bearer_token", "give basic auth or a bearer token, not both")
    if (registry.ssl_certfile is None) != (registry.ssl_keyfile is None):
        raise ctx.error("schema_registry.ssl_certfile", "mutual TLS needs both ssl_certfile and ssl_keyfile")


def _check_delivery(config: Config, ctx: _Context) -> None:
    """The checkpoint store and delivery mode fit the sinks."""
    kafka = [index for index, sink in enumerate(config.sinks) if sink.type == "kafka"]
    if config.checkpoint.store == "kafka" and not kafka:
        raise ctx.error(
            "checkpoint.store", "`kafka` keeps the checkpoint on the Kafka sink's cluster: add a kafka sink"
        )
    if config.delivery != "exactly_once":
        return
    if config.checkpoint.store != "kafka":
        raise ctx.error(
            "delivery",
            "`exactly_once` commits the checkpoint in the same Kafka transaction as the records: set "
            "`checkpoint.store: kafka`",
        )
    others = [index for index, sink in enumerate(config.sinks) if sink.type != "kafka"]
    if others or len(kafka) != 1:
        where = _join("sinks", others[0] if others else kafka[1])
        raise ctx.error(
            where,
            "`delivery: exactly_once` needs exactly one sink, of type kafka: a Kafka transaction cannot take "
            "back what another sink (or another cluster) was given when it aborts",
        )
    for path, table in table_entries(config):
        if table.on_poison == "dlq" and table.dead_letter_path:
            raise ctx.error(
                _join(path, "dead_letter_path"),
                "with `delivery: exactly_once` dead letters go to `<topic>.dlq` in the same transaction as the "
                "records; a file cannot take back a letter of an aborted transaction (remove dead_letter_path)",
            )


def parse_config(text: str, file: str = "<config>") -> Config:
    """A validated `Config` from YAML text; `file` names it in errors."""
    lines: dict[str, int] = {}
    ctx = _Context(file, lines)
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(
                f"{file}: the file holds no settings (it is empty or only comments); expected a mapping "
                "with at least `tables:` and `sinks:`"
            )
        _lines(node, "", lines, ctx)  # before constructing, which rewrites the nodes of `<<:` merge keys
        data = loader.construct_document(node)
    except yaml.YAMLError as error:
        raise _yaml_error(error, text, file) from None
    finally:
        if loader is not None:
            loader.dispose()
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
    """Read and validate a config file (UTF-8); every problem is a `ConfigError` naming the file."""
    try:
        content = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read: {error.strerror or error}") from None
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        line = content.count(b"\n", 0, error.start) + 1
        raise ConfigError(
            f"{path}, line {line}: not UTF-8 text: the byte at offset {error.start} cannot be decoded "
            f"({error.reason}); save the file as UTF-8"
        ) from None
    return parse_config(text, str(path))
