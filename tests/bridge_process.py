"""Running the real `cdc-bridge` command in a subprocess, as users do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_bridge(*args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m bridge ARGS`, capturing stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=timeout, env=env
    )
