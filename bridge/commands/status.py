"""`cdc-bridge status`: where each shard stands, from the checkpoint (file or Kafka topic) and the live stream.

For each configured table, every shard of its stream (and of older streams the checkpoint still names):
the checkpointed sequence number, whether the shard is finished, its iterator age and its retention headroom
(unknown for a `quiet` shard: no record read from it yet, see `ShardCheckpoint.quiet_ms`).
Here the iterator age is the age of the oldest record after the checkpoint (0 when none waits), which is how
far behind a bridge started now would begin; the headroom is 24 h minus that age. To learn it, status makes
at most a few `GetRecords` calls (`Limit=1`) per unfinished shard; it never writes anything. Then each
table's snapshot, as the checkpoint holds it: in progress (a run resumes it where each segment is) or done.
With `discover`, the tables it finds now are listed first and reported like the tables named in `tables`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError

from bridge.checkpoint import ShardCheckpoint, SnapshotCheckpoint
from bridge.checkpoint_kafka import store_for
from bridge.commands.checkpoints import format_table
from bridge.config import Config
from bridge.ops.lag import RETENTION_S, creation_time, format_duration
from bridge.source.aws_errors import ResourceGone, classify, error_code
from bridge.source.catalog import TableCatalog
from bridge.source.discovery import describe_table, list_shards, table_of_stream

PROBE_CALLS = 4  # an open shard may answer empty pages before its first record


@dataclass(frozen=True)
class ShardStatus:
    """One shard as `status` reports it; ages in seconds, None when unknown."""

    table: str
    stream_arn: str
    shard_id: str
    checkpoint: str | None
    finished: bool
    state: str  # finished | caught up | behind | trimmed | not listed | not started | quiet
    iterator_age_s: float | None
    headroom_s: float | None


def _probe(streams, arn: str, shard_id: str, checkpoint: ShardCheckpoint | None) -> tuple[str, float | None]:
    """(state, creation time of the oldest record after the checkpoint or None when none is waiting)."""
    args = {"StreamArn": arn, "ShardId": shard_id}
    if checkpoint and checkpoint.sequence_number:
        args.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=checkpoint.sequence_number)
    else:
        args["ShardIteratorType"] = "TRIM_HORIZON"
    try:
        iterator = streams.get_shard_iterator(**args).get("ShardIterator")
        for _ in range(PROBE_CALLS):
            if not iterator:
                break
            response = streams.get_records(ShardIterator=iterator, Limit=1)
            records = response.get("Records", [])
            if records:
                return "behind", creation_time(records[0])
            iterator = response.get("NextShardIterator")
    except ClientError as error:
        if error_code(error) == "TrimmedDataAccessException":
            return "trimmed", None
        if error_code(error) == "ResourceNotFoundException":
            return "not listed", None
        raise classify(error, f"probing shard {shard_id} of {arn}") from error
    except BotoCoreError as error:
        raise classify(error, f"probing shard {shard_id} of {arn}") from error
    return "caught up", None


def table_status(config: Config, dynamodb, streams, checkpoints: dict, now: float | None = None) -> list[ShardStatus]:
    """Every shard of every configured table, in (table, stream, shard) order."""
    now = time.time() if now is None else now
    result = []
    for table in config.tables:
        info = describe_table(dynamodb, table.name)
        arns = sorted({arn for arn, _ in checkpoints if table_of_stream(arn) == table.name} - {info.stream_arn})
        never_started = not arns and not any(arn == info.stream_arn for arn, _ in checkpoints)
        for arn in [*arns, info.stream_arn]:
            try:
                listed = {shard["ShardId"] for shard in list_shards(streams, arn).shards}
            except ResourceGone:
                listed = set()
            stored = {shard for a, shard in checkpoints if a == arn}
            for shard_id in sorted(listed | stored):
                status = ShardStatus(table.name, arn, shard_id, None, False, "", None, None)
                checkpoint = checkpoints.get((arn, shard_id))
                if checkpoint:
                    status = replace(status, checkpoint=checkpoint.sequence_number, finished=checkpoint.finished)
                latest = never_started and table.start_position == "latest"
                result.append(_measure(status, streams, checkpoint, shard_id in listed, latest, now))
    return result


def _measure(
    status: ShardStatus, streams, checkpoint: ShardCheckpoint | None, listed: bool, latest: bool, now: float
) -> ShardStatus:
    """`status` with its state, iterator age and headroom filled in."""
    if status.finished:
        return replace(status, state="finished")
    if not listed:
        return replace(status, state="not listed")
    if latest:
        return replace(status, state="not started")
    if checkpoint and not checkpoint.sequence_number and checkpoint.quiet_ms is not None:
        # No record read yet: a run reads it from its trim horizon and skips what was created before it was
        # last found quiet, so the oldest record there says nothing of what waits; the age is unknown.
        return replace(status, state="quiet")
    state, oldest = _probe(streams, status.stream_arn, status.shard_id, checkpoint)
    if state == "behind" and oldest is not None:
        age = max(0.0, now - oldest)
        return replace(status, state=state, iterator_age_s=age, headroom_s=RETENTION_S - age)
    if state == "caught up":
        return replace(status, state=state, iterator_age_s=0.0, headroom_s=RETENTION_S)
    if state == "trimmed":
        return replace(status, state=state, headroom_s=0.0)
    return replace(status, state=state)


def render_text(shards: list[ShardStatus]) -> str:
    """A table per DynamoDB table: shard, checkpoint, finished, state, iterator age, retention headroom."""
    lines = []
    header = ("shard", "checkpoint", "finished", "state", "iterator age", "headroom")
    current = None
    rows: list[tuple[str, ...]] = []

    def flush() -> None:
        if not rows:
            return
        lines.append(format_table(rows, header, indent="  ").rstrip("\n"))
        rows.clear()

    for shard in shards:
        if (shard.table, shard.stream_arn) != current:
            flush()
            current = (shard.table, shard.stream_arn)
            lines.append(f"table {shard.table}  stream {shard.stream_arn}")
        rows.append(
            (
                shard.shard_id,
                shard.checkpoint or "-",
                "yes" if shard.finished else "no",
                shard.state,
                format_duration(shard.iterator_age_s),
                format_duration(shard.headroom_s),
            )
        )
    flush()
    return "\n".join(lines) if lines else "no shards"


def snapshot_status(config: Config, snapshots: dict[str, SnapshotCheckpoint]) -> list[dict]:
    """The snapshot of each configured table that has one: state, reason, start, items, segments."""
    result = []
    for table in config.tables:
        snapshot = snapshots.get(table.name)
        if snapshot is None:
            continue
        result.append(
            {
                "table": table.name,
                "state": "done" if snapshot.done else "in progress",
                "reason": snapshot.reason,
                "started": datetime.fromtimestamp(snapshot.started_ms / 1000, UTC).isoformat(timespec="seconds"),
                "items": snapshot.items,
                "segments": len(snapshot.segments),
                "segments_done": sum(segment.done for segment in snapshot.segments),
            }
        )
    return result


def render_snapshots(snapshots: list[dict]) -> str:
    """One line per table's snapshot."""
    return "\n".join(
        f"snapshot of {s['table']}: {s['state']} ({s['reason']}), started {s['started']}, {s['items']:,} items, "
        f"{s['segments_done']} of {s['segments']} segments done"
        + ("; a run resumes it where each segment is" if s["state"] != "done" else "")
        for s in snapshots
    )


