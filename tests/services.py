"""Real local services for tests: a single-node KRaft Kafka broker and a moto server, on free loopback ports.

The Kafka jars come from Maven Central (`make kafka-jars`, into stack/.kafka/lib). Each service runs in
its own process group and is stopped (and killed, if it must be) by `stop()`; on Linux it also gets SIGTERM
when the process that started it dies without stopping it (a crashed or killed test run leaves nothing).
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

from tests.polling import TimedOut, wait_for

ROOT = Path(__file__).resolve().parents[1]
KAFKA_LIB = ROOT / "stack" / ".kafka" / "lib"
TEMPLATE = ROOT / "stack" / "server.properties.template"


class ServiceError(RuntimeError):
    """A local service could not be started."""


def _die_with_parent() -> None:
    """In the child before exec: ask Linux for SIGTERM when the parent dies (elsewhere: nothing)."""
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)


def _spawn(command: list[str], log_path: Path) -> subprocess.Popen:
    """A service process in its own session, output appended to `log_path`."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float, log: Path) -> None:
    def port_open() -> bool:
        if process.poll() is not None:
            raise ServiceError(f"process exited with {process.returncode}; see {log}:\n{_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    try:
        wait_for(port_open, timeout, f"port {port} to open", interval=0.2)
    except TimedOut:
        raise ServiceError(f"port {port} not open after {timeout:.0f} s; see {log}:\n{_tail(log)}") from None


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop(process: subprocess.Popen | None, timeout: float = 20) -> None:
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class KafkaBroker:
    """A real Apache Kafka broker (KRaft, broker + controller in one JVM) in `workdir`.

    `stop()` then `start()` restarts it on the same port with the same log dirs (for fault tests).
    Besides its PLAINTEXT listener (`bootstrap`) it has a SASL_PLAINTEXT one (`sasl_bootstrap`) that accepts
    the PLAIN user `SASL_USER` with `SASL_PASSWORD` (for tests of SASL failures).
    """

    SASL_USER = "bridge"
    SASL_PASSWORD = "bridge-test-secret"

    def __init__(self, workdir: Path, partitions: int = 3) -> None:
        if not any(KAFKA_LIB.glob("kafka_2.13-*.jar")):
            raise ServiceError(f"Kafka jars missing in {KAFKA_LIB}; run `make kafka-jars` (Maven)")
        if shutil.which("java") is None:
            raise ServiceError("java not found on PATH (Kafka needs Java 17+)")
        self.workdir = workdir
        self.port = free_port()
        self.controller_port = free_port()
        self.sasl_port = free_port()
        self.log = workdir / "kafka.log"
        self.config = workdir / "server.properties"
        values = {
            "broker_port": self.port,
            "controller_port": self.controller_port,
            "log_dir": workdir / "data",
            "partitions": partitions,
            "sasl_port": self.sasl_port,
            "sasl_user": self.SASL_USER,
            "sasl_password": self.SASL_PASSWORD,
        }
        self.config.write_text(string.Template(TEMPLATE.read_text()).substitute(values))
        self.process: subprocess.Popen | None = None
        cluster_id = "-"
        while cluster_id.startswith("-"):  # a leading "-" would be read as an option by StorageTool
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        formatted = self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.config))
        if formatted.wait(timeout=120) != 0:
            raise ServiceError(f"formatting Kafka storage failed; see {self.log}:\n{_tail(self.log)}")

    @property
    def version(self) -> str:
        jar = next(KAFKA_LIB.glob("kafka_2.13-*.jar"))
        return jar.stem.removeprefix("kafka_2.13-")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    def _java(self, main: str, *args: str) -> subprocess.Popen:
        command = [
            "java",
            "-Xms128m",
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp",
            f"{KAFKA_LIB}/*",
            main,
            *args,
        ]
        return _spawn(command, self.log)

    def start(self, timeout: float = 90) -> None:
        self.process = self._java("kafka.Kafka", str(self.config))
        _wait_for_port(self.port, self.process, timeout, self.log)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        from kafka import KafkaAdminClient

        errors: list[Exception] = []  # the last one is why the broker is not ready yet

        def answers() -> bool:
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
                admin.list_topics()
                admin.close()
                return True
            except Exception as error:
                if self.process.poll() is not None:
                    raise self._not_ready(error) from error
                errors[:] = [error]
                return False

        try:
            wait_for(answers, timeout, "Kafka to answer", interval=0.5)
        except TimedOut:
            raise self._not_ready(errors[-1]) from errors[-1]

    def _not_ready(self, error: Exception) -> ServiceError:
        return ServiceError(f"Kafka not ready: {error}; see {self.log}:\n{_tail(self.log)}")

    def stop(self) -> None:
        _stop(self.process)
        self.process = None


class MotoServer:
    """A real moto server (DynamoDB + DynamoDB Streams over HTTP) in its own process."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.log = workdir / "moto.log"
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.process = _spawn(command, self.log)
        _wait_for_port(self.port, self.process, timeout, self.log)

    def reset(self) -> None:
        reset(self.endpoint)

    def stop(self) -> None:
        _stop(self.process)
        self.process = None


def reset(endpoint: str) -> None:
    """Forget every table of a moto server (`POST /moto-api/reset`)."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b"")
    urllib.request.urlopen(request, timeout=10).close()
