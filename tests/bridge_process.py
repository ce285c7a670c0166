"""Running the real `cdc-bridge` command in a subprocess, as users do."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import yaml

from tests.polling import TimedOut, wait_for

T = TypeVar("T")


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


class Bridge:
    """`cdc-bridge run` in the background; stderr collected for assertions."""

    def __init__(self, config: Path, *extra: str, stderr=None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bridge", *extra, "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr if stderr is not None else subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        if stderr is None:
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        if hasattr(self, "reader"):
            self.reader.join(timeout=5)
        return code

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def expect(self, condition: Callable[[], T], what: str, timeout: float = 90) -> T:
        """`condition`'s value once it holds (`wait_for`, every 0.2 s); fails at once if the bridge exits before,
        and after `timeout` s, both times with the bridge's stderr."""

        def while_running() -> T:
            result = condition()
            if not result and self.process.poll() is not None:
                pytest.fail(f"bridge exited with {self.process.returncode} before {what}:\n{self.stderr}")
            return result

        try:
            return wait_for(while_running, timeout, what, interval=0.2)
        except TimedOut as error:
            raise AssertionError(f"{error}; bridge stderr:\n{self.stderr}") from None
