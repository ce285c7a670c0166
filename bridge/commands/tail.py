"""`cdc-bridge tail`: read a table's Kafka topic and print each record decoded, as the stdout sink prints it.

Like `kcat -C`: starts at the end of the topic (only new records) or with `from_beginning` at its start, and
stops after `max_events` records, at the end of the topic (`exit_at_end`), or on Ctrl-C. It reads committed
records only (`read_committed`): with `delivery: exactly_once`, records of aborted transactions never show.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Sequence
from typing import TextIO

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from bridge.codec import decode_value
from bridge.codec.avro import table_codec
from bridge.codec.registry import SchemaRegistry
from bridge.config import Config, SinkSpec
from bridge.errors import BridgeError, ConfigError, FatalError
from bridge.sinks.render import event_view, render, select, shown_key

log = logging.getLogger(__name__)


def kafka_sink(config: Config) -> SinkSpec:
    """The first Kafka sink of `config` (the one `tail` reads)."""
    for sink in config.sinks:
        if sink.type == "kafka":
            return sink
    raise ConfigError("sinks: the config has no `type: kafka` sink, so there is no topic to tail")


def topic_of(config: Config, table: str) -> str:
    """The Kafka topic that `table`'s changes go to."""
    names = [t.name for t in config.tables]
    if table not in names:
        hint = difflib.get_close_matches(table, names, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ConfigError(f"--table: {table!r} is not a table of the config{suggestion}; tables: {', '.join(names)}")
    return kafka_sink(config).settings.topic.format(table=table)


def tail(
    config: Config,
    table: str,
    out: TextIO,
    *,
    from_beginning: bool = False,
    max_events: int | None = None,
    exit_at_end: bool = False,
    pretty: bool = False,
    fields: Sequence[str] = (),
    colour: bool = False,
) -> int:
    """Print the decoded records of `table`'s topic to `out`; returns how many were printed."""
    from bridge.sinks.kafka_client import client_options

    topic = topic_of(config, table)
    settings = kafka_sink(config).settings
    # the writer schema of a typed table is known by fingerprint once its codec exists
    codec = table_codec(config, config.table(table))
    schema = codec.schema if codec.wire_format == "raw" else None
    registry = SchemaRegistry(config.schema_registry) if codec.wire_format == "confluent" else None

    def decode(value: bytes) -> dict:
        return decode_value(value, schema, registry=registry)

    try:
        # committed records only: with delivery: exactly_once those of aborted transactions never show
        consumer = KafkaConsumer(
            **client_options(settings), enable_auto_commit=False, group_id=None, isolation_level="read_committed"
        )
    except KafkaError as error:
        raise FatalError(f"no Kafka broker reachable at {settings.bootstrap_servers}: {error}") from None
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise ConfigError(f"topic {topic!r} (table {table}) does not exist at {settings.bootstrap_servers}")
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        if from_beginning:
            consumer.seek_to_beginning(*assigned)
        else:
            consumer.seek_to_end(*assigned)
        ends = consumer.end_offsets(assigned) if exit_at_end else {}
        printed = 0
        while max_events is None or printed < max_events:
            if exit_at_end and all(consumer.position(tp) >= ends[tp] for tp in assigned):
                break
            batches = consumer.poll(timeout_ms=500, max_records=500)
            for records in batches.values():
                for record in records:
                    if max_events is not None and printed >= max_events:
                        break
                    out.write(_show(topic, record, decode, pretty, fields, colour) + "\n")
                    printed += 1
            out.flush()
        return printed
    except KafkaError as error:
        raise FatalError(f"reading {topic} from {settings.bootstrap_servers} failed: {error}") from None
    finally:
        consumer.close()


def _show(
    topic: str, record, decode: Callable[[bytes], dict], pretty: bool, fields: Sequence[str], colour: bool
) -> str:
    key = record.key or b""
    if record.value is None:  # a tombstone after a delete
        view = {"topic": topic, "key": shown_key(key), "value": None}
    else:
        try:
            view = event_view(decode(record.value), key, topic)
        except BridgeError:  # the registry is away or refuses: no record can be decoded
            raise
        except Exception as error:  # a record not written by the bridge must not end the tail
            log.warning(
                "%s partition %d offset %d: not a bridge record: %s", topic, record.partition, record.offset, error
            )
            view = {"topic": topic, "key": shown_key(key), "undecodable": True}
    return render(select(view, fields), pretty, colour)
