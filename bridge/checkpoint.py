"""Per-shard checkpoints: the last sequence number every sink acknowledged, and whether the shard is finished;
per-table snapshot positions: where each Scan segment resumes.

The file store replaces its file atomically (temp file, fsync, rename, fsync of the folder), so a crash at
any instant leaves either the old or the new checkpoint, never a torn one. One run at a time owns the file:
the tracker of a run locks it before loading it (`CheckpointLock`); read-only commands only load.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import socket
import tempfile
import threading
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bridge.errors import ConfigError, FatalError

ShardKey = tuple[str, str]  # (stream_arn, shard_id)


@dataclass(frozen=True)
class ShardCheckpoint:
    """Where reading resumes: after `sequence_number`; a finished shard is not read again. A shard read without
    a record yet has `quiet_ms` instead: a `GetRecords` call made then (epoch ms, this host's clock) found
    nothing more, so no record created well before it is unread."""

    sequence_number: str | None = None
    finished: bool = False
    quiet_ms: int | None = None


@dataclass(frozen=True)
class SegmentPosition:
    """Where one Scan segment of a snapshot resumes: `ExclusiveStartKey` (attribute-value JSON as the Scan
    answer gave it; None: from the segment's start), whether it reached its end, and items written from it."""

    last_key: dict | None = None
    done: bool = False
    items: int = 0


@dataclass(frozen=True)
class SnapshotCheckpoint:
    """A table's snapshot: when it started (epoch ms, also its id), why (`initial`, `requested`, `trimmed`),
    each segment's position, and whether every item was written (`done`)."""

    started_ms: int
    reason: str
    segments: tuple[SegmentPosition, ...]
    done: bool = False

    @property
    def items(self) -> int:
        """Items written so far, all segments."""
        return sum(segment.items for segment in self.segments)


def _snapshot(entry: dict) -> SnapshotCheckpoint:
    segments = []
    for segment in entry["segments"]:
        last_key, done, items = segment["last_key"], segment["done"], segment["items"]
        if not (last_key is None or isinstance(last_key, dict)) or not isinstance(done, bool):
            raise ValueError(f"bad snapshot segment {segment!r}")
        if type(items) is not int or items < 0:
            raise ValueError(f"bad snapshot segment {segment!r}")
        segments.append(SegmentPosition(last_key, done, items))
    started, reason, done = entry["started_ms"], entry["reason"], entry["done"]
    if type(started) is not int or not isinstance(reason, str) or not isinstance(done, bool) or not segments:
        raise ValueError(f"bad snapshot entry {entry!r}")
    return SnapshotCheckpoint(started, reason, tuple(segments), done)


def _snapshot_entry(snapshot: SnapshotCheckpoint) -> dict:
    return {
        "started_ms": snapshot.started_ms,
        "reason": snapshot.reason,
        "done": snapshot.done,
        "segments": [dataclasses.asdict(segment) for segment in snapshot.segments],
    }


def _shard_entry(checkpoint: ShardCheckpoint) -> dict:
    entry = {"sequence_number": checkpoint.sequence_number, "finished": checkpoint.finished}
    if checkpoint.quiet_ms is not None:
        entry["quiet_ms"] = checkpoint.quiet_ms
    return entry


def _entry(entry: dict) -> ShardCheckpoint:
    sequence, finished, quiet = entry["sequence_number"], entry["finished"], entry.get("quiet_ms")
    if not (sequence is None or (isinstance(sequence, str) and sequence.isdigit())) or not isinstance(finished, bool):
        raise ValueError(f"bad shard entry {entry!r}")
    if not (quiet is None or type(quiet) is int):
        raise ValueError(f"bad shard entry {entry!r}")
    return ShardCheckpoint(sequence, finished, quiet)


class CheckpointLock:
    """An exclusive `flock` on `<checkpoint>.lock`, held through an open fd for the life of one run.

    Two bridges on one checkpoint file would each rewrite the whole file and erase the other's positions, so
    the second one must not start. The kernel drops a flock when the last fd of it closes, also when the holder
    is killed with SIGKILL, so no stale lock survives its process. The lock file is never deleted (deleting it
    would let two processes lock two different files of one name); it records the holder's pid, host and start
    time so that a refused bridge can name it.

    A held lock is a `ConfigError` (exit 2), not a `FatalError`: it is found at start, before anything is read
    or written, and the cure is in the deployment - stop the other bridge or give this one its own
    `checkpoint.path` - like the other start-up refusals of bad input (an unreadable checkpoint file included).
    A disk that refuses the lock file is a `FatalError`, as when it refuses the checkpoint itself.
    """

    def __init__(self, checkpoint: Path) -> None:
        self.path = checkpoint.with_name(checkpoint.name + ".lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise FatalError(f"cannot open {self.path} to lock checkpoint file {checkpoint}: {error}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise ConfigError(
                f"checkpoint file {checkpoint} is in use by another cdc-bridge ({holder}); two bridges on one "
                "checkpoint would overwrite each other's positions. Stop it, or give this one its own "
                "checkpoint.path"
            ) from None
        except OSError as error:
            os.close(fd)
            raise FatalError(f"cannot lock {self.path} for checkpoint file {checkpoint}: {error}") from None
        since = datetime.now(UTC).isoformat(timespec="seconds")
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}).encode()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, record + b"\n", 0)
        except OSError as error:
            os.close(fd)
            raise FatalError(f"cannot write the lock file {self.path}: {error}") from None
        self._release = weakref.finalize(self, os.close, fd)  # also when a failed run drops it without close()

    def release(self) -> None:
        """Unlock (closes the fd; the kernel drops the flock). Idempotent."""
        self._release()


