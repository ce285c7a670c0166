"""Per-shard checkpoints: the last sequence number every sink acknowledged, and whether the shard is finished.

The file store replaces its file atomically (temp file, fsync, rename, fsync of the folder), so a crash at
any instant leaves either the old or the new checkpoint, never a torn one.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import ConfigError, FatalError

ShardKey = tuple[str, str]  # (stream_arn, shard_id)


@dataclass(frozen=True)
class ShardCheckpoint:
    """Where reading resumes: after `sequence_number`; a finished shard is not read again."""

    sequence_number: str | None = None
    finished: bool = False


def _entry(entry: dict) -> ShardCheckpoint:
    sequence, finished = entry["sequence_number"], entry["finished"]
    if not (sequence is None or (isinstance(sequence, str) and sequence.isdigit())) or not isinstance(finished, bool):
        raise ValueError(f"bad shard entry {entry!r}")
    return ShardCheckpoint(sequence, finished)


class CheckpointStore:
    """Checkpoints in one JSON file: `{"version": 1, "streams": {arn: {shard_id: {...}}}}`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def load(self) -> dict[ShardKey, ShardCheckpoint]:
        """All stored checkpoints; none when the file does not exist. A corrupt file is an error, never empty."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            raise ConfigError(f"checkpoint file {self.path} cannot be read: {error}") from None
        try:
            if data["version"] != 1:
                raise ValueError(f"unknown version {data['version']!r}")
            return {
                (arn, shard_id): _entry(entry)
                for arn, shards in data["streams"].items()
                for shard_id, entry in shards.items()
            }
        except (KeyError, AttributeError, TypeError, ValueError) as error:
            raise ConfigError(
                f"checkpoint file {self.path} is not a cdc-bridge checkpoint ({error!r}); move it away to start "
                "over (tables then start at their start_position), or restore a good copy"
            ) from None

    def save(self, checkpoints: dict[ShardKey, ShardCheckpoint]) -> None:
        """Replace the stored checkpoints atomically; raises `FatalError` when the disk refuses."""
        streams: dict[str, dict] = {}
        for (arn, shard_id), checkpoint in sorted(checkpoints.items()):
            entry = {"sequence_number": checkpoint.sequence_number, "finished": checkpoint.finished}
            streams.setdefault(arn, {})[shard_id] = entry
        payload = json.dumps({"version": 1, "streams": streams}, indent=1).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(payload)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temp, self.path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
            folder = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError as error:
            raise FatalError(f"cannot write checkpoint file {self.path}: {error}") from error


class CheckpointTracker:
    """Positions written to the sinks since the last flush; `commit()` makes them the checkpoint."""

    def __init__(self, store: CheckpointStore) -> None:
        self.store = store
        self.acked = store.load()
        self.pending: dict[ShardKey, ShardCheckpoint] = {}
        self.forgotten: set[ShardKey] = set()

    def written(self, stream_arn: str, shard_id: str, sequence_number: str, finished: bool = False) -> None:
        """Everything of this shard up to `sequence_number` (and its end, if `finished`) was written."""
        self.pending[(stream_arn, shard_id)] = ShardCheckpoint(sequence_number, finished)

    def finished(self, stream_arn: str, shard_id: str) -> None:
        """The shard was read to its end and every record of it was written."""
        key = (stream_arn, shard_id)
        last = self.pending.get(key) or self.acked.get(key) or ShardCheckpoint()
        self.pending[key] = ShardCheckpoint(last.sequence_number, True)

    def forget(self, keys: set[ShardKey]) -> None:
        """Drop these shards (finished and no longer listed, or of a stream that is gone) at the next commit."""
        self.forgotten |= keys

    def commit(self) -> None:
        """Call after every sink flushed: stores the pending positions (minus forgotten shards) as the checkpoint."""
        if not self.pending and not self.forgotten:
            return
        merged = {key: value for key, value in {**self.acked, **self.pending}.items() if key not in self.forgotten}
        self.store.save(merged)
        self.acked = merged
        self.pending = {}
        self.forgotten = set()
