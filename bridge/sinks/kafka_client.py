"""Connecting to Kafka from a `KafkaConfig`: TLS and SASL options, the safe producer, topic checks.

Shared by the Kafka sink and the Kafka dead-letter destination, so both connect the same way.
Every failure to reach a broker is a `RetriableError` (the caller backs off); a SASL login the broker refuses
is a `FatalError` (retrying the same credentials cannot help); a topic that is missing while `create_topics`
is off is a `ConfigError`, raised at startup rather than at the first record.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer, codec
from kafka.admin import NewTopic
from kafka.errors import (
    KafkaConfigurationError,
    KafkaError,
    SaslAuthenticationFailedError,
    TopicAlreadyExistsError,
)
from kafka.net.sasl.oauth import AbstractTokenProvider

from bridge.errors import ConfigError, FatalError, RetriableError
from bridge.secret import reveal
from bridge.sinks.kafka_login import login_refusal

log = logging.getLogger(__name__)

# Records wait in the producer until the broker takes them: a broker that is away for an hour delays
# them, it does not fail them (the pipeline holds the checkpoint and stops reading meanwhile).
DELIVERY_TIMEOUT_MS = 7 * 24 * 3600 * 1000
BOOTSTRAP_TIMEOUT_MS = 5000  # one connection attempt at startup; the pipeline retries with backoff
RECONNECT_BACKOFF_MAX_MS = 5000  # a broker that is back is used again within 5 s (kafka-python's default: 30 s)
USER_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")  # SASL mechanisms with a username and password
CLOSE_TIMEOUT_S = 1.0  # longest wait for acknowledgements when a producer closes; then it gives up on them


class StaticTokenProvider(AbstractTokenProvider):
    """OAUTHBEARER with a token taken from the config (typically `${KAFKA_OAUTH_TOKEN}`)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self) -> str:
        return self._token

    def __repr__(self) -> str:
        return "StaticTokenProvider(***)"


def servers(config: Any) -> list[str]:
    """The `host:port` list of `bootstrap_servers`."""
    return [s.strip() for s in config.bootstrap_servers.split(",") if s.strip()]


def client_options(config: Any) -> dict[str, Any]:
    """Connection options (brokers, TLS, SASL) for kafka-python clients; secrets revealed only here."""
    options: dict[str, Any] = {
        "bootstrap_servers": servers(config),
        "client_id": config.client_id,
        "security_protocol": config.security_protocol,
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
    }
    if config.security_protocol in ("SSL", "SASL_SSL"):
        options.update(
            ssl_cafile=config.ssl_cafile,
            ssl_certfile=config.ssl_certfile,
            ssl_keyfile=config.ssl_keyfile,
            ssl_password=reveal(config.ssl_password),
            ssl_check_hostname=config.ssl_check_hostname,
        )
    if config.security_protocol.startswith("SASL_"):
        options["sasl_mechanism"] = config.sasl_mechanism
        if config.sasl_mechanism in USER_MECHANISMS:
            options.update(sasl_plain_username=config.sasl_username, sasl_plain_password=reveal(config.sasl_password))
        elif config.sasl_mechanism == "OAUTHBEARER":
            options["sasl_oauth_token_provider"] = StaticTokenProvider(reveal(config.sasl_oauth_token) or "")
    return options


def codec_available(compression: str) -> bool:
    """Whether kafka-python can compress with `compression` here (snappy, lz4, zstd need extra packages)."""
    check = {"snappy": codec.has_snappy, "lz4": codec.has_lz4, "zstd": codec.has_zstd}.get(compression)
    return check() if check else True


TLS_FILES = {"ssl_cafile": "CA bundle", "ssl_certfile": "client certificate", "ssl_keyfile": "client key"}


def _tls_file_problem(path: str, what: str) -> str | None:
    """Why the TLS file `path` cannot be used, or None: found at start, not as a broker that never answers."""
    if not os.path.exists(path):
        return f"{what} {path} does not exist (a relative path is relative to the working directory)"
    if not os.path.isfile(path):
        return f"{what} {path} is not a file"
    try:
        with open(path, "rb"):
            return None
    except OSError as error:
        return f"{what} {path} cannot be read: {error.strerror or error}"


