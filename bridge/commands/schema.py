"""`cdc-bridge schema`: print a table's writer schema, infer a typed item schema from the live table, or register
the writer schemas in the schema registry (`--register`) and check them against it (`--check`)."""

from __future__ import annotations

import dataclasses
import json
from typing import TextIO

from bridge.codec.avro import table_codec
from bridge.codec.infer import infer_item_schema, scan_items
from bridge.codec.registry import SchemaRegistry, register_value, schema_text, value_subject
from bridge.config import Config, TableConfig, load_config
from bridge.errors import ConfigError, FatalError


def _table(config: Config, name: str, file: str) -> TableConfig:
    for table in config.tables:
        if table.name == name:
            return table
    known = ", ".join(table.name for table in config.tables)
    raise ConfigError(f"{file}: no table {name!r} in `tables` (configured: {known})")


def writer_schema(config: Config, table: TableConfig) -> dict:
    """The exact writer schema (JSON object) the bridge encodes `table`'s changes with."""
    return table_codec(config, table).schema_json


def inferred_schema(config: Config, table: TableConfig, limit: int, dynamodb=None) -> dict:
    """A typed item schema proposal from up to `limit` items of the live table (Scan via the configured endpoint)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from bridge.source.aws_errors import ResourceGone, classify_at_start
    from bridge.source.clients import aws_clients

    if dynamodb is None:
        dynamodb, _ = aws_clients(config)
    try:
        description = dynamodb.describe_table(TableName=table.name)["Table"]
        key_names = tuple(k["AttributeName"] for k in sorted(description["KeySchema"], key=lambda k: k["KeyType"]))
        return infer_item_schema(scan_items(dynamodb, table.name, limit), table.name, key_names)
    except (ClientError, BotoCoreError) as error:
        problem = classify_at_start(error, f"reading table {table.name}")
        if isinstance(problem, ResourceGone):
            raise ConfigError(f"table {table.name!r} does not exist at {dynamodb.meta.endpoint_url}") from None
        raise problem from error
    except (KeyError, TypeError):
        raise FatalError(f"the DescribeTable answer for table {table.name} has no usable `KeySchema`") from None


def schema_command(config_file: str, table_name: str, out: TextIO, *, infer: bool = False, limit: int = 1000) -> None:
    """Print the table's writer schema, or with `infer` an item schema proposal, as indented JSON."""
    if not table_name:
        raise ConfigError("--table is needed to print or infer a schema")
    if limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    config = load_config(config_file)
    table = _table(config, table_name, config_file)
    schema = inferred_schema(config, table, limit) if infer else writer_schema(config, table)
    out.write(json.dumps(schema, indent=2) + "\n")


def registry_command(config_file: str, table_name: str | None, out: TextIO, *, check: bool) -> None:
    """Register the writer schema of each table (or `table_name`) in the schema registry under its value
    subject, or with `check` ask the registry whether each is compatible with the subject's latest version
    (a `ConfigError` listing the incompatible ones)."""
    config = load_config(config_file)
    if not config.schema_registry.url:
        raise ConfigError(f"{config_file}: schema_registry.url is not set: there is no registry to talk to")
    kafka = config.kafka
    if kafka is None:
        raise ConfigError(f"{config_file}: value subjects are named after Kafka topics, and there is no kafka sink")
    tables = [_table(config, table_name, config_file)] if table_name else list(config.tables)
    registry = SchemaRegistry(dataclasses.replace(config.schema_registry, auto_register=True))
    incompatible = []
    for table in tables:
        codec = table_codec(config, table)
        topic = kafka.topic.format(table=table.name)
        subject = value_subject(registry, codec, topic, table.name)
        if check:
            ok, messages = registry.compatible(subject, schema_text(codec.schema_json))
            out.write(f"{subject}: {'compatible' if ok else 'INCOMPATIBLE'}\n")
            out.writelines(f"  {message}\n" for message in messages if not ok)
            if not ok:
                incompatible.append(str(subject))
        else:
            schema_id = register_value(registry, codec, topic, table.name)
            out.write(f"{subject}: registered, id {schema_id}\n")
    if incompatible:
        raise ConfigError(f"not compatible with the registered versions: {'; '.join(incompatible)}")
