"""The lineage of one stream's shards: a child is read only after its parent is finished."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class ShardTree:
    """Shards of one stream as the last `DescribeStream` listed them, with their read state.

    A shard is ready when it is neither started nor finished and its parent is finished, or is no longer
    listed (trimmed away) and not being read. A shard listed as its own parent, or caught in a parent
    cycle, loses its parent link (every shard of the cycle does: none of them can wait for another) and is
    read as a root. `closed` holds the listed shards that have an `EndingSequenceNumber`.
    """

    def __init__(self, finished: set[str] | None = None) -> None:
        self.parents: dict[str, str | None] = {}
        self.closed: set[str] = set()
        self.finished: set[str] = set(finished or ())
        self.started: set[str] = set()
        self.warned: set[str] = set()

    def update(self, shards: list[dict]) -> None:
        """Replace the listing with every shard of a full `DescribeStream` (`ShardId`, optional `ParentShardId`)."""
        parents: dict[str, str | None] = {}
        self.closed = {s["ShardId"] for s in shards if "EndingSequenceNumber" in s.get("SequenceNumberRange", {})}
        for shard in shards:
            shard_id = shard["ShardId"]
            parent = shard.get("ParentShardId")
            if parent == shard_id:
                self._warn(shard_id, f"shard {shard_id} is listed as its own parent; reading it as a root")
                parent = None
            parents[shard_id] = parent
        self.parents = parents
        self._break_cycles()

    def _break_cycles(self) -> None:
        done: set[str] = set()
        for first in sorted(self.parents):
            path: list[str] = []
            on_path: set[str] = set()
            shard: str | None = first
            while shard is not None and shard in self.parents and shard not in on_path and shard not in done:
                path.append(shard)
                on_path.add(shard)
                shard = self.parents[shard]
            if shard in on_path:
                cycle = path[path.index(shard) :]
                names = " -> ".join([*cycle, shard])
                self._warn(shard, f"shards {names} form a parent cycle; reading each of them as a root")
                for member in cycle:
                    self.parents[member] = None
            done.update(path)

    def _warn(self, shard_id: str, message: str) -> None:
        if shard_id not in self.warned:
            self.warned.add(shard_id)
            log.warning(message)

    def ready(self) -> list[str]:
        """Shards that may start now, in `ShardId` order."""
        return sorted(
            shard_id
            for shard_id, parent in self.parents.items()
            if shard_id not in self.started and shard_id not in self.finished and self._parent_done(parent)
        )

    def _parent_done(self, parent: str | None) -> bool:
        if parent is None or parent in self.finished:
            return True
        return parent not in self.parents and parent not in self.started

    def start(self, shard_id: str) -> None:
        """The shard is being read."""
        self.started.add(shard_id)

    def finish(self, shard_id: str) -> None:
        """The shard was read to its end and its records were handed on: its children may start."""
        self.finished.add(shard_id)

    def unfinished(self) -> set[str]:
        """Listed shards not finished yet."""
        return set(self.parents) - self.finished

    def drained(self) -> bool:
        """Every listed shard is finished."""
        return not self.unfinished()

    def prune(self) -> set[str]:
        """Forget finished shards that are no longer listed; returns their ids (to drop from the checkpoint)."""
        gone = self.finished - set(self.parents)
        self.finished -= gone
        self.started -= gone
        return gone