def check_settings(config: Any, available=codec_available) -> list[tuple[str, str]]:
    """Problems of the brokers, compression, TLS files and SASL settings as (field, message) pairs; empty when
    consistent."""
    problems = []
    if not servers(config):
        problems.append(("bootstrap_servers", "expected at least one `host:port`"))
    if config.security_protocol in ("SSL", "SASL_SSL"):
        for name, what in TLS_FILES.items():
            path = getattr(config, name)
            problem = _tls_file_problem(path, what) if path else None
            if problem:
                problems.append((name, problem))
    if config.compression != "none" and not available(config.compression):
        problems.append(
            (
                "compression",
                f"{config.compression} needs its codec package: pip install 'cdc-bridge[{config.compression}]'",
            )
        )
    sasl = config.security_protocol.startswith("SASL_")
    if sasl and config.sasl_mechanism is None:
        problems.append(("sasl_mechanism", f"`security_protocol: {config.security_protocol}` needs a mechanism"))
    if not sasl and config.sasl_mechanism is not None:
        problems.append(("security_protocol", "a `sasl_mechanism` needs SASL_PLAINTEXT or SASL_SSL"))
    needs_user = sasl and config.sasl_mechanism in USER_MECHANISMS
    if needs_user and (not config.sasl_username or config.sasl_password is None):
        problems.append(("sasl_username", f"{config.sasl_mechanism} needs sasl_username and sasl_password"))
    if sasl and config.sasl_mechanism == "OAUTHBEARER" and config.sasl_oauth_token is None:
        problems.append(("sasl_oauth_token", "OAUTHBEARER needs sasl_oauth_token (e.g. ${KAFKA_OAUTH_TOKEN})"))
    if config.sasl_mechanism == "AWS_MSK_IAM" and config.security_protocol != "SASL_SSL":
        problems.append(("security_protocol", "AWS_MSK_IAM needs `security_protocol: SASL_SSL`"))
    return problems


def producer_options(config: Any) -> dict[str, Any]:
    """Options of the idempotent, ordered producer the design asks for (acks=all, <= 5 in flight)."""
    return {
        **client_options(config),
        "acks": "all",
        "enable_idempotence": True,
        "max_in_flight_requests_per_connection": 5,
        "delivery_timeout_ms": DELIVERY_TIMEOUT_MS,
        "linger_ms": config.linger_ms,
        "batch_size": config.batch_size,
        "max_request_size": config.max_request_size,
        "compression_type": None if config.compression == "none" else config.compression,
        # Topics are created by the admin client at startup (`create_topics`), never by the broker because the
        # producer asked for metadata: a topic deleted mid-run must stop the bridge, not come back empty.
        "allow_auto_create_topics": False,
    }


@contextlib.contextmanager
def _connecting(config: Any, what: str) -> Iterator[None]:
    """Turns the failures of creating a kafka-python client (`what`) into the bridge's errors: unusable
    settings are a `ConfigError`, a refused SASL login a `FatalError`, no broker answering a `RetriableError`."""
    try:
        yield
    except (KafkaConfigurationError, AssertionError, ValueError) as error:
        raise ConfigError(f"kafka sink: unusable {what} settings: {error}") from None
    except KafkaError as error:
        sasl = config.security_protocol.startswith("SASL_")
        refusal = login_refusal(client_options(config)) if sasl else None
        if refusal is not None:
            raise FatalError(_refused_login(config, refusal)) from None
        raise RetriableError(f"no Kafka broker reachable at {config.bootstrap_servers}: {error}") from None


def _refused_login(config: Any, refusal: SaslAuthenticationFailedError) -> str:
    """What to say when the brokers refuse the configured SASL login (never the password or token)."""
    user = f" of user {config.sasl_username!r}" if config.sasl_mechanism in USER_MECHANISMS else ""
    reason = refusal.args[0] if refusal.args else type(refusal).__name__
    return (
        f"Kafka at {config.bootstrap_servers} refused the SASL {config.sasl_mechanism} login{user} "
        f"({config.security_protocol}): {reason}. Check sasl_username / sasl_password (or the token) of the "
        "kafka sink and the user's credentials on the brokers"
    )