def render_json(shards: list[ShardStatus], snapshots: list[dict] | None = None, found: list[str] | None = None) -> str:
    """`{"shards": [{table, stream_arn, shard_id, checkpoint, finished, state, iterator_age_s, headroom_s}],
    "snapshots": [{table, state, reason, started, items, segments, segments_done}]}`, and with `discover`
    `"discovered": [table, ...]`."""
    document = {"shards": [asdict(shard) for shard in shards], "snapshots": snapshots or []}
    if found is not None:
        document["discovered"] = found
    return json.dumps(document, indent=1)


def run_status(config: Config, fmt: str = "text") -> str:
    """The status report of `config`'s tables as text or JSON."""
    from bridge.source.clients import aws_clients

    dynamodb, streams = aws_clients(config)
    checkpoints, stored_snapshots = store_for(config).read()
    found = None
    if config.discover.enabled:  # AWS failures: one-line BridgeErrors, as below
        found = TableCatalog.of(config, dynamodb).find()
        config = config.with_found(found)
    shards = table_status(config, dynamodb, streams, checkpoints)
    snapshots = snapshot_status(config, stored_snapshots)
    if fmt == "json":
        return render_json(shards, snapshots, found)
    listing = None if found is None else f"discover found {len(found)} table(s): {', '.join(found) or 'none'}"
    return "\n".join(filter(None, [listing, render_text(shards), render_snapshots(snapshots)]))
