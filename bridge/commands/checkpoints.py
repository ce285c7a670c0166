"""`cdc-bridge checkpoints`: the stored checkpoint of every shard as a text table."""

from __future__ import annotations

from bridge.checkpoint import CheckpointStore
from bridge.config import Config

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
    for (arn, shard_id), checkpoint in CheckpointStore(config.checkpoint.path).load().items():
        table, stream = stream_parts(arn)
        rows.append(
            (table, stream, shard_id, checkpoint.sequence_number or "-", "yes" if checkpoint.finished else "no")
        )
    return sorted(rows)


def format_table(rows: list[tuple[str, ...]], columns: tuple[str, ...] = COLUMNS, indent: str = "") -> str:
    """Rows under `columns`, left-aligned in columns as wide as their longest cell, each line after `indent`."""
    widths = [max(len(row[i]) for row in [columns, *rows]) for i in range(len(columns))]
    lines = [
        indent + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [columns, *rows]
    ]
    return "\n".join(lines) + "\n"
