"""The real `cdc-bridge run` in a subprocess that a test can SIGKILL, SIGTERM and restart.

All runs append to one log file; a process that exits without being told to is recorded, not hidden.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.bridge_process import kafka_config


class BridgeRunner:
    """Starts `python -m bridge run --config CONFIG`, with stderr appended to `log`."""

    def __init__(self, config: Path, log: Path, *, extra_env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log = log
        self.env = {**os.environ, **(extra_env or {})}
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.kills = 0
        self.unexpected_exits: list[int] = []

    def start(self) -> None:
        self.starts += 1
        with open(self.log, "ab") as log:
            log.write(f"===== bridge start #{self.starts} =====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bridge", "--log-level", "INFO", "run", "--config", str(self.config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )

    def kill(self) -> None:
        """SIGKILL: no flush, no checkpoint, no goodbye."""
        if self._note_exit():
            return
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.kills += 1

    def restart_if_exited(self) -> None:
        """Restart a process that exited on its own (recorded in `unexpected_exits`)."""
        if self._note_exit():
            self.start()

    def _note_exit(self) -> bool:
        code = self.process.poll()
        if code is None:
            return False
        self.unexpected_exits.append(code)
        return True

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """Kill whatever still runs (test cleanup)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def logged(self, text: str) -> bool:
        """Whether the log holds `text`; fails at once when the bridge exited before logging it."""
        if text in self.log.read_text():
            return True
        assert self.process.poll() is None, f"the bridge exited before logging {text!r}:\n{self.tail()}"
        return False

    def run_log(self) -> str:
        """The log of the latest start only (what follows its marker)."""
        return self.log.read_text(errors="replace").rpartition(f"===== bridge start #{self.starts} =====\n")[2]

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def bridge_config(
    path: Path,
    moto_endpoint: str,
    kafka_bootstrap: str,
    topic: str,
    *,
    table: dict | None = None,
    sink: dict | None = None,
    checkpoint: dict | None = None,
    **top: object,
) -> Path:
    """A config file for table Faults and one Kafka sink, checkpointed every 0.5 s; `table`, `sink`, `checkpoint`
    and `top` add or override keys."""
    tables = [{"name": "Faults", **(table or {})}]
    checkpoint = {"interval_s": 0.5, **(checkpoint or {})}
    return kafka_config(path, moto_endpoint, kafka_bootstrap, topic, tables, sink=sink, checkpoint=checkpoint, **top)
