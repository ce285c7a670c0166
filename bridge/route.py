"""One table's write path: its records in; the change events to write, the dead letters and a position out.

Every way records reach the bridge (stream shards, snapshot Scan pages) feeds batches of one table to that table's
`TableRoute`; nothing else normalizes, filters, pre-encodes or applies `on_poison`. Order of the work:
normalize each record (keys and metadata now, images when first needed), give changes without a new image
the item's current state when the table says `enrich: current_item` (bridge/enrich.py), drop what the filters
drop, then - when every sink encodes with the table's codec and none reads plain values - write the images
from their attribute-value JSON straight to Avro (`bridge.codec.transcode`); otherwise normalize them. Any
of these steps may find a poison record; the table's policy then decides: `fail` raises `FatalError`, `dlq`
gives a dead letter, `skip` logs and counts it.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from bridge.codec.avro import table_codec
from bridge.codec.registry import SchemaRegistry
from bridge.config import Config, TableConfig
from bridge.enrich import CurrentItems
from bridge.errors import FatalError, PoisonRecordError, RejectedEvent
from bridge.filters import filter_event
from bridge.normalize import (
    ChangeEvent,
    Position,
    ScannedItem,
    last_sequence_number,
    sequence_number_of,
    to_change_event,
    to_snapshot_event,
)
from bridge.ops import metrics
from bridge.poison import DeadLetter
from bridge.sinks.base import Sink, TableEncoding
from bridge.source.discovery import TableInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Routed:
    """What a batch became: `events` for every sink, in order; `letters` for the dead-letter destination;
    `last_sequence`, the position to checkpoint once both are durable (None when the batch held none)."""

    events: list[ChangeEvent]
    letters: list[DeadLetter]
    last_sequence: str | None


class TableRoute:
    """The write path of one configured table; `key_names` (partition key, then sort key) from DynamoDB."""

    def __init__(
        self,
        table: TableConfig,
        encoding: TableEncoding,
        key_names: tuple[str, ...],
        region: str,
        view_type: str = "",
        current_items: CurrentItems | None = None,
    ) -> None:
        """`current_items` reads the items of changes that lack a new image (`enrich: current_item`)."""
        self.table = table
        self.current_items = current_items
        self.encoding = encoding
        self.key_names = key_names
        self.region = region
        self.view_type = view_type
        self.transcoder = None  # set by `serve` when the sinks let images stay raw
        self.counts: Counter[str] = Counter()  # poison records routed, by policy
        self.superseded_shards: set[str] = set()  # shards whose records older than their cut were skipped

    def serve(self, sinks: Sequence[Sink]) -> None:
        """Decide, for these sinks, whether images go from their JSON straight to Avro (no plain values)."""
        raw = bool(sinks) and not any(sink.reads_plain_values for sink in sinks)
        self.transcoder = self.encoding.codec.transcoder if raw and not self.table.exclude_attributes else None

    def route(
        self, records: Sequence, stream_arn: str, shard_id: str, superseded_before_ms: float = -math.inf
    ) -> Routed:
        """The events, dead letters and checkpoint position of `records` (stream records of one shard, in order).

        Records created before `superseded_before_ms` (epoch ms) are skipped: read by an earlier run already, or
        held by the table's snapshot (`TableStream.superseded_for`)."""
        changes: list[ChangeEvent] = []
        letters: list[DeadLetter | None] = []  # None for a record skipped by `skip`
        for record in records:
            try:
                event = to_change_event(
                    record,
                    table=self.table.name,
                    stream_arn=stream_arn,
                    shard_id=shard_id,
                    key_names=self.key_names,
                    region=self.region,
                    lazy=True,
                )
            except PoisonRecordError as error:
                sequence = sequence_number_of(record) or "?"
                letter = DeadLetter(self.table.name, str(error), "normalize", stream_arn, shard_id, sequence, record)
                letters.append(self._poison(letter))
                continue
            if event.approximate_creation_ms < superseded_before_ms:
                self._superseded(shard_id)
                continue
            changes.append(event)
        events: list[ChangeEvent] = []
        for event in self._enriched(changes, letters):
            self._admit(event, events, letters)
        return Routed(events, [letter for letter in letters if letter], last_sequence_number(records))

    def _superseded(self, shard_id: str) -> None:
        if shard_id not in self.superseded_shards:
            self.superseded_shards.add(shard_id)
            log.info(
                "table %s, shard %s: read from its trim horizon (no sequence number of it was stored), skipping "
                "the records created before the last run found it quiet or before the table's snapshot began",
                self.table.name,
                shard_id,
            )

    def _enriched(self, events: list[ChangeEvent], letters: list[DeadLetter | None]) -> list[ChangeEvent]:
        """`events` with the current item where the table enriches them; an event whose key cannot be read
        back is poison (the rest are still enriched)."""
        if self.current_items is None:
            return events
        while True:
            try:
                return self.current_items.enrich(events)
            except RejectedEvent as error:  # raised before anything is read: the rest are asked again
                letters.append(self._poison(self._letter(error.event, str(error), "enrich")))
                events = [event for event in events if event is not error.event]

    def rows(self, items: Sequence, stream_arn: str, segment: int, read_ms: int, event_ids: Iterator[str]) -> Routed:
        """The `op: r` events and dead letters of `items` (one Scan page of segment `segment`, read at
        `read_ms`); `event_ids` gives each item's `event_id`, in order."""
        events: list[ChangeEvent] = []
        letters: list[DeadLetter | None] = []
        position = Position(stream_arn, f"snapshot-segment-{segment}", "")
        for item, event_id in zip(items, event_ids, strict=False):
            try:
                event = to_snapshot_event(
                    item,
                    table=self.table.name,
                    key_names=self.key_names,
                    region=self.region,
                    position=position,
                    event_id=event_id,
                    read_ms=read_ms,
                    view_type=self.view_type,
                )
            except PoisonRecordError as error:
                letter = DeadLetter(self.table.name, str(error), "normalize", stream_arn, position.shard_id, "", item)
                letters.append(self._poison(letter))
                continue
            self._admit(event, events, letters)
        return Routed(events, [letter for letter in letters if letter], None)

    def _admit(self, event: ChangeEvent, events: list[ChangeEvent], letters: list[DeadLetter | None]) -> None:
        """Filter `event`, and check (or pre-encode) its images: into `events`, or poison into `letters`."""
        try:
            event = filter_event(event, self.table)
            if event is None:
                return
            if self.transcoder is not None:
                self.transcoder.sides(event)
            else:
                event.before, event.after  # noqa: B018 - normalized now: a malformed image is poison here
        except PoisonRecordError as error:
            letters.append(self._poison(self._letter(event, str(error), "normalize")))
            return
        events.append(event)

    def rejected(self, error: RejectedEvent, sink: str) -> DeadLetter | None:
        """A sink refused one event (`RejectedEvent`): its dead letter under `dlq`, None under `skip`."""
        return self._poison(self._letter(error.event, str(error), sink))

    def _letter(self, event: ChangeEvent, reason: str, stage: str) -> DeadLetter:
        position, record = event.position, event.record
        keys = None
        if event.op == "r" and type(record) in (dict, ScannedItem):  # a scanned item, parsed or as text
            attributes = record.key if type(record) is ScannedItem else record
            keys = {name: attributes[name] for name in self.key_names if name in attributes}
        return DeadLetter(
            self.table.name,
            reason,
            stage,
            position.stream_arn,
            position.shard_id,
            position.sequence_number,
            record,
            snapshot_keys=keys,
        )

    def _poison(self, letter: DeadLetter) -> DeadLetter | None:
        """Apply the table's policy to a poison record: `FatalError` under `fail`, the letter under `dlq`."""
        policy = self.table.on_poison
        metrics.poison_record(letter.table, policy)
        where = f"table {letter.table}, shard {letter.shard_id}, sequence number {letter.sequence_number}"
        if not letter.sequence_number:  # a snapshot row: its segment, and its key when it has one
            where = f"table {letter.table}, snapshot {letter.shard_id.removeprefix('snapshot-')}"
            where += f", item {letter.snapshot_keys}" if letter.snapshot_keys else ""
        if policy == "fail":
            raise FatalError(
                f"{where}: poison record ({letter.stage}): {letter.reason}. The checkpoint stays before it; "
                "set `on_poison: dlq` or `skip` on the table to route such records and go on."
            )
        self.counts[policy] += 1
        if policy == "dlq":
            log.warning(
                "%s: poison record (%s) goes to the dead-letter destination: %s", where, letter.stage, letter.reason
            )
            return letter
        log.error("%s: poison record (%s) SKIPPED (on_poison: skip): %s", where, letter.stage, letter.reason)
        return None


def build_routes(
    config: Config, tables: Sequence[TableInfo], dynamodb=None, sleep: Callable[[float], None] = time.sleep
) -> dict[str, TableRoute]:
    """A route per described table, with its codec (`encoding.numbers`, `wire_format`, the table's schema) and,
    for `enrich: current_item`, its reader of current items on `dynamodb` (retries wait with `sleep`)."""
    routes = {}
    confluent = config.encoding.framing(config.schema_registry) == "confluent"
    registry = SchemaRegistry(config.schema_registry) if confluent else None
    for info in tables:
        table = config.table(info.name)
        pairs = tuple(zip(info.key_names, info.key_types or ("",) * len(info.key_names), strict=True))
        attributes = pairs[:1] if table.key == "partition" else tuple(sorted(pairs))
        encoding = TableEncoding(table_codec(config, table), table.key, registry, attributes)
        current = None
        if table.enrich == "current_item":
            current = CurrentItems(dynamodb, table.name, info.key_names, sleep=sleep)
        routes[table.name] = TableRoute(table, encoding, info.key_names, info.region, info.view_type, current)
    return routes
