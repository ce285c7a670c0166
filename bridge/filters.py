"""Per-table filtering of change events before they reach the sinks (what Lambda event filters give users).

`include_ops` keeps only the listed operations, `drop_ttl_deletes` drops removals made by DynamoDB's TTL
expiry, and `exclude_attributes` removes top-level attributes from `before` and `after` (e.g. PII). Key
attributes stay in `keys` (and so in the Kafka key) even when excluded: without them a consumer could not
tell which item changed. A dropped event still counts as handled for checkpointing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence

from bridge.config import TableConfig
from bridge.normalize import ChangeEvent


def filter_events(events: Sequence[ChangeEvent], table: TableConfig) -> list[ChangeEvent]:
    """The events of `table` that its filters let through, with excluded attributes removed; order kept."""
    return [kept for kept in (filter_event(event, table) for event in events) if kept is not None]


def filter_event(event: ChangeEvent, table: TableConfig) -> ChangeEvent | None:
    """`event` as `table`'s filters let it through (excluded attributes removed), or None when they drop it.

    Only excluding attributes reads the images: a malformed one raises `PoisonRecordError` then.
    """
    if event.op not in table.include_ops and event.op != "r":  # snapshot reads are not stream operations
        return None
    if table.drop_ttl_deletes and event.op == "d" and event.ttl_expired:
        return None
    if excluded := table.exclude_attributes:
        return dataclasses.replace(
            event, before=_without(event.before, excluded), after=_without(event.after, excluded)
        )
    return event


def _without(item: dict | None, excluded: Collection[str]) -> dict | None:
    if item is None:
        return None
    return {name: value for name, value in item.items() if name not in excluded}
