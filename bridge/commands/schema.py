"""`cdc-bridge schema`: print a table's writer schema, or infer a typed item schema from the live table."""

from __future__ import annotations

import json
from typing import TextIO

from bridge.codec.avro import table_codec
from bridge.codec.infer import infer_item_schema, scan_items
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
    if limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    config = load_config(config_file)
    table = _table(config, table_name, config_file)
    schema = inferred_schema(config, table, limit) if infer else writer_schema(config, table)
    out.write(json.dumps(schema, indent=2) + "\n")
