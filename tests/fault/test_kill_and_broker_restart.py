"""The promise under faults: SIGKILLs of the bridge and a broker outage lose nothing and reorder nothing.

A writer makes 3,000 changes (inserts, updates, deletes over 250 keys) in a moto table while the real
bridge runs as a subprocess. The bridge is SIGKILLed at random moments and restarted; the broker is
stopped for more than 10 s while the bridge keeps running (it must retry its flush, hold its checkpoint
and resume by itself) and started again on the same port and log dirs. Then every change must be on the
topic, in write order per key, and every duplicate must come from a restart after a kill (at most one
duplicate run per partition per kill). `FAULT_SEED` replays a run's random moments.
"""

from __future__ import annotations

import os
import random
import time
import uuid

from tests.fault.bridge_runner import BridgeRunner, bridge_config
from tests.fault.changes import TABLE, ChangeWriter, assert_stream_holds_the_writes, create_table, stream_changes
from tests.fault.conftest import FIGURES
from tests.fault.delivery import check_delivery, topic_event_ids
from tests.kafka_topic import read_topic
from tests.polling import held_within, wait_for

CHANGES = 3000
KEYS = 250
KILLS = 5
OUTAGE_S = 12.0


def test_sigkills_and_broker_outage_lose_nothing_and_keep_per_key_order(
    dynamodb, moto_endpoint, kafka_broker, kafka_bootstrap, tmp_path, record_property
):
    seed = int(os.environ.get("FAULT_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    create_table(dynamodb)
    topic = f"fault-{uuid.uuid4().hex[:8]}.{{table}}"
    checkpoint = tmp_path / "checkpoints.json"  # where bridge_config keeps it
    config = bridge_config(tmp_path / "bridge.yaml", moto_endpoint, kafka_bootstrap, topic, shutdown_timeout_s=30)
    topic = topic.format(table=TABLE)
    bridge = BridgeRunner(config, tmp_path / "bridge.log")
    writer = ChangeWriter(moto_endpoint, CHANGES, KEYS, duration=55.0, seed=seed)
    outage_done = False
    try:
        writer.start()
        bridge.start()
        for _ in range(KILLS):
            time.sleep(rng.uniform(1.5, 6.0))  # a random moment: the kill instant, not a wait for a condition
            bridge.kill()
            bridge.start()
        started = time.time()
        wait_for(lambda: checkpoint.stat().st_mtime > started, 60, "the restarted bridge to checkpoint", interval=1.0)
        kafka_broker.stop()  # mid-stream: the running bridge has checkpointed since its start
        stopped = time.monotonic()
        time.sleep(OUTAGE_S)  # the outage itself: the running bridge must hold its checkpoint and keep retrying
        bridge.restart_if_exited()
        kafka_broker.start()
        outage_done = True
        outage = time.monotonic() - stopped
        # The bridge that lived through the outage must resume by itself, without a restart.
        resumed = held_within(60, lambda: "resuming" in bridge.log.read_text(), "the bridge to resume", interval=0.5)
        time.sleep(rng.uniform(1.0, 4.0))
        bridge.kill()  # one more kill after the broker came back
        bridge.start()
        writer.join(timeout=120)
        changes = stream_changes(moto_endpoint)

        def delivered_all() -> bool:
            bridge.restart_if_exited()
            return {event_id for event_id, _, _ in changes} <= set(topic_event_ids(kafka_bootstrap, topic))

        caught_up = held_within(90, delivered_all, "every change on the topic", interval=2.0)
        bridge.signal(15)
        exit_code = bridge.wait(timeout=60)
    finally:
        bridge.stop()
        if not outage_done:
            kafka_broker.start()

    records = read_topic(kafka_bootstrap, topic)
    result = check_delivery(changes, records)
    figures = f"seed={seed} kills={bridge.kills} outage={outage:.1f}s {result.figures()}"
    FIGURES.append(figures)
    print(figures)
    record_property("fault_figures", figures)

    assert_stream_holds_the_writes(changes, writer, CHANGES)
    assert caught_up, f"not every change reached Kafka; {result.figures()}; bridge log:\n{bridge.tail()}"
    assert result.missing == [], f"lost changes: {result.missing[:10]}"
    assert result.unexpected == []
    assert result.reordered_keys == [], f"per-key order broken for {result.reordered_keys[:10]}"
    assert bridge.unexpected_exits == [], f"bridge exited on its own: {bridge.unexpected_exits}\n{bridge.tail()}"
    assert all(runs <= bridge.kills for runs in result.duplicate_runs_per_partition.values()), figures
    assert exit_code == 0, bridge.tail()
    assert "reading paused, checkpoint held" in bridge.log.read_text(), "a running bridge must see the outage"
    assert resumed, "the bridge that lived through the outage did not resume"
