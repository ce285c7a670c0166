"""The README's "Local debugging session" works as written: each `$` command of its console block runs in a
shell against the test services, and prints exactly the lines shown (the checkpoint row aside, whose stream
label, shard id and sequence number depend on the stack). Only `docker compose up -d` is skipped: the test
session's moto server and Kafka broker stand in for it, through `DYNAMODB_ENDPOINT` and `KAFKA_BROKERS`.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.errors import UnknownTopicOrPartitionError

ROOT = Path(__file__).resolve().parents[2]


def session_steps() -> list[tuple[str, list[str]]]:
    """(command, expected stdout lines) of the console block under "## Local debugging session"."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Local debugging session", 1)[1]
    block = re.search(r"```console\n(.*?)```", section, re.S).group(1)
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    return steps


def _delete_topic(bootstrap: str, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics([topic])
    except UnknownTopicOrPartitionError:
        pass
    finally:
        admin.close()


def test_readme_debugging_session_prints_what_the_readme_shows(dynamodb, moto_endpoint, kafka_bootstrap, tmp_path):
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):  # an external broker may hold an earlier run's records
        _delete_topic(kafka_bootstrap, "dynamodb.Phones")
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "config").symlink_to(ROOT / "config")
    env = {**os.environ, "DYNAMODB_ENDPOINT": moto_endpoint, "KAFKA_BROKERS": kafka_bootstrap}
    steps = session_steps()
    assert [command.split()[0] for command, _ in steps][:1] == ["docker"]
    for command, expected in steps[1:]:
        result = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        printed = result.stdout.splitlines()
        if " checkpoints " in command:
            assert printed[0].split() == expected[0].split()  # column widths follow the cells
            assert len(printed) == 2 and printed[1].split()[0] == "Phones" and printed[1].split()[-1] == "no"
            assert re.fullmatch(r"\d+", printed[1].split()[3])
        else:
            assert printed == expected, command
