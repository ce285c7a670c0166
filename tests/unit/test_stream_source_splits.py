"""Three generations of splits (1 -> 2 -> 4 shards, 20,000 changes over 200 items) through the real Pipeline:
every change arrives exactly once with per-item order intact, also across a restart from a mid-way checkpoint."""

from __future__ import annotations

import shutil
import threading

from bridge.checkpoint import CheckpointStore
from tests.fake_streams import FakeAWS
from tests.polling import wait_for
from tests.stream_harness import (
    BridgeThread,
    Changes,
    MemorySink,
    assert_exactly_once_in_order,
    make_config,
    pipeline,
    run_until_caught_up,
)

ITEMS = 200
GENERATIONS = (4000, 6000, 10000)  # changes written while 1, 2 and 4 shards are open


def write_three_generations(changes: Changes) -> None:
    aws = changes.aws
    for generation, count in enumerate(GENERATIONS):
        if generation:
            for shard_id in aws.open_shards("T"):
                aws.split(shard_id)
        changes.many("T", count, keys=ITEMS)


def assert_items_span_generations(sink: MemorySink, aws: FakeAWS) -> None:
    """The test means something only if items were written in parents and their children alike."""
    shards = aws.stream_of("T").shards
    assert len(shards) == 7 and len(aws.open_shards("T")) == 4
    assert {e.shard_id for e in sink.events} == set(shards)
    depth = {sid: 0 if s.parent is None else 1 + (shards[s.parent].parent is not None) for sid, s in shards.items()}
    generations_per_item: dict[str, set[int]] = {}
    for event in sink.events:
        generations_per_item.setdefault(event.key, set()).add(depth[event.shard_id])
    assert all(found == {0, 1, 2} for found in generations_per_item.values())


def test_three_generations_of_splits_written_live_arrive_exactly_once_in_item_order(tmp_path, changes):
    changes.aws.create_table("T")
    sink = MemorySink()
    writer = threading.Thread(target=write_three_generations, args=(changes,))
    with BridgeThread(changes.aws, make_config(tmp_path / "cp.json", [{"name": "T"}]), sink) as bridge:
        writer.start()
        writer.join()
        wait_for(lambda: sink.count() >= 20000 or bridge.error, 90, "20,000 changes")
    assert bridge.error is None
    assert len(changes.written) == 20000
    assert_exactly_once_in_order(sink.events, changes.written)
    assert_items_span_generations(sink, changes.aws)


def test_restart_after_a_stop_mid_way_delivers_the_rest_exactly_once_in_item_order(tmp_path, changes):
    changes.aws.create_table("T")
    write_three_generations(changes)
    config = make_config(tmp_path / "cp.json", [{"name": "T"}])
    first = MemorySink()
    run = pipeline(changes.aws, config, first)
    first.on_write = lambda count: count >= 9000 and run.request_stop()
    run.run()
    assert 9000 <= first.count() < 20000
    second = MemorySink()

    run_until_caught_up(changes.aws, config, second)

    assert_exactly_once_in_order(first.events + second.events, changes.written)


def test_restart_from_a_checkpoint_copied_mid_way_delivers_exactly_what_it_does_not_cover(tmp_path, changes):
    """As after a crash: the run goes on past the copied checkpoint; a second run from the copy must deliver
    exactly the changes the copy does not cover, and together with the covered ones, each once and in order."""
    changes.aws.create_table("T")
    write_three_generations(changes)
    path, copy = tmp_path / "cp.json", tmp_path / "mid-way.json"
    first = MemorySink()

    def copy_mid_way(count: int) -> None:
        if count >= 10000 and not copy.exists() and path.exists():
            shutil.copyfile(path, copy)

    first.on_write = copy_mid_way
    run_until_caught_up(changes.aws, make_config(path, [{"name": "T"}]), first)
    checkpoint = CheckpointStore(copy).load()
    covered = [
        e
        for e in first.events
        if (c := checkpoint.get((e.stream_arn, e.shard_id)))
        and (c.finished or int(e.sequence_number) <= int(c.sequence_number))
    ]
    assert 0 < len(covered) < 20000
    assert any(not c.finished for c in checkpoint.values())
    second = MemorySink()

    run_until_caught_up(changes.aws, make_config(copy, [{"name": "T"}]), second)

    assert_exactly_once_in_order(covered + second.events, changes.written)
