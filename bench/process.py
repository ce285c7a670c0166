"""Child processes of the benchmark: run one and measure its wall time, CPU time and peak RSS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def environment() -> dict[str, str]:
    """The environment of benchmark children: dummy AWS credentials, the repository on `PYTHONPATH`, and
    bytecode kept (`__pycache__`, git-ignored), as an installed bridge has it, even where the shell says
    `PYTHONDONTWRITEBYTECODE` (every start would compile the bridge's modules again)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("AWS_ACCESS_KEY_ID", "bench")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    env["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@dataclass(frozen=True)
class Measured:
    """What one child process did and cost."""

    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    stdout: str
    stderr: str


def measure(args: list[str], timeout: float = 600) -> Measured:
    """Run `args` to its end; wall time from start to exit, CPU and peak RSS from the kernel's rusage."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(args, stdout=out, stderr=err, env=environment(), cwd=ROOT, start_new_session=True)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                _, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(
            process.returncode,
            wall,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss / 1024,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


class Service:
    """A long-running child (the local AWS endpoint) that prints `READY <port>` when it serves."""

    def __init__(self, args: list[str], timeout: float = 300) -> None:
        self.log = tempfile.TemporaryFile()  # noqa: SIM115  # closed by stop()
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self.log, env=environment(), cwd=ROOT, start_new_session=True
        )
        line = self.process.stdout.readline().decode()
        if not line.startswith("READY "):
            self.stop()
            self.log.seek(0)
            raise RuntimeError(f"{' '.join(args)} did not start: {line!r}\n{self.log.read().decode()[-2000:]}")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def python(*args: str) -> list[str]:
    """A command running this interpreter."""
    return [sys.executable, *args]
