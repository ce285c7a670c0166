"""The records of the Kafka checkpoint store (bridge/checkpoint_kafka.py), one per shard and per table snapshot.

- key: UTF-8 JSON array, `["shard", stream_arn, shard_id]` or `["snapshot", table]`;
- value: UTF-8 JSON object, `{"version": 2, ...}` with the fields the file store writes for that entry, or
  null: a tombstone, the entry is gone.
"""

from __future__ import annotations

import json
from typing import Any

from bridge.checkpoint import (
    ShardCheckpoint,
    ShardKey,
    SnapshotCheckpoint,
    _entry,
    _shard_entry,
    _snapshot,
    _snapshot_entry,
)

VERSION = 2


class BadRecord(ValueError):
    """A record of the checkpoint topic that this cdc-bridge cannot take as a checkpoint record."""


class OtherVersion(BadRecord):
    """A checkpoint record of another format version."""


def _json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def records_of(
    checkpoints: dict[ShardKey, ShardCheckpoint], snapshots: dict[str, SnapshotCheckpoint]
) -> dict[bytes, bytes]:
    """The records (key -> value) that hold these checkpoints."""
    records = {
        _json(["shard", arn, shard_id]): _json({"version": VERSION, **_shard_entry(checkpoint)})
        for (arn, shard_id), checkpoint in checkpoints.items()
    }
    for table, snapshot in snapshots.items():
        records[_json(["snapshot", table])] = _json({"version": VERSION, **_snapshot_entry(snapshot)})
    return records


def parse_record(key: bytes | None, value: bytes | None) -> tuple[str, Any, Any]:
    """(`shard`, (stream_arn, shard_id), ShardCheckpoint) or (`snapshot`, table, SnapshotCheckpoint) of one
    record, None as the checkpoint of a tombstone; `BadRecord` saying what is wrong."""
    try:
        ident = json.loads((key or b"").decode())
    except (ValueError, RecursionError) as error:
        raise BadRecord(f"its key {_shown(key)} is not JSON: {error}") from None
    if isinstance(ident, list) and len(ident) == 3 and ident[0] == "shard" and all(isinstance(i, str) for i in ident):
        kind, name = "shard", (ident[1], ident[2])
    elif isinstance(ident, list) and len(ident) == 2 and ident[0] == "snapshot" and isinstance(ident[1], str):
        kind, name = "snapshot", ident[1]
    else:
        raise BadRecord(f'its key {_shown(key)} is neither ["shard", stream_arn, shard_id] nor ["snapshot", table]')
    if value is None:
        return kind, name, None
    try:
        entry = json.loads(value.decode())
    except (ValueError, RecursionError) as error:
        raise BadRecord(f"its value is not JSON: {error}") from None
    if not isinstance(entry, dict) or "version" not in entry:
        raise BadRecord(f"its value {_shown(value)} is not an object with a format version")
    if type(entry["version"]) is not int or entry["version"] != VERSION:
        raise OtherVersion(f"format version {entry['version']!r}")
    try:
        return kind, name, _entry(entry) if kind == "shard" else _snapshot(entry)
    except (KeyError, AttributeError, TypeError, ValueError) as error:
        raise BadRecord(f"its value {_shown(value)} is not a {kind} checkpoint ({error!r})") from None


def _shown(data: bytes | None, limit: int = 200) -> str:
    text = repr(data)
    return text if len(text) <= limit else text[:limit] + "..."
