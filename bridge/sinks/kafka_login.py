"""Asking Kafka brokers whether they refuse a SASL login, on a connection of the bridge's own.

kafka-python cannot tell a refused login from a broker that is down (see `login_refusal`); the Kafka client
code asks this module when a SASL client could not connect, and turns a refusal into a `FatalError`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from typing import Any

from kafka import errors as kafka_errors
from kafka.errors import KafkaConnectionError, SaslAuthenticationFailedError
from kafka.net.sasl import get_sasl_mechanism
from kafka.protocol.broker_version_data import BrokerVersionData
from kafka.protocol.metadata import ApiVersionsRequest
from kafka.protocol.parser import KafkaProtocol
from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest

log = logging.getLogger(__name__)
LOGIN_CHECK_TIMEOUT_S = 5.0  # longest wait for the brokers' answer to the SASL login check, all of them together


def login_refusal(options: dict[str, Any]) -> SaslAuthenticationFailedError | None:
    """The brokers' refusal of the SASL login of kafka-python client `options`, asked on a connection of its
    own; None when a broker accepted the login or none could tell within `LOGIN_CHECK_TIMEOUT_S`.

    Asked when a kafka-python client could not connect, because kafka-python cannot tell: it retries a refused
    login until its bootstrap times out, then raises the same `KafkaTimeoutError` as for a broker that is down.
    Often it never even sees the refusal: a broker sends it just before closing the connection (after
    `connection.failed.authentication.delay.ms`), and when both arrive in one read, kafka-python 3.0's
    transport drops the bytes read and reports "socket disconnected". Here a response is read to its end
    before the close counts.
    """
    deadline = time.monotonic() + LOGIN_CHECK_TIMEOUT_S
    for server in options["bootstrap_servers"]:
        host, _, port = server.rpartition(":")
        try:
            _log_in(host.strip("[]"), int(port), options, deadline)
            return None
        except SaslAuthenticationFailedError as refusal:
            return refusal
        except Exception as error:  # this broker cannot tell (down, TLS, token, a mechanism's own error): ask the next
            log.debug("SASL login check at %s gave no answer: %r", server, error)
    return None


def _log_in(host: str, port: int, options: dict[str, Any], deadline: float) -> None:
    """Log in at `host:port` as kafka-python does (ApiVersions, SaslHandshake v1, SaslAuthenticate rounds);
    returns when the broker did not refuse, raises `SaslAuthenticationFailedError` when it did."""
    with contextlib.closing(_broker_socket(host, port, options, deadline)) as sock:
        protocol = KafkaProtocol(client_id=options["client_id"])

        def ask(request: Any) -> Any:
            protocol.send_request(request)
            sock.settimeout(_remaining(deadline))
            sock.sendall(protocol.send_bytes())
            while True:
                sock.settimeout(_remaining(deadline))
                data = sock.recv(65536)
                if not data:
                    raise KafkaConnectionError("the broker closed the connection before it answered")
                responses = protocol.receive_bytes(data)
                if responses:
                    return _checked(responses[0][1])

        listed = ask(ApiVersionsRequest(version=0)).api_keys
        versions = BrokerVersionData(api_versions={api.api_key: (api.min_version, api.max_version) for api in listed})
        handshake = SaslHandshakeRequest(mechanism=options["sasl_mechanism"], max_version=1)
        handshake.API_VERSION = versions.api_version(handshake, min_version=1)
        ask(handshake)
        mechanism = get_sasl_mechanism(options["sasl_mechanism"])(host=host, **options)
        while not mechanism.is_done():
            request = SaslAuthenticateRequest(auth_bytes=mechanism.auth_bytes())
            request.API_VERSION = versions.api_version(request)
            mechanism.receive(ask(request).auth_bytes)


def _checked(response: Any) -> Any:
    """`response`, or its error raised (with the broker's message when it gave one)."""
    if not response.error_code:
        return response
    error = kafka_errors.for_code(response.error_code)
    message = getattr(response, "error_message", None)
    raise error(message) if message else error()


def _broker_socket(host: str, port: int, options: dict[str, Any], deadline: float) -> socket.socket:
    """A blocking connection to `host:port`, with TLS for SASL_SSL as kafka-python sets it up."""
    sock = socket.create_connection((host, port), timeout=_remaining(deadline))
    if options["security_protocol"] != "SASL_SSL":
        return sock
    try:
        context = ssl.create_default_context(cafile=options["ssl_cafile"])
        context.check_hostname = options["ssl_check_hostname"]
        if options["ssl_certfile"]:
            context.load_cert_chain(options["ssl_certfile"], options["ssl_keyfile"], options["ssl_password"])
        return context.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


def _remaining(deadline: float) -> float:
    """Seconds left until `deadline`; `TimeoutError` once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("no answer within the login check's time")
    return left
