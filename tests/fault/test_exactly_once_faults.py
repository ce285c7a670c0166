"""The promise of `delivery: exactly_once` under faults: SIGKILLs of the bridge and a broker outage, and a
`read_committed` consumer still sees every change exactly once, in write order per key.

The fault run of test_kill_and_broker_restart.py with the checkpoint in a compacted topic and each checkpoint
interval one Kafka transaction: 3,000 changes over 250 keys, six SIGKILLs at random moments (`FAULT_SEED`
replays them) and a broker outage of more than 10 s while a bridge runs. That bridge cannot confirm its open
transaction, so it aborts it and starts over from the committed checkpoint by itself.

The check is not vacuous: records reach the bridge every few hundred ms and a transaction lasts 0.5 s, so most
kills land in an open transaction whose records are already on the broker; the next bridge aborts it. A
`read_uncommitted` consumer sees those records, and the same delivery check finds them as duplicates there.
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
from tests.polling import held_within

CHANGES = 3000
KEYS = 250
KILLS = 5  # before the outage; one more after it
OUTAGE_S = 12.0
TIMEOUT_S = 8  # shutdown_timeout_s, the longest wait for a commit: shorter than the outage, so it aborts


def _bridge_lines(log: str) -> str:
    """The lines of the bridge's own loggers (without kafka-python's connection noise)."""
    return "\n".join(line for line in log.splitlines() if " bridge" in line or line.startswith("====="))


def _aborted_near(aborted: list, moments: list[float]) -> list[int]:
    """How many records of aborted transactions were sent in the 2 s before each moment (ms since the epoch)
    and after the moment before it: which kills (or the outage) left an open transaction with records."""
    counts = []
    for i, moment in enumerate(moments):
        since = max(moment - 2000, moments[i - 1] if i else 0)
        counts.append(sum(since < record.timestamp <= moment for record in aborted))
    return counts


def test_sigkills_and_broker_outage_deliver_each_change_once_to_read_committed_consumers(
    dynamodb, moto_endpoint, kafka_broker, kafka_bootstrap, tmp_path, record_property
):
    seed = int(os.environ.get("FAULT_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    create_table(dynamodb)
    suffix = uuid.uuid4().hex[:8]
    topic, checkpoints = f"eos-fault-{suffix}.{TABLE}", f"eos-fault-{suffix}-checkpoints"
    config = bridge_config(
        tmp_path / "bridge.yaml",
        moto_endpoint,
        kafka_bootstrap,
        f"eos-fault-{suffix}.{{table}}",
        checkpoint={"store": "kafka", "topic": checkpoints},
        delivery="exactly_once",
        shutdown_timeout_s=TIMEOUT_S,
    )
    bridge = BridgeRunner(config, tmp_path / "bridge.log")
    writer = ChangeWriter(moto_endpoint, CHANGES, KEYS, duration=55.0, seed=seed)

    def committed_count() -> int:
        return len(read_topic(kafka_bootstrap, topic, committed=True))

    def grows_in_this_run(what: str, timeout: float) -> bool:
        """Whether the current run, once it has positioned its shard (again, after its last aborted transaction),
        commits records within `timeout` s."""
        run = bridge.starts

        def positioned() -> bool:
            return "started at" in bridge.run_log().rpartition("transaction aborted")[2]

        if not held_within(timeout, positioned, f"{what} to position its shard", interval=0.5):
            return False
        before = committed_count()
        return (
            held_within(timeout, lambda: committed_count() > before, f"{what} to commit", interval=1.0)
            and bridge.starts == run
        )

    started = time.monotonic()
    moments: list[float] = []  # of each kill and of the broker stop, ms since the epoch
    outage_done = False
    try:
        writer.start()
        bridge.start()
        for _ in range(KILLS):
            time.sleep(rng.uniform(1.5, 6.0))  # a random moment: the kill instant, not a wait for a condition
            moments.append(time.time() * 1000)
            bridge.kill()
            bridge.start()
        committing = grows_in_this_run("the restarted bridge", 60)
        outage_run = bridge.starts
        moments.append(time.time() * 1000)
        kafka_broker.stop()  # mid-stream: the running bridge has committed since its start
        stopped = time.monotonic()
        time.sleep(OUTAGE_S)  # the outage itself: the running bridge cannot confirm its transaction
        bridge.restart_if_exited()
        kafka_broker.start()
        outage_done = True
        outage = time.monotonic() - stopped
        # The bridge that lived through the outage must abort and start over by itself, then deliver again.
        aborted = held_within(
            60, lambda: "transaction aborted" in bridge.run_log(), "the bridge to abort", interval=0.5
        )
        redelivered = aborted and grows_in_this_run("the bridge that started over", 60)
        outage_log = bridge.run_log()
        survived = bridge.starts == outage_run
        time.sleep(rng.uniform(1.0, 4.0))
        moments.append(time.time() * 1000)
        bridge.kill()  # one more kill after the broker came back
        bridge.start()
        writer.join(timeout=120)
        changes = stream_changes(moto_endpoint)

        def delivered_all() -> bool:
            bridge.restart_if_exited()
            return {event_id for event_id, _, _ in changes} <= set(topic_event_ids(kafka_bootstrap, topic, True))

        caught_up = held_within(90, delivered_all, "every change committed on the topic", interval=2.0)
        bridge.signal(15)
        exit_code = bridge.wait(timeout=60)
    finally:
        bridge.stop()
        if not outage_done:
            kafka_broker.start()

    committed = read_topic(kafka_bootstrap, topic, committed=True)
    uncommitted = read_topic(kafka_bootstrap, topic, committed=False)
    result = check_delivery(changes, committed)
    seen_uncommitted = check_delivery(changes, uncommitted)
    offsets = {(r.partition, r.offset) for r in committed}
    aborted_records = [r for r in uncommitted if (r.partition, r.offset) not in offsets]
    near = _aborted_near(aborted_records, moments)
    aborts_logged = bridge.log.read_text().count("transaction aborted")
    figures = (
        f"exactly-once seed={seed} kills={bridge.kills} outage={outage:.1f}s read_committed: {result.figures()}; "
        f"read_uncommitted: delivered={seen_uncommitted.delivered} duplicates={seen_uncommitted.duplicates} "
        f"aborted_records={len(aborted_records)} (by kill/outage: {near}) "
        f"aborts_logged={aborts_logged} duration={time.monotonic() - started:.0f}s"
    )
    FIGURES.append(figures)
    print(figures)
    record_property("fault_figures", figures)

    assert_stream_holds_the_writes(changes, writer, CHANGES)
    assert committing, f"the restarted bridge did not commit before the outage:\n{bridge.tail()}"
    assert caught_up, f"not every change was committed to Kafka; {result.figures()}; bridge log:\n{bridge.tail()}"
    assert result.missing == [], f"lost changes: {result.missing[:10]}"
    assert result.unexpected == []
    assert result.duplicates == 0, f"read_committed consumers saw duplicates: {figures}"
    assert result.reordered_keys == [], f"per-key order broken for {result.reordered_keys[:10]}"
    assert bridge.unexpected_exits == [], f"bridge exited on its own: {bridge.unexpected_exits}\n{bridge.tail()}"
    assert exit_code == 0, bridge.tail()
    assert aborted and survived, (
        f"the bridge that lived through the outage did not abort by itself:\n{_bridge_lines(outage_log)}"
    )
    assert "starting over from the committed checkpoint" in outage_log, _bridge_lines(outage_log)
    assert redelivered, f"the bridge that started over did not commit again:\n{bridge.tail()}"
    # Not vacuous: records of aborted transactions are on the topic, and the check finds them when they are read.
    assert len(uncommitted) > len(committed), f"no record of an aborted transaction on the topic: {figures}"
    assert seen_uncommitted.duplicates == len(uncommitted) - len(committed), figures
    assert seen_uncommitted.missing == [], figures
