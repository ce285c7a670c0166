"""One configured table and the stream read for it: listings, start positions, stream changes, lost data.

`StreamSource` owns the threads and calls these methods with its lock held (except `check_table`, which
calls DynamoDB). A table reads one stream at a time: when its stream is disabled or replaced (a new
`LatestStreamArn`), the old stream is read to its end first and the new one then from its start.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

from bridge.checkpoint import ShardCheckpoint, ShardKey
from bridge.errors import FatalError
from bridge.source.discovery import StreamListing, TableDeleted, TableInfo, current_stream_arn, table_of_stream
from bridge.source.shards import ShardTree
from bridge.source.snapshot import ROUNDING_MS

log = logging.getLogger(__name__)


class TableStream:
    """Read state of one table: its current stream's shard tree, newer streams to read next, and flags."""

    def __init__(
        self,
        config,
        info: TableInfo,
        checkpoints: dict[ShardKey, ShardCheckpoint],
        snapshot_started_ms: int | None = None,
        found: bool = False,
    ) -> None:
        """`config` is the table's `TableConfig` (`name`, `start_position`, `on_trimmed`,
        `snapshot_handoff_margin_ms`); `snapshot_started_ms` is when the table's snapshot began, given when the
        checkpoint holds no stream position of the table (see `superseded_for`); `found`: the table was found by
        `discover`, which stops reading it once it is deleted (a deleted table named in `tables` is an error)."""
        self.found = found
        self.snapshot_started_ms = snapshot_started_ms
        self.margin_ms: int = config.snapshot_handoff_margin_ms
        self.name: str = config.name
        self.start_position: str = config.start_position
        self.on_trimmed: str = config.on_trimmed
        self.checkpoints = checkpoints  # as loaded at start: where shards resume
        known = sorted({arn for arn, _ in checkpoints if table_of_stream(arn) == config.name})
        chain = [arn for arn in known if arn != info.stream_arn] + [info.stream_arn]
        self.later: list[str] = chain[1:]  # newer streams, read after the current one is drained
        self.first_start = not known  # no checkpoint for any stream of the table: `start_position` applies
        self.info = info
        self.lost: set[str] = set()  # shards that answered ResourceNotFoundException
        self.resnapshot = False  # records were lost and the table takes a new snapshot (`on_trimmed: resnapshot`)
        self.deleted = False
        self.deleted_logged = False
        self.wanted = 0  # listings requested (on shard end) ...
        self.seen = 0  # ... and the last one a completed listing covers
        self.failures = 0
        self.malformed = 0  # listings in a row that were not well-formed
        self.next_discovery = 0.0
        self.follow(chain[0])

    def follow(self, stream_arn: str) -> None:
        """Make `stream_arn` the current stream; it is listed at the next dispatcher round."""
        self.info = replace(self.info, stream_arn=stream_arn)
        finished = {s for (arn, s), c in self.checkpoints.items() if arn == stream_arn and c.finished}
        self.tree = ShardTree(finished)
        self.initial = True  # not listed yet
        self.discovered = False
        self.disabled = False
        self.latest_shards: set[str] = set()  # open at the first listing of a `latest` start
        self.next_discovery = 0.0

    def apply_listing(self, listing: StreamListing, wanted: int) -> set[ShardKey]:
        """Take a full listing of the current stream; returns checkpoint keys to forget."""
        arn = self.info.stream_arn
        self.tree.update(listing.shards)
        if self.initial:
            self.initial = False
            self._check_checkpointed_shards()
            if self.first_start and self.start_position == "latest":
                self._start_at_latest(listing.shards)
        self.disabled = listing.status in ("DISABLING", "DISABLED")
        self.discovered = True
        self.seen = max(self.seen, wanted)
        return {(arn, shard_id) for shard_id in self.tree.prune()}

    def _check_checkpointed_shards(self) -> None:
        """A shard of the checkpoint, not finished and no longer listed, was trimmed away with unread records."""
        arn = self.info.stream_arn
        for (stream_arn, shard_id), checkpoint in sorted(self.checkpoints.items()):
            if stream_arn == arn and not checkpoint.finished and shard_id not in self.tree.parents:
                self.lose(
                    f"shard {shard_id} of {arn} was trimmed away before it was read to its end; records after "
                    f"sequence number {checkpoint.sequence_number} (the checkpoint) are lost"
                )
                self.tree.finish(shard_id)

    def _start_at_latest(self, shards: list[dict]) -> None:
        for shard in shards:
            if shard["ShardId"] in self.tree.closed:
                self.tree.finish(shard["ShardId"])
            else:
                self.latest_shards.add(shard["ShardId"])

    def start_of(self, shard_id: str) -> tuple[str, str | None]:
        """Iterator type and sequence number where a shard starts: the checkpoint always wins; then `LATEST`
        for shards open at a `latest` first start; everything else (children included) at `TRIM_HORIZON`."""
        checkpoint = self.checkpoints.get((self.info.stream_arn, shard_id))
        if checkpoint and checkpoint.sequence_number:
            return "AFTER_SEQUENCE_NUMBER", checkpoint.sequence_number
        if shard_id in self.latest_shards:
            return "LATEST", None
        return "TRIM_HORIZON", None

    def superseded_for(self, shard_id: str) -> float:
        """Records of the shard created before this (epoch ms) are skipped, for a shard without a checkpointed
        sequence number (read from its trim horizon): they were written before the table's snapshot began, or
        before an earlier run found nothing more (the checkpoint's `quiet_ms`) - surely so when older than that
        by the handoff margin and the second AWS rounds creation times down to. -inf: none is skipped."""
        checkpoint = self.checkpoints.get((self.info.stream_arn, shard_id)) or ShardCheckpoint()
        if checkpoint.sequence_number:
            return -math.inf
        handled = [t for t in (self.snapshot_started_ms, checkpoint.quiet_ms) if t is not None]
        return max(handled) - self.margin_ms - ROUNDING_MS if handled else -math.inf

    def caught_up(self) -> bool:
        """Nothing pending at the table level: listed after the last shard end, no stream change under way."""
        return not (self.later or self.deleted or not self.discovered or self.seen < self.wanted)

    def check_table(self, dynamodb) -> None:
        """Re-describe the table: note a newer stream to follow, or that the table was deleted.

        Raises `RetriableError` when DynamoDB is throttling or unreachable.
        """
        try:
            latest = current_stream_arn(dynamodb, self.name)
        except TableDeleted:
            if not self.deleted:
                log.error("table %s was deleted; reading what is left of %s", self.name, self.info.stream_arn)
            self.deleted = True
            return
        if latest and latest != self.info.stream_arn and latest not in self.later:
            log.warning("table %s has a new stream %s, read after %s", self.name, latest, self.info.stream_arn)
            self.later.append(latest)

    def drained(self) -> None:
        """Every shard of the current stream is finished: follow the next stream, or stop for a deleted table."""
        if self.later:
            log.info("stream %s of table %s is drained", self.info.stream_arn, self.name)
            self.follow(self.later.pop(0))
            self.first_start = False  # a later stream continues the earlier one: it is read from its start
        elif self.deleted and self.found:
            if not self.deleted_logged:
                log.info("table %s was deleted; every change its stream still held was delivered", self.name)
            self.deleted_logged = True
        elif self.deleted:
            raise FatalError(
                f"table {self.name} was deleted; every change its stream {self.info.stream_arn} still held "
                "was delivered. Remove the table from the config (or re-create it) and start again."
            )

    def stream_gone(self) -> set[ShardKey] | None:
        """`DescribeStream` said the current stream no longer exists (call after `check_table`).

        Returns the checkpoint keys of the stream to forget once the table has moved on, or None when the
        table still names this stream (list it again later). Unread shards are lost data (`lose`).
        """
        arn = self.info.stream_arn
        if not self.later and not self.deleted:
            return None
        unfinished = self.tree.unfinished() | {
            s for (a, s), c in self.checkpoints.items() if a == arn and not (c.finished or s in self.tree.finished)
        }
        if unfinished:
            shards = ", ".join(sorted(unfinished))
            self.lose(f"stream {arn} no longer exists; shards {shards} were not read to their end")
        forget = {key for key in self.checkpoints if key[0] == arn} | {(arn, s) for s in self.tree.finished}
        self.tree = ShardTree()
        self.drained()
        return forget

    def lose(self, what: str) -> None:
        """Records are lost for good: `FatalError`, unless the table accepts gaps (then a loud log line) or
        repairs them with a new snapshot (`resnapshot` is set for the pipeline)."""
        if self.on_trimmed == "fail":
            raise FatalError(
                f"table {self.name}: {what}. Set `on_trimmed: resnapshot` on the table to repair the gap with a "
                "new snapshot, or `resume_from_trim_horizon` to accept it, and continue."
            )
        repair = self.on_trimmed == "resnapshot"
        log.error("DATA GAP: table %s: %s; continuing%s", self.name, what, ", with a new snapshot" if repair else "")
        self.repair_gap()

    def repair_gap(self) -> None:
        """Records were lost (and logged): with `on_trimmed: resnapshot`, ask for a new snapshot of the table."""
        self.resnapshot = self.resnapshot or self.on_trimmed == "resnapshot"
