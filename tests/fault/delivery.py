"""Checking a topic against the changes written: nothing lost, per-key order kept, duplicates explained."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class Delivery:
    """What a topic holds compared with the changes written (each change is `(event_id, key, op)`)."""

    written: int
    delivered: int
    duplicates: int
    max_duplicate_run: int
    duplicate_runs_per_partition: dict[int, int]
    missing: list[str]
    unexpected: list[str]
    reordered_keys: list[str]

    def figures(self) -> str:
        return (
            f"written={self.written} delivered={self.delivered} duplicates={self.duplicates} "
            f"max_duplicate_run={self.max_duplicate_run} "
            f"duplicate_runs_per_partition={self.duplicate_runs_per_partition}"
        )


def _header(record, name: str) -> str:
    return dict(record.headers)[name].decode()


def check_delivery(changes: list[tuple[str, str, str]], records: list) -> Delivery:
    """Compare the stream's `changes` (in stream order) with the topic's `records` (kafka ConsumerRecords).

    A duplicate is a record whose event_id appeared earlier in its partition; a duplicate run is a maximal
    stretch of consecutive duplicates in one partition. Per-key order compares the first copy of each change
    (in partition order) with the stream order of that key's changes.
    """
    expected_by_key: dict[str, list[str]] = defaultdict(list)
    for event_id, key, _op in changes:
        expected_by_key[key].append(event_id)
    expected_ids = {event_id for event_id, _key, _op in changes}
    first_by_key: dict[str, list[str]] = defaultdict(list)
    seen: set[str] = set()
    duplicates = 0
    longest = 0
    runs: dict[int, int] = defaultdict(int)
    unexpected: list[str] = []
    for partition in sorted({r.partition for r in records}):
        run = 0
        for record in sorted((r for r in records if r.partition == partition), key=lambda r: r.offset):
            event_id = _header(record, "event_id")
            if event_id in seen:
                duplicates += 1
                run += 1
                if run == 1:
                    runs[partition] += 1
                longest = max(longest, run)
                continue
            run = 0
            seen.add(event_id)
            if event_id not in expected_ids:
                unexpected.append(event_id)
            first_by_key[record.key.decode()].append(event_id)
    reordered = sorted(
        key for key, ids in expected_by_key.items() if first_by_key.get(key, []) != [i for i in ids if i in seen]
    )
    return Delivery(
        written=len(changes),
        delivered=len(records),
        duplicates=duplicates,
        max_duplicate_run=longest,
        duplicate_runs_per_partition=dict(runs),
        missing=sorted(expected_ids - seen),
        unexpected=unexpected,
        reordered_keys=reordered,
    )


def topic_records(bootstrap: str, topic: str, committed: bool = False) -> list:
    """Every record of `topic` (none while the topic does not exist yet); `committed`: as `read_committed`."""
    from tests.kafka_topic import read_topic

    try:
        return read_topic(bootstrap, topic, committed=committed)
    except ValueError:  # no partitions yet: the bridge has not created the topic
        return []


def topic_event_ids(bootstrap: str, topic: str, committed: bool = False) -> list[str]:
    """The `event_id` header of every record of `topic`, in partition order (`committed`: see `topic_records`)."""
    return [_header(r, "event_id") for r in topic_records(bootstrap, topic, committed)]