def make_producer(config: Any, **overrides: Any) -> KafkaProducer:
    """A connected producer (`overrides` replace producer options, e.g. a `transactional_id`); `RetriableError`
    when no broker answers, `FatalError` when the brokers refuse the SASL login, `ConfigError` for unusable
    settings."""
    options = {**producer_options(config), **overrides}
    with _connecting(config, "producer"):
        producer = KafkaProducer(**options)
    # kafka-python 3.0 does not hand `allow_auto_create_topics` on to the metadata its producer requests (it
    # always asks the broker to create unknown topics): set it there too.
    metadata_config = getattr(getattr(producer, "_metadata", None), "config", None)
    if isinstance(metadata_config, dict):
        metadata_config["allow_auto_create_topics"] = options["allow_auto_create_topics"]
    return producer


def close_producer(producer: KafkaProducer, unacknowledged: Callable[[], int]) -> int:
    """Close `producer` within about `CLOSE_TIMEOUT_S`, even when no broker answers; returns how many records
    were given up on (`unacknowledged()` once the wait is over), 0 when everything sent was acknowledged.

    kafka-python 3.0's `close(timeout)` starts with `flush(timeout)` and, when that times out, raises without
    closing anything: its sender thread would go on retrying for `delivery_timeout_ms` (a week). Here it is
    then closed by force, as `close` itself does after a graceful close timed out: the records still waiting
    fail. The log lines kafka-python writes about records failed on purpose are held back; the caller reports
    the count in one line.
    """
    try:
        producer.close(timeout=CLOSE_TIMEOUT_S)
        return 0
    except KafkaError:
        pass
    given_up = unacknowledged()
    with _kafka_logs_held_back():
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            sender.force_close()
            sender.join(CLOSE_TIMEOUT_S)
        with contextlib.suppress(KafkaError):
            producer.close(timeout=0)  # every record has failed now: this only marks the producer closed
    return given_up


@contextlib.contextmanager
def _kafka_logs_held_back() -> Iterator[None]:
    """kafka-python logs nothing meanwhile: for steps whose failures are expected and reported by the bridge."""
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        kafka_log.setLevel(level)


def missing_topics(config: Any, topics: Iterable[str], timeout: float) -> list[str] | None:
    """Which of `topics` the brokers do not have, asked within about `timeout` seconds; None when no broker
    answered in time (then nothing is known, and kafka-python's log lines about it are held back)."""
    wait_ms = max(100, int(timeout * 1000))
    options = {**client_options(config), "bootstrap_timeout_ms": wait_ms, "request_timeout_ms": wait_ms}
    with _kafka_logs_held_back():
        try:
            admin = KafkaAdminClient(**options)
        except KafkaError:
            return None
        try:
            return sorted(set(topics) - set(admin.list_topics()))
        except KafkaError:
            return None
        finally:
            admin.close()


def ensure_topics(config: Any, topics: Iterable[str]) -> None:
    """Create missing `topics` when `create_topics` is on; else a `ConfigError` naming them."""
    with _connecting(config, "connection"):
        admin = KafkaAdminClient(**client_options(config))
    try:
        missing = sorted(set(topics) - set(admin.list_topics()))
        if missing and not config.create_topics:
            raise ConfigError(
                f"Kafka topic(s) {', '.join(missing)} do not exist at {config.bootstrap_servers}; "
                "create them or set `create_topics: true` on the kafka sink"
            )
        if missing:
            new = [NewTopic(t, config.partitions, config.replication_factor) for t in missing]
            with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile by another bridge
                admin.create_topics(new)
            log.info("created Kafka topics %s", ", ".join(missing))
    except KafkaError as error:
        raise RetriableError(f"Kafka broker at {config.bootstrap_servers} did not answer: {error}") from None
    finally:
        admin.close()
