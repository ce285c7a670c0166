"""`cdc-bridge validate`: check a config file, its schema files and (with `--connect`) the services it names.

Every problem found is reported at once in one `ConfigError` (exit 2); the report of a good file lists what
was checked, so a user sees that `--connect` really reached DynamoDB and Kafka, and as whom it ran (the
account and ARN of STS GetCallerIdentity, no secret).
"""

from __future__ import annotations

from botocore.exceptions import EndpointConnectionError, NoCredentialsError
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from bridge.codec.avro import table_codec
from bridge.config import Config, load_config, table_entries
from bridge.errors import BridgeError, ConfigError
from bridge.source.catalog import TableCatalog
from bridge.source.discovery import describe_table


def validate(path: str, connect: bool = False) -> list[str]:
    """Lines describing what was checked; raises `ConfigError` listing every problem found."""
    config = load_config(path)
    problems = _schema_problems(config)
    report = [f"{path}: config ok ({len(config.tables)} table(s), sinks: {', '.join(s.type for s in config.sinks)})"]
    if connect and not problems:
        dynamodb_report, dynamodb_problems = _check_dynamodb(config)
        kafka_report, kafka_problems = _check_kafka(config)
        report += dynamodb_report + kafka_report
        problems += dynamodb_problems + kafka_problems
    if problems:
        raise ConfigError(f"{path}: " + "\n  ".join(["validation failed:", *problems]))
    return report


def _schema_problems(config: Config) -> list[str]:
    """Schema files named by tables (`tables[i].schema`, `discover.template.schema`) that cannot be read or do not
    make an Avro envelope."""
    problems = []
    for path, table in table_entries(config):
        if getattr(table, "schema", None) is None:
            continue
        try:
            table_codec(config, table)
        except ConfigError as error:
            problems.append(f"{path}.schema: {error}")
    return problems


def _check_dynamodb(config: Config) -> tuple[list[str], list[str]]:
    from bridge.source.clients import aws_clients, aws_identity

    where = config.source.endpoint_url or f"AWS {config.source.region}"
    try:
        identity = aws_identity(config)
        dynamodb, _streams = aws_clients(config)
    except BridgeError as error:
        return [], [f"source: {error} ({where})"]
    report, problems = [f"AWS identity: account {identity.account}, arn {identity.arn}"], []
    if config.discover.enabled:
        try:
            found = TableCatalog.of(config, dynamodb).find()
        except BridgeError as error:
            return report, [f"discover: {error} ({where})"]
        report.append(f"discover: {len(found)} table(s) found: {', '.join(found) or 'none'}")
        config = config.with_found(found)
    for index, table in enumerate(config.tables):
        try:
            info = describe_table(dynamodb, table.name)
        except BridgeError as error:
            if isinstance(error.__cause__, EndpointConnectionError | NoCredentialsError):
                problems.append(f"source: {error} ({where})")  # the same for every table
                break
            problems.append(f"tables[{index}].name: {error}")
            continue
        report.append(f"DynamoDB {where}: table {table.name} has stream {info.stream_arn} ({info.view_type or '?'})")
    return report, problems


def _check_kafka(config: Config) -> tuple[list[str], list[str]]:
    from bridge.sinks.kafka_client import client_options

    report, problems = [], []
    for index, sink in enumerate(config.sinks):
        if sink.type != "kafka":
            continue
        settings = sink.settings
        try:
            admin = KafkaAdminClient(**client_options(settings))
        except KafkaError as error:
            problems.append(
                f"sinks[{index}].bootstrap_servers: no Kafka broker reachable at {settings.bootstrap_servers}: {error}"
            )
            continue
        try:
            existing = set(admin.list_topics())
        except KafkaError as error:
            problems.append(f"sinks[{index}]: Kafka at {settings.bootstrap_servers} did not answer: {error}")
            continue
        finally:
            admin.close()
        topics = sorted({settings.topic.format(table=table.name) for table in config.tables})
        missing = [topic for topic in topics if topic not in existing]
        if missing and not settings.create_topics:
            problems.append(
                f"sinks[{index}].topic: topic(s) {', '.join(missing)} do not exist at {settings.bootstrap_servers}; "
                "create them or set `create_topics: true`"
            )
            continue
        created = f" ({', '.join(missing)} will be created)" if missing else ""
        report.append(f"Kafka {settings.bootstrap_servers}: reachable, topics {', '.join(topics)}{created}")
    return report, problems
