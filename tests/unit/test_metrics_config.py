"""The `metrics:` config section: off by default, validated like every other section."""

from __future__ import annotations

import re

import pytest

from bridge.config import parse_config
from bridge.errors import ConfigError

BASE = "tables: [{name: Orders}]\nsinks: [{type: stdout}]\n"


def test_metrics_server_is_off_by_default_and_warns_at_6_hours():
    metrics = parse_config(BASE).metrics
    assert metrics.port is None and metrics.retention_warning_hours == 6.0


def test_metrics_section_is_read():
    metrics = parse_config(BASE + "metrics: {port: 9464, host: 127.0.0.1, retention_warning_hours: 2.5}\n").metrics
    assert (metrics.port, metrics.host, metrics.retention_warning_hours) == (9464, "127.0.0.1", 2.5)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("metrics: {port: 70000}", "metrics.port: expected a port number up to 65535, got 70000"),
        ("metrics: {retention_warning_hours: 30}", "metrics.retention_warning_hours: expected at most 24"),
        ("metrics: {prot: 9464}", "metrics.prot: unknown key (did you mean 'port'?)"),
    ],
)
def test_bad_metrics_settings_name_the_field(section, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(BASE + section + "\n", "bridge.yaml")
