"""Running the real `cdc-bridge` command in a subprocess, as users do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml


def streaming_only(tables: list) -> list:
    """`tables` with `snapshot: never` where a table says nothing of snapshots: the tests of the stream write
    their changes before the bridge starts and expect them as changes, not as a snapshot's rows."""
    return [{"snapshot": "never", **table} if isinstance(table, dict) else table for table in tables]


def write_config(path: Path, data: dict) -> Path:
    """Write `data` as the YAML config at `path` (tables stream only unless they say otherwise)."""
    if isinstance(data.get("tables"), list):
        data = {**data, "tables": streaming_only(data["tables"])}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def kafka_config(
    path: Path,
    moto_endpoint: str,
    kafka_bootstrap: str,
    topic: str,
    tables: list[dict],
    *,
    sink: dict | None = None,
    checkpoint: dict | None = None,
    **top: object,
) -> Path:
    """Write a config at `path` for `tables` on the moto server and one Kafka sink (topic template `topic`, created
    with 3 partitions), checkpoints beside it; `sink`, `checkpoint` and `top` add or override keys."""
    data = {
        "source": {"endpoint_url": moto_endpoint, "region": "us-east-1", "poll_interval_ms": 50},
        "tables": tables,
        "sinks": [
            {
                "type": "kafka",
                "bootstrap_servers": kafka_bootstrap,
                "topic": topic,
                "create_topics": True,
                "partitions": 3,
                **(sink or {}),
            }
        ],
        "checkpoint": {"path": str(path.parent / "checkpoints.json"), **(checkpoint or {})},
        **top,
    }
    return write_config(path, data)


def run_bridge(
    *args: str, timeout: float = 120, env: dict | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """`python -m bridge ARGS` (in `cwd`, else here), capturing stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
    )
