"""delivery: exactly_once end to end: moto server -> cdc-bridge (subprocess) -> the real broker, with the
checkpoint in a compacted topic. read_committed readers see each change once; a bridge moved to a machine
without its working directory resumes where it was; a second bridge with the same transactional id fences
the first."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid

import pytest

from bridge.commands.demo import create_phones
from tests.bridge_process import kafka_config, run_bridge
from tests.kafka_topic import read_topic
from tests.polling import wait_for

PHONES_CHANGES = 6  # what create_phones writes


@pytest.fixture
def exactly_once(tmp_path, moto_endpoint, kafka_bootstrap):
    """(config path, changes topic, checkpoint topic) of an exactly-once bridge whose working dir is tmp/work."""
    suffix = uuid.uuid4().hex[:8]
    work = tmp_path / "work"
    work.mkdir()
    path = kafka_config(
        tmp_path / "bridge.yaml",
        moto_endpoint,
        kafka_bootstrap,
        f"eos-{suffix}.{{table}}",
        [{"name": "Phones"}],
        checkpoint={"store": "kafka", "topic": f"eos-{suffix}-checkpoints", "interval_s": 0.3},
        delivery="exactly_once",
        shutdown_timeout_s=20,
    )
    return path, f"eos-{suffix}.Phones", f"eos-{suffix}-checkpoints", work


def event_ids(bootstrap: str, topic: str, committed: bool = True) -> list[str]:
    return [dict(r.headers)["event_id"].decode() for r in read_topic(bootstrap, topic, committed=committed)]


def test_a_rescheduled_bridge_resumes_from_the_kafka_store_and_nothing_is_read_twice(
    dynamodb, exactly_once, kafka_bootstrap
):
    config, topic, checkpoints, work = exactly_once
    create_phones(dynamodb)

    first = run_bridge("run", "--config", str(config), "--until-caught-up", cwd=work)
    assert first.returncode == 0, first.stderr
    ids = event_ids(kafka_bootstrap, topic)
    assert len(ids) == PHONES_CHANGES and len(set(ids)) == PHONES_CHANGES
    assert read_topic(kafka_bootstrap, checkpoints, committed=True), "the checkpoint is on its topic"

    shutil.rmtree(work)  # a new machine: no local file of any kind
    work.mkdir()
    dynamodb.put_item(TableName="Phones", Item={"Company": {"S": "Nokia"}, "Model": {"S": "3310"}})
    second = run_bridge("run", "--config", str(config), "--until-caught-up", cwd=work)
    assert second.returncode == 0, second.stderr
    ids = event_ids(kafka_bootstrap, topic)
    assert len(ids) == PHONES_CHANGES + 1 and len(set(ids)) == len(ids), "resumed after the checkpoint"
    assert not list(work.iterdir()), "the Kafka store keeps nothing on the local disk"
    committed = [r for r in read_topic(kafka_bootstrap, topic, committed=True) if r.key == b"Nokia"]
    assert len(committed) == 1


def test_a_second_bridge_with_the_same_transactional_id_fences_the_first(dynamodb, exactly_once, kafka_bootstrap):
    config, topic, _, work = exactly_once
    create_phones(dynamodb)
    log = work / "first.log"
    with log.open("w") as out:
        first = subprocess.Popen([sys.executable, "-m", "bridge", "run", "--config", str(config)], stderr=out, cwd=work)
    second = None
    try:
        wait_for(lambda: len(set(event_ids(kafka_bootstrap, topic))) == PHONES_CHANGES, 60, "the first bridge's run")
        with (work / "second.log").open("w") as out:
            second = subprocess.Popen(
                [sys.executable, "-m", "bridge", "run", "--config", str(config)], stderr=out, cwd=work
            )
        second_log = work / "second.log"
        wait_for(lambda: "started at" in second_log.read_text(), 60, "the second bridge to position its shard")
        # both bridges read this change; only the second may write it
        dynamodb.put_item(TableName="Phones", Item={"Company": {"S": "Nokia"}, "Model": {"S": "3310"}})
        assert first.wait(timeout=60) == 1, log.read_text()
        wait_for(lambda: b"Nokia" in {r.key for r in read_topic(kafka_bootstrap, topic, committed=True)}, 60, "Nokia")
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=60)
    text = log.read_text()
    assert "fenced" in text and "Traceback" not in text, text
    ids = event_ids(kafka_bootstrap, topic)
    assert len(ids) == PHONES_CHANGES + 1 and len(set(ids)) == len(ids), "no change twice for read_committed"
