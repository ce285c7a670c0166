"""checkpoint: atomic file store and the tracker that only commits acknowledged positions."""

from __future__ import annotations

import os
import socket

import pytest

from bridge.checkpoint import CheckpointStore, CheckpointTracker, ShardCheckpoint
from bridge.errors import ConfigError, FatalError


def test_store_round_trips_checkpoints_keyed_by_stream_arn_and_shard(tmp_path):
    store = CheckpointStore(tmp_path / "cp.json")
    saved = {("arn:a", "s1"): ShardCheckpoint("10", False), ("arn:b", "s1"): ShardCheckpoint("20", True)}
    store.save(saved)
    assert store.load() == saved
    assert [p.name for p in tmp_path.iterdir()] == ["cp.json"]


def test_missing_file_means_no_checkpoints_but_corrupt_file_is_an_error(tmp_path):
    assert CheckpointStore(tmp_path / "none.json").load() == {}
    corrupt = tmp_path / "cp.json"
    corrupt.write_text('{"version": 1, "streams": ')
    with pytest.raises(ConfigError, match=r"cp\.json"):
        CheckpointStore(corrupt).load()


def test_tracker_stores_nothing_until_commit(tmp_path):
    store = CheckpointStore(tmp_path / "cp.json")
    tracker = CheckpointTracker(store)
    tracker.written("arn", "s1", "5")
    assert store.load() == {}
    tracker.commit()
    tracker.finished("arn", "s1")
    assert store.load() == {("arn", "s1"): ShardCheckpoint("5", False)}
    tracker.commit()
    assert store.load() == {("arn", "s1"): ShardCheckpoint("5", True)}


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_crash_while_saving_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch, failing):
    store = CheckpointStore(tmp_path / "cp.json")
    before = {("arn", "s1"): ShardCheckpoint("10", False)}
    store.save(before)

    def crash(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(f"bridge.checkpoint.os.{failing}", crash)
    with pytest.raises(FatalError, match=r"cp\.json"):
        store.save({("arn", "s1"): ShardCheckpoint("20", True)})
    monkeypatch.undo()

    assert store.load() == before
    assert [p.name for p in tmp_path.iterdir()] == ["cp.json"]


def test_checkpoint_file_is_replaced_not_rewritten_in_place(tmp_path):
    store = CheckpointStore(tmp_path / "cp.json")
    store.save({("arn", "s1"): ShardCheckpoint("10", False)})
    inode = (tmp_path / "cp.json").stat().st_ino
    store.save({("arn", "s1"): ShardCheckpoint("11", False)})
    assert (tmp_path / "cp.json").stat().st_ino != inode


def test_forgotten_shards_leave_the_checkpoint_at_the_next_commit(tmp_path):
    store = CheckpointStore(tmp_path / "cp.json")
    store.save({("arn", "gone"): ShardCheckpoint("5", True), ("arn", "kept"): ShardCheckpoint("7", False)})
    tracker = CheckpointTracker(store)
    tracker.forget({("arn", "gone")})
    tracker.written("arn", "kept", "8")
    tracker.commit()
    assert store.load() == {("arn", "kept"): ShardCheckpoint("8", False)}


def test_a_second_run_on_the_same_checkpoint_file_is_refused_naming_the_file_and_the_holder(tmp_path):
    path = tmp_path / "cp.json"
    CheckpointStore(path).save({("arn", "s1"): ShardCheckpoint("5", False)})
    first = CheckpointTracker(CheckpointStore(path))
    with pytest.raises(ConfigError) as refused:
        CheckpointTracker(CheckpointStore(path))
    message = str(refused.value)
    assert f"checkpoint file {path} is in use by another cdc-bridge" in message
    assert f"pid {os.getpid()} on host {socket.gethostname()}, since " in message
    assert "give this one its own checkpoint.path" in message
    assert CheckpointStore(path).load() == first.acked  # read-only commands still load while a run holds it
    first.close()


def test_closing_the_tracker_releases_the_checkpoint_file_for_the_next_run(tmp_path):
    path = tmp_path / "cp.json"
    CheckpointTracker(CheckpointStore(path)).close()
    second = CheckpointTracker(CheckpointStore(path))
    second.written("arn", "s1", "7")
    second.commit()
    second.close()
    assert CheckpointStore(path).load() == {("arn", "s1"): ShardCheckpoint("7", False)}


def test_a_garbled_lock_file_still_refuses_the_second_run(tmp_path):
    path = tmp_path / "cp.json"
    first = CheckpointTracker(CheckpointStore(path))
    (tmp_path / "cp.json.lock").write_bytes(b"[" * 5000 + b"\xff\x1b[31m")  # any process may write there
    with pytest.raises(ConfigError, match=r"in use by another cdc-bridge \(its pid and host are not recorded"):
        CheckpointTracker(CheckpointStore(path))
    first.close()
