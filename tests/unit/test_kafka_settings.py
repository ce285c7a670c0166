"""Kafka connection settings from the config: secrets masked, TLS/SASL mapped, inconsistencies reported."""

from __future__ import annotations

import dataclasses

import pytest

from bridge.config import parse_config
from bridge.errors import ConfigError
from bridge.sinks.kafka_client import check_settings, client_options, producer_options

YAML = """
tables: [{name: T}]
sinks:
  - type: kafka
    bootstrap_servers: "b1:9096, b2:9096"
    security_protocol: SASL_SSL
    sasl_mechanism: SCRAM-SHA-512
    sasl_username: bridge
    sasl_password: ${KAFKA_PASSWORD}
    ssl_cafile: ${KAFKA_CA}
"""


@pytest.fixture(autouse=True)
def ca_file(tmp_path, monkeypatch):
    """The CA bundle `ssl_cafile` names (a TLS file that does not exist is a config error)."""
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("KAFKA_CA", str(path))
    return path


def _sink(text: str, monkeypatch):
    monkeypatch.setenv("KAFKA_PASSWORD", "hunter2-secret")
    return parse_config(text).sinks[0].settings


def test_secret_from_env_is_masked_in_repr_and_str_of_the_config(monkeypatch):
    monkeypatch.setenv("KAFKA_PASSWORD", "hunter2-secret")
    config = parse_config(YAML)
    assert "hunter2-secret" not in repr(config) and "hunter2-secret" not in str(config)
    assert "sasl_password=***" in repr(config.sinks[0].settings)


def test_scram_over_tls_reaches_the_client_with_the_revealed_password(monkeypatch, ca_file):
    options = client_options(_sink(YAML, monkeypatch))
    assert options["bootstrap_servers"] == ["b1:9096", "b2:9096"]
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "bridge" and options["sasl_plain_password"] == "hunter2-secret"
    assert options["ssl_cafile"] == str(ca_file)


def test_producer_is_idempotent_with_acks_all_and_at_most_5_in_flight(monkeypatch):
    options = producer_options(_sink(YAML, monkeypatch))
    assert options["acks"] == "all" and options["enable_idempotence"] is True
    assert options["max_in_flight_requests_per_connection"] == 5
    assert options["compression_type"] is None


def test_oauthbearer_token_is_served_by_a_provider_that_does_not_print_it(monkeypatch):
    text = YAML.replace("sasl_mechanism: SCRAM-SHA-512", "sasl_mechanism: OAUTHBEARER").replace(
        "sasl_password:", "sasl_oauth_token:"
    )
    provider = client_options(_sink(text, monkeypatch))["sasl_oauth_token_provider"]
    assert provider.token() == "hunter2-secret" and "hunter2" not in repr(provider)


def test_inconsistent_security_settings_are_config_errors_naming_the_field(monkeypatch):
    with pytest.raises(ConfigError, match=r"sinks\[0\]\.sasl_mechanism: `security_protocol: SASL_SSL` needs"):
        _sink(YAML.replace("    sasl_mechanism: SCRAM-SHA-512\n", ""), monkeypatch)
    msk_plaintext = dataclasses.replace(
        _sink(YAML, monkeypatch), security_protocol="SASL_PLAINTEXT", sasl_mechanism="AWS_MSK_IAM"
    )
    assert ("security_protocol", "AWS_MSK_IAM needs `security_protocol: SASL_SSL`") in check_settings(msk_plaintext)


def test_a_compression_codec_that_is_not_installed_names_the_extra(monkeypatch):
    settings = dataclasses.replace(_sink(YAML, monkeypatch), compression="zstd")
    problems = check_settings(settings, available=lambda codec: codec != "zstd")
    assert problems == [("compression", "zstd needs its codec package: pip install 'cdc-bridge[zstd]'")]
    assert check_settings(settings, available=lambda codec: True) == []


def test_a_secret_that_is_not_a_string_is_refused_without_echoing_it():
    with pytest.raises(ConfigError) as caught:
        parse_config(YAML.replace("${KAFKA_PASSWORD}", "987654321"))
    assert "sinks[0].sasl_password: expected a string (secret" in str(caught.value)
    assert "987654321" not in str(caught.value)
