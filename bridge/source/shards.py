"""The lineage of one stream's shards: a child is read only after its parent is finished."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class ShardTree:
    """Shards of one stream as `DescribeStream` lists them, with their read state.

    A shard is ready when it is neither started nor finished and its parent is finished or no longer listed
    (trimmed away). A shard listed as its own parent, or caught in a parent cycle, is treated as a root.
    """

    def __init__(self, finished: set[str] | None = None) -> None:
        self.parents: dict[str, str | None] = {}
        self.finished: set[str] = set(finished or ())
        self.started: set[str] = set()

    def add(self, shards: list[dict]) -> None:
        """Record shards from a `DescribeStream` page (`ShardId`, optional `ParentShardId`)."""
        for shard in shards:
            shard_id = shard["ShardId"]
            parent = shard.get("ParentShardId")
            self.parents[shard_id] = None if parent == shard_id else parent
        for shard_id in list(self.parents):
            if self._in_cycle(shard_id):
                log.warning("shard %s is in a parent cycle; reading it as a root", shard_id)
                self.parents[shard_id] = None

    def _in_cycle(self, shard_id: str) -> bool:
        seen = {shard_id}
        parent = self.parents.get(shard_id)
        while parent is not None and parent in self.parents:
            if parent in seen:
                return True
            seen.add(parent)
            parent = self.parents[parent]
        return False

    def ready(self) -> list[str]:
        """Shards that may start now, parents first, in `ShardId` order."""
        return sorted(
            shard_id
            for shard_id, parent in self.parents.items()
            if shard_id not in self.started
            and shard_id not in self.finished
            and (parent is None or parent in self.finished or parent not in self.parents)
        )

    def start(self, shard_id: str) -> None:
        self.started.add(shard_id)

    def finish(self, shard_id: str) -> None:
        """The shard was read to its end and its records were handed on: its children may start."""
        self.finished.add(shard_id)

    def unfinished(self) -> set[str]:
        return set(self.parents) - self.finished
