"""ShardTree: lineage rules that decide which shard may be read."""

from __future__ import annotations

from bridge.source.shards import ShardTree


def shard(shard_id: str, parent: str | None = None) -> dict:
    return {"ShardId": shard_id, **({"ParentShardId": parent} if parent else {})}


def test_child_shard_waits_for_parent_to_finish():
    tree = ShardTree()
    tree.update([shard("p"), shard("c1", "p"), shard("c2", "p")])
    assert tree.ready() == ["p"]
    tree.start("p")
    assert tree.ready() == []
    tree.finish("p")
    assert tree.ready() == ["c1", "c2"]


def test_child_of_a_parent_no_longer_listed_is_ready():
    tree = ShardTree()
    tree.update([shard("c", "trimmed-away")])
    assert tree.ready() == ["c"]


def test_child_waits_while_its_unlisted_parent_is_still_being_read():
    tree = ShardTree()
    tree.update([shard("p")])
    tree.start("p")
    tree.update([shard("c", "p")])  # p vanished from the listing while being read
    assert tree.ready() == []
    tree.finish("p")
    assert tree.ready() == ["c"]


def test_parent_finished_per_checkpoint_lets_child_start_and_is_not_read_again():
    tree = ShardTree(finished={"p"})
    tree.update([shard("p"), shard("c", "p")])
    assert tree.ready() == ["c"]


def test_shard_listed_as_its_own_parent_is_read_as_a_root():
    tree = ShardTree()
    tree.update([shard("s", "s")])
    assert tree.ready() == ["s"]


def test_every_shard_of_a_parent_cycle_is_read_as_a_root_and_descendants_still_wait():
    tree = ShardTree()
    tree.update([shard("a", "b"), shard("b", "a"), shard("c", "a")])
    assert tree.ready() == ["a", "b"]  # neither may wait for the other: both may stay open for ever
    tree.start("a")
    tree.start("b")
    assert tree.ready() == []
    tree.finish("a")
    assert tree.ready() == ["c"]


def test_a_longer_parent_cycle_loses_every_link_of_the_cycle_only():
    tree = ShardTree()
    tree.update([shard("a", "c"), shard("b", "a"), shard("c", "b"), shard("d", "c")])
    assert tree.parents == {"a": None, "b": None, "c": None, "d": "c"}


def test_prune_forgets_finished_shards_that_are_no_longer_listed():
    tree = ShardTree(finished={"old", "p"})
    tree.update([shard("p"), shard("c", "p"), shard("open")])
    assert tree.prune() == {"old"}
    assert tree.prune() == set()
    assert tree.unfinished() == {"c", "open"}
