"""The fault suite's checker itself: it must see losses, reorderings and duplicate runs, or it proves nothing."""

from __future__ import annotations

from collections import namedtuple

from tests.fault.delivery import check_delivery

Record = namedtuple("Record", "partition offset key headers")
CHANGES = [("e1", "a", "c"), ("e2", "b", "c"), ("e3", "a", "u"), ("e4", "a", "d")]


def _records(*ids: str) -> list[Record]:
    keys = dict((event_id, key) for event_id, key, _ in CHANGES)
    return [Record(0, offset, keys[i].encode(), [("event_id", i.encode())]) for offset, i in enumerate(ids)]


def test_a_complete_in_order_topic_passes():
    result = check_delivery(CHANGES, _records("e1", "e2", "e3", "e4"))
    assert (result.missing, result.reordered_keys, result.duplicates) == ([], [], 0)


def test_a_lost_change_is_reported():
    assert check_delivery(CHANGES, _records("e1", "e2", "e4")).missing == ["e3"]


def test_a_swapped_pair_of_one_key_is_a_reordering():
    assert check_delivery(CHANGES, _records("e1", "e2", "e4", "e3")).reordered_keys == ["a"]


def test_a_replay_after_a_restart_is_one_duplicate_run():
    result = check_delivery(CHANGES, _records("e1", "e2", "e3", "e2", "e3", "e4"))
    assert (result.duplicates, result.max_duplicate_run, result.duplicate_runs_per_partition) == (2, 2, {0: 1})
    assert result.reordered_keys == [] and result.missing == []