def _holder(fd: int) -> str:
    """'pid 123 on host h, since <UTC time>' from the lock file, which any process may have written."""
    try:
        record = json.loads(os.pread(fd, 4096, 0))
        pid, host, since = record["pid"], record["host"], record["since"]
        if not (isinstance(pid, int) and isinstance(host, str) and isinstance(since, str)):
            raise TypeError(record)
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        return "its pid and host are not recorded in the lock file yet"

    def printable(text: str) -> str:
        return "".join(ch for ch in text if ch.isprintable())[:200]

    return f"pid {pid} on host {printable(host)}, since {printable(since)}"


class CheckpointStore:
    """Checkpoints in one JSON file: `{"version": 2, "streams": {arn: {shard_id: {...}}}, "snapshots": {table:
    {...}}}` (version 1, without snapshots, is read too).

    `load` alone takes no lock (read-only commands work while a bridge runs); `lock` takes the file for a run.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock: CheckpointLock | None = None

    def lock(self) -> None:
        """Own the file for this run, until `close()`; `ConfigError` naming the holder when another run owns it."""
        if self._lock is None:
            self._lock = CheckpointLock(self.path)

    def close(self) -> None:
        """Release the file taken by `lock()` (idempotent)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def load(self) -> dict[ShardKey, ShardCheckpoint]:
        """All stored shard checkpoints; none when the file does not exist."""
        return self.read()[0]

    def read(self) -> tuple[dict[ShardKey, ShardCheckpoint], dict[str, SnapshotCheckpoint]]:
        """Shard checkpoints and snapshots by table; none when the file does not exist. A corrupt file is an
        error, never empty."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}, {}
        except (OSError, ValueError, RecursionError) as error:  # RecursionError: nested too deeply for json
            raise ConfigError(f"checkpoint file {self.path} cannot be read: {error}") from None
        try:
            if data["version"] not in (1, 2):
                raise ValueError(f"unknown version {data['version']!r}")
            shards = {
                (arn, shard_id): _entry(entry)
                for arn, shards in data["streams"].items()
                for shard_id, entry in shards.items()
            }
            snapshots = {table: _snapshot(entry) for table, entry in data.get("snapshots", {}).items()}
            return shards, snapshots
        except (KeyError, AttributeError, TypeError, ValueError) as error:
            raise ConfigError(
                f"checkpoint file {self.path} is not a cdc-bridge checkpoint ({error!r}); move it away to start "
                "over (tables then start at their start_position), or restore a good copy"
            ) from None

    def save(
        self, checkpoints: dict[ShardKey, ShardCheckpoint], snapshots: dict[str, SnapshotCheckpoint] | None = None
    ) -> None:
        """Replace the stored checkpoints atomically; raises `FatalError` when the disk refuses."""
        streams: dict[str, dict] = {}
        for (arn, shard_id), checkpoint in sorted(checkpoints.items()):
            streams.setdefault(arn, {})[shard_id] = _shard_entry(checkpoint)
        document = {"version": 2, "streams": streams}
        document["snapshots"] = {table: _snapshot_entry(s) for table, s in sorted((snapshots or {}).items())}
        payload = json.dumps(document, indent=1).encode()
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
    """Positions written to the sinks since the last flush; `commit()` makes them the checkpoint.

    The tracker belongs to one run: it locks the store before loading it (so nothing is read from a stream
    under another bridge's positions) and holds the lock until `close()`. It is the one ledger of shard and
    snapshot positions: the pipeline thread records what was written and commits, the stream reader's
    dispatcher thread reports shards to forget (`forget` and `commit` share `self.lock`).
    """

    def __init__(self, store: CheckpointStore) -> None:
        self.store = store
        store.lock()
        try:
            self.acked, self.acked_snapshots = store.read()
        except BaseException:
            store.close()
            raise
        self.pending: dict[ShardKey, ShardCheckpoint] = {}
        self.pending_snapshots: dict[str, SnapshotCheckpoint] = {}
        self.forgotten: set[ShardKey] = set()
        self.lock = threading.Lock()

    @property
    def has_pending(self) -> bool:
        """Something was written since the last commit."""
        return bool(self.pending or self.pending_snapshots)

    def written(self, stream_arn: str, shard_id: str, sequence_number: str) -> None:
        """Everything of this shard up to `sequence_number` was written."""
        self.pending[(stream_arn, shard_id)] = ShardCheckpoint(sequence_number)

    def finished(self, stream_arn: str, shard_id: str) -> None:
        """The shard was read to its end and every record of it was written."""
        key = (stream_arn, shard_id)
        last = self.pending.get(key) or self.acked.get(key) or ShardCheckpoint()
        self.pending[key] = ShardCheckpoint(last.sequence_number, True)

    def quiet(self, stream_arn: str, shard_id: str, quiet_ms: int, refresh_ms: int = 0) -> None:
        """The shard, with no record read yet, was found to have nothing more at `quiet_ms`: recorded unless a
        sequence number is known, or the stored time is less than `refresh_ms` older."""
        key = (stream_arn, shard_id)
        last = self.pending.get(key) or self.acked.get(key) or ShardCheckpoint()
        if last.sequence_number is None and not last.finished and (last.quiet_ms or 0) + refresh_ms <= quiet_ms:
            self.pending[key] = ShardCheckpoint(None, False, quiet_ms)

    def snapshot(self, table: str) -> SnapshotCheckpoint | None:
        """The table's snapshot as last recorded (written or committed), None when it never had one."""
        return self.pending_snapshots.get(table) or self.acked_snapshots.get(table)

    def snapshot_written(self, table: str, snapshot: SnapshotCheckpoint) -> None:
        """The table's snapshot reached `snapshot` (every item before each segment's position was written)."""
        self.pending_snapshots[table] = snapshot

    def positioned(self, table: str) -> bool:
        """The checkpoint (as loaded) holds a shard of some stream of `table`."""
        from bridge.source.discovery import table_of_stream  # bridge.source imports this module

        return any(table_of_stream(arn) == table for arn, _ in self.acked)

    def knows(self, table: str) -> bool:
        """The checkpoint holds positions of some stream of `table`, or a snapshot of it."""
        return table in self.acked_snapshots or self.positioned(table)

    def forget(self, keys: set[ShardKey]) -> None:
        """Drop these shards (finished and no longer listed, or of a stream that is gone) at the next commit."""
        with self.lock:
            self.forgotten |= keys

    def commit(self) -> None:
        """Call after every sink flushed: stores the pending positions (minus forgotten shards) as the checkpoint."""
        with self.lock:
            forgotten, self.forgotten = self.forgotten, set()
        if not self.has_pending and not forgotten:
            return
        merged = {key: value for key, value in {**self.acked, **self.pending}.items() if key not in forgotten}
        snapshots = {**self.acked_snapshots, **self.pending_snapshots}
        try:
            self.store.save(merged, snapshots)
        except BaseException:
            with self.lock:
                self.forgotten |= forgotten
            raise
        self.acked, self.acked_snapshots = merged, snapshots
        self.pending, self.pending_snapshots = {}, {}

    def close(self) -> None:
        """The run is over: release the checkpoint file for the next one (nothing is committed after this)."""
        self.store.close()
