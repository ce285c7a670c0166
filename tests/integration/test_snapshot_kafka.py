"""Snapshots end to end: moto server -> `cdc-bridge run` (subprocess) -> real Kafka broker -> `decode_value`.

A `KEYS_ONLY` table with `enrich: current_item`: the snapshot's rows (`op: r`) carry whole items, the changes
after it carry the item as it is now (`source.current_item`), deletes carry no `after`. `snapshot:
initial_only` ends the run by itself; `run --snapshot TABLE` takes a new snapshot of a table the checkpoint
knows, and names an unknown table in one line.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from decimal import Decimal

from boto3.dynamodb.types import TypeDeserializer

from bridge.checkpoint import CheckpointStore
from bridge.codec import decode_value
from tests.bridge_process import run_bridge
from tests.fault.bridge_runner import BridgeRunner, bridge_config
from tests.kafka_topic import read_topic
from tests.polling import wait_for
from tests.tables import create_stream_table

TABLE = "Gadgets"
ITEMS = 20


def _item(n: int) -> dict:
    """Item `n`: exact and negative numbers, nested maps and lists, a string set and a number set."""
    return {
        "id": {"S": f"g-{n:02d}"},
        "price": {"N": f"{n}.25"},
        "exact": {"N": "12345678901234567890123456789012345678"},
        "specs": {
            "M": {
                "ram": {"N": str(2**n)},
                "dims": {"M": {"w": {"N": "1.5"}, "h": {"N": "-2E-3"}}},
                "parts": {"L": [{"S": "lid"}, {"N": str(n)}, {"NULL": True}, {"BOOL": n % 2 == 0}]},
            }
        },
        "colors": {"SS": ["red", "blue", f"c{n}"]},
        "sizes": {"NS": ["1", "2.5", str(-n)]},
    }


def _key(n: int) -> dict:
    return {"id": {"S": f"g-{n:02d}"}}


def _plain(value):
    """A boto3-deserialized value as `decode_value` gives it: sets as sorted lists."""
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _items_now(client) -> dict[str, dict]:
    """Every item of the table as plain values, by `id` (a consistent Scan)."""
    plain = TypeDeserializer().deserialize
    items = {}
    for page in client.get_paginator("scan").paginate(TableName=TABLE, ConsistentRead=True):
        for item in page["Items"]:
            items[item["id"]["S"]] = {name: _plain(plain(value)) for name, value in item.items()}
    return items


def _setup(dynamodb, moto_endpoint, kafka_bootstrap, tmp_path, **table):
    """The KEYS_ONLY table with ITEMS items, and a config (`snapshot: initial`, enrich) into a new topic."""
    create_stream_table(dynamodb, TABLE, key="id", view_type="KEYS_ONLY")
    for n in range(ITEMS):
        dynamodb.put_item(TableName=TABLE, Item=_item(n))
    topic = f"snap-{uuid.uuid4().hex[:8]}"
    settings = {"name": TABLE, "snapshot": "initial", "enrich": "current_item", **table}
    config = bridge_config(tmp_path / "bridge.yaml", moto_endpoint, kafka_bootstrap, topic, table=settings)
    return config, topic


def _change(client) -> dict[str, str]:
    """Puts 3 new items, updates 3 and deletes 3 others (each key changed once); the op expected per key."""
    expected = {}
    for n in range(ITEMS, ITEMS + 3):
        client.put_item(TableName=TABLE, Item=_item(n))
        expected[f"g-{n:02d}"] = "c"
    for n in range(3):
        client.update_item(
            TableName=TABLE,
            Key=_key(n),
            UpdateExpression="SET price = price + :d, specs.ram = :ram ADD colors :more",
            ExpressionAttributeValues={":d": {"N": "0.5"}, ":ram": {"N": "-1"}, ":more": {"SS": ["green"]}},
        )
        expected[f"g-{n:02d}"] = "u"
    for n in range(3, 6):
        client.delete_item(TableName=TABLE, Key=_key(n))
        expected[f"g-{n:02d}"] = "d"
    return expected


def _events(records: list) -> dict[str, list[dict]]:
    """The decoded envelopes of the topic per item key, in offset order (one partition per key)."""
    events = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        event = decode_value(record.value)
        assert record.key.decode() == event["keys"]["id"]
        events[event["keys"]["id"]].append(event)
    return dict(events)


def _assert_rows_are_whole_items(events: dict[str, list[dict]], items: dict[str, dict]) -> None:
    """One row per item, as the table held it, marked snapshot and current_item; nothing else."""
    assert sorted(events) == sorted(items)
    for key, (row, *later) in events.items():
        assert later == [], f"{key}: {[e['op'] for e in later]} after its row"
        assert row["op"] == "r" and row["before"] is None and row["after"] == items[key], key
        assert row["source"]["snapshot"] is True and row["source"]["current_item"] is True, row["source"]


def _assert_changes_carry_the_current_item(changes: dict[str, list[dict]], expected: dict, items: dict) -> None:
    """Exactly the changes made, one per key; c/u with `after` = the item now (current_item), d without."""
    assert {key: [e["op"] for e in events] for key, events in changes.items()} == {
        k: [op] for k, op in expected.items()
    }
    for key, (event,) in changes.items():
        assert event["source"]["snapshot"] is False
        if event["op"] == "d":
            assert event["after"] is None and key not in items
        else:
            assert event["after"] == items[key] and event["source"]["current_item"] is True, event
    updated = items["g-00"]
    assert updated["price"] == Decimal("0.75") and updated["specs"]["ram"] == -1 and "green" in updated["colors"]


def test_keys_only_rows_are_whole_items_and_changes_while_running_carry_the_current_item(
    dynamodb, moto_endpoint, kafka_bootstrap, tmp_path
):
    config, topic = _setup(dynamodb, moto_endpoint, kafka_bootstrap, tmp_path)
    rows = _items_now(dynamodb)
    bridge = BridgeRunner(config, tmp_path / "bridge.log")
    bridge.start()
    try:
        wait_for(lambda: bridge.logged(f"snapshot of table {TABLE} done"), 60, "the snapshot", interval=0.2)
        expected = _change(dynamodb)
        total = ITEMS + len(expected)
        wait_for(lambda: len(read_topic(kafka_bootstrap, topic)) >= total, 60, "the changes on the topic", interval=0.5)
        bridge.signal(15)
        assert bridge.wait(timeout=60) == 0, bridge.tail()
    finally:
        bridge.stop()

    events = _events(read_topic(kafka_bootstrap, topic))
    _assert_rows_are_whole_items({key: found[:1] for key, found in events.items() if key in rows}, rows)
    changes = {key: [e for e in found if e["op"] != "r"] for key, found in events.items()}
    _assert_changes_carry_the_current_item({k: v for k, v in changes.items() if v}, expected, _items_now(dynamodb))


def test_changes_made_between_two_runs_come_after_the_rows_and_older_records_are_not_replayed(
    dynamodb, moto_endpoint, kafka_bootstrap, tmp_path
):
    # The first run reads no stream record, so the second reads the stream from its trim horizon and skips what
    # was created before the first run last found it quiet (the checkpoint's `quiet_ms`), less the handoff
    # margin and a second for AWS's rounding of creation times. moto's records appear at once and share this
    # host's clock, so no margin is needed here.
    config, topic = _setup(dynamodb, moto_endpoint, kafka_bootstrap, tmp_path, snapshot_handoff_margin_ms=0)
    rows = _items_now(dynamodb)

    first = run_bridge("run", "--config", str(config), "--until-caught-up")
    assert first.returncode == 0, first.stderr
    first_records = read_topic(kafka_bootstrap, topic)
    _assert_rows_are_whole_items(_events(first_records), rows)
    ends = defaultdict(int)  # partition -> its end offset after the first run
    for record in first_records:
        ends[record.partition] = max(ends[record.partition], record.offset + 1)
    ((_, quiet),) = CheckpointStore(tmp_path / "checkpoints.json").load().items()
    assert quiet.sequence_number is None and quiet.quiet_ms is not None

    expected = _change(dynamodb)
    second = run_bridge("--log-level", "INFO", "run", "--config", str(config), "--until-caught-up")

    assert second.returncode == 0, second.stderr
    events = _events([r for r in read_topic(kafka_bootstrap, topic) if r.offset >= ends[r.partition]])

    def made_meanwhile(event: dict) -> bool:
        return event["source"]["approximate_creation_ms"] >= quiet.quiet_ms

    replayed = [e for found in events.values() for e in found if not made_meanwhile(e)]
    assert all(e["source"]["approximate_creation_ms"] >= quiet.quiet_ms - 1000 for e in replayed), replayed
    changes = {key: kept for key, found in events.items() if (kept := [e for e in found if made_meanwhile(e)])}
    _assert_changes_carry_the_current_item(changes, expected, _items_now(dynamodb))


def test_initial_only_run_exits_by_itself_with_every_item_and_status_shows_the_snapshot_done(
    dynamodb, moto_endpoint, kafka_bootstrap, tmp_path
):
    config, topic = _setup(dynamodb, moto_endpoint, kafka_bootstrap, tmp_path, snapshot="initial_only")
    rows = _items_now(dynamodb)

    result = run_bridge("--log-level", "INFO", "run", "--config", str(config), timeout=60)

    assert result.returncode == 0, result.stderr
    assert "every snapshot is done (snapshot: initial_only); stopping" in result.stderr
    _assert_rows_are_whole_items(_events(read_topic(kafka_bootstrap, topic)), rows)
    status = run_bridge("status", "--config", str(config))
    assert status.returncode == 0, status.stderr
    assert f"snapshot of {TABLE}: done (initial)" in status.stdout, status.stdout
    assert f"{ITEMS} items, 4 of 4 segments done" in status.stdout, status.stdout


def test_run_snapshot_takes_a_new_snapshot_of_a_table_the_checkpoint_knows(
    dynamodb, moto_endpoint, kafka_bootstrap, tmp_path
):
    config, topic = _setup(dynamodb, moto_endpoint, kafka_bootstrap, tmp_path)
    first = run_bridge("run", "--config", str(config), "--until-caught-up")
    assert first.returncode == 0, first.stderr
    dynamodb.put_item(TableName=TABLE, Item=_item(ITEMS))  # the checkpoint now also holds a stream position
    known = run_bridge("run", "--config", str(config), "--until-caught-up")
    assert known.returncode == 0, known.stderr
    assert [decode_value(r.value)["op"] for r in read_topic(kafka_bootstrap, topic)].count("r") == ITEMS

    again = run_bridge("--log-level", "INFO", "run", "--config", str(config), "--snapshot", TABLE, "--until-caught-up")

    assert again.returncode == 0, again.stderr
    assert f"snapshot of table {TABLE} started (requested)" in again.stderr
    snapshots = defaultdict(list)  # snapshot id (event_id prefix: its start) -> keys of its rows
    for record in read_topic(kafka_bootstrap, topic):
        event = decode_value(record.value)
        if event["op"] == "r":
            snapshots[event["source"]["event_id"].rsplit("-", 2)[0]].append(event["keys"]["id"])
    (_, initial), (_, requested) = sorted(snapshots.items())
    assert sorted(initial) == [f"g-{n:02d}" for n in range(ITEMS)]
    assert sorted(requested) == sorted(_items_now(dynamodb)) == [f"g-{n:02d}" for n in range(ITEMS + 1)]
    status = run_bridge("status", "--config", str(config))
    assert f"snapshot of {TABLE}: done (requested)" in status.stdout, status.stdout


def test_snapshot_of_a_table_not_in_the_config_exits_2_naming_it(moto_endpoint, kafka_bootstrap, tmp_path):
    config = bridge_config(tmp_path / "bridge.yaml", moto_endpoint, kafka_bootstrap, "unused", table={"name": TABLE})

    result = run_bridge("run", "--config", str(config), "--snapshot", "NOPE")

    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "--snapshot NOPE: no such table" in result.stderr and TABLE in result.stderr
