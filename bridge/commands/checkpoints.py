"""`cdc-bridge checkpoints`: the stored checkpoint of every shard as a text table, from the store the config
names (file or Kafka topic); `--copy-to kafka` moves the file checkpoint into the Kafka store."""

from __future__ import annotations

from bridge.checkpoint import CheckpointStore
from bridge.checkpoint_kafka import KafkaCheckpointStore, kafka_store, store_for
from bridge.config import Config
from bridge.errors import ConfigError

COLUMNS = ("TABLE", "STREAM", "SHARD", "CHECKPOINT", "FINISHED")


def stream_parts(stream_arn: str) -> tuple[str, str]:
    """(table name, stream label) of a stream ARN `arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL`."""
    resource = stream_arn.split(":", 5)[-1]
    parts = resource.split("/")
    if len(parts) >= 4 and parts[0] == "table" and parts[2] == "stream":
        return parts[1], parts[3]
    return "?", stream_arn


def checkpoint_rows(config: Config) -> list[tuple[str, ...]]:
    """One row per stored shard, sorted by table, stream and shard; `-` when nothing was acknowledged yet."""
    rows = []
    for (arn, shard_id), checkpoint in store_for(config).load().items():
        table, stream = stream_parts(arn)
        rows.append(
            (table, stream, shard_id, checkpoint.sequence_number or "-", "yes" if checkpoint.finished else "no")
        )
    return sorted(rows)


def stored_in(config: Config) -> str:
    """Where `config` keeps its checkpoint, as a message names it."""
    if config.checkpoint.store == "kafka":
        return f"Kafka topic {config.checkpoint.topic}"
    return config.checkpoint.path


def copy_to_kafka(config: Config) -> str:
    """Copy the checkpoint file into the Kafka store in one transaction; returns what was copied.

    The file is locked meanwhile (no bridge may move it), and so is the Kafka store's transactional id. A file
    without checkpoints, or a topic that already holds some, is a `ConfigError`: nothing is written then.
    """
    source, target = CheckpointStore(config.checkpoint.path), kafka_store(config)
    _checkpoint_of(source, config)
    _refuse_held(target)  # before taking the id: a bridge running on the topic is not fenced for nothing
    source.lock()
    try:
        shards, snapshots = _checkpoint_of(source, config)
        target.lock()
        try:
            _refuse_held(target)
            target.save(shards, snapshots)
        finally:
            target.close()
    finally:
        source.close()
    return (
        f"copied {len(shards)} shard checkpoint(s) and {len(snapshots)} snapshot(s) from {config.checkpoint.path} "
        f"to {target}; set `checkpoint.store: kafka` to use it"
    )


def _checkpoint_of(source: CheckpointStore, config: Config) -> tuple[dict, dict]:
    shards, snapshots = source.read()
    if not shards and not snapshots:
        raise ConfigError(f"--copy-to kafka: {config.checkpoint.path} holds no checkpoint, so there is nothing to copy")
    return shards, snapshots


def _refuse_held(target: KafkaCheckpointStore) -> None:
    if any(target.read()):
        raise ConfigError(
            f"--copy-to kafka: {target} already holds checkpoints; copying would mix two checkpoints. Delete the "
            "topic first, or set checkpoint.topic to a new one"
        )


def format_table(rows: list[tuple[str, ...]], columns: tuple[str, ...] = COLUMNS, indent: str = "") -> str:
    """Rows under `columns`, left-aligned in columns as wide as their longest cell, each line after `indent`."""
    widths = [max(len(row[i]) for row in [columns, *rows]) for i in range(len(columns))]
    lines = [
        indent + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [columns, *rows]
    ]
    return "\n".join(lines) + "\n"
