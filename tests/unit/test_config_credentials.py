"""source credentials: `profile`, and `role_arn` with `external_id`, `session_name` and `duration_s`, checked
against STS's rules when the config is read; an unknown profile is a config error naming it."""

from __future__ import annotations

import pytest

from bridge.config import parse_config
from bridge.errors import ConfigError
from bridge.source.clients import aws_session

ROLE = "arn:aws:iam::123456789012:role/cdc-reader"


def _config(**source):
    lines = "".join(f"  {key}: {value}\n" for key, value in source.items())
    return parse_config(f"source:\n{lines}tables: [{{name: T}}]\nsinks: [{{type: stdout}}]\n", "bridge.yaml")


def test_the_default_chain_is_the_default():
    source = _config().source
    assert (source.profile, source.role_arn, source.external_id, source.session_name, source.duration_s) == (
        None,
        None,
        None,
        None,
        None,
    )


def test_a_role_with_every_option_is_read():
    source = _config(
        profile="ops",
        role_arn="arn:aws-us-gov:iam::123456789012:role/teams/data/cdc-reader",
        external_id="tenant:7/a=b",
        session_name="bridge@host-1",
        duration_s=43200,
    ).source
    assert source.role_arn == "arn:aws-us-gov:iam::123456789012:role/teams/data/cdc-reader"
    assert (source.profile, source.external_id, source.session_name, source.duration_s) == (
        "ops",
        "tenant:7/a=b",
        "bridge@host-1",
        43200,
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({"role_arn": "cdc-reader"}, "line 2: source.role_arn: expected an IAM role ARN"),
        ({"role_arn": "arn:aws:iam::12345:role/r"}, "source.role_arn: expected an IAM role ARN"),  # not 12 digits
        ({"role_arn": "arn:aws:iam::123456789012:user/r"}, "source.role_arn: expected an IAM role ARN"),
        ({"role_arn": "arn:aws:iam::123456789012:role/r\u00e9le"}, "source.role_arn: expected an IAM role ARN"),
        ({"role_arn": ROLE, "duration_s": 899}, "source.duration_s: expected a whole number >= 900 and <= 43200"),
        ({"role_arn": ROLE, "duration_s": 43201}, "source.duration_s: expected a whole number >= 900 and <= 43200"),
        ({"role_arn": ROLE, "session_name": "'my bridge'"}, "source.session_name: expected an STS session name"),
        ({"role_arn": ROLE, "session_name": "x"}, "source.session_name: expected an STS session name: 2-64"),
        ({"role_arn": ROLE, "session_name": "s" * 65}, "source.session_name: expected an STS session name"),
        ({"role_arn": ROLE, "external_id": "'a b'"}, "source.external_id: expected an STS external id"),
        ({"profile": "'my profile'"}, "source.profile: expected an AWS config profile name"),
        ({"external_id": "tenant-7"}, "source.external_id: only applies with `source.role_arn`"),
        ({"session_name": "bridge"}, "source.session_name: only applies with `source.role_arn`"),
        ({"duration_s": 900}, "source.duration_s: only applies with `source.role_arn`"),
    ],
)
def test_credential_settings_outside_the_rules_of_sts_are_config_errors(source, expected):
    with pytest.raises(ConfigError) as error:
        _config(**source)
    assert expected in str(error.value)
    assert str(error.value).startswith("bridge.yaml")


def test_a_named_profile_of_the_aws_config_signs_the_calls(tmp_path, monkeypatch):
    aws_config = tmp_path / "config"
    aws_config.write_text(
        "[profile reader]\nregion = eu-west-1\naws_access_key_id = AKIAREADER\naws_secret_access_key = s3cret\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_config))
    session, extra = aws_session(_config(profile="reader").source)
    assert session.profile_name == "reader" and extra == {}
    assert session.get_credentials().access_key == "AKIAREADER"


def test_an_unknown_profile_is_a_config_error_naming_it_and_the_known_ones(tmp_path, monkeypatch):
    aws_config = tmp_path / "config"
    aws_config.write_text("[profile reader]\nregion = eu-west-1\n[default]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_config))
    with pytest.raises(ConfigError) as error:
        aws_session(_config(profile="writer").source)
    message = str(error.value)
    assert message.startswith("source.profile: profile 'writer' is not in the AWS config files")
    assert message.endswith("known profiles: reader, default") and "\n" not in message


def test_an_unknown_aws_profile_variable_is_a_config_error_naming_the_variable(tmp_path, monkeypatch):
    aws_config = tmp_path / "config"
    aws_config.write_text("[profile reader]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_config))
    monkeypatch.setenv("AWS_PROFILE", "writer")
    with pytest.raises(ConfigError) as error:
        aws_session(_config().source)
    assert str(error.value).startswith("the AWS_PROFILE environment variable: profile 'writer' is not in the AWS")
