"""The AWS credentials the bridge runs with: the default chain, a named profile, or an assumed role.

- nothing configured: boto3's default chain (environment, web identity / IRSA, instance or task role);
- `source.profile`: that profile of the AWS config files; an unknown one is a `ConfigError`;
- `source.role_arn`: the role is assumed with STS from the credentials above, at `source.endpoint_url` when
  set (a local stack) else the regional STS endpoint, once at start (a role that cannot be assumed stops the
  bridge there). The assumed-role credentials are botocore's refreshable credentials: new ones are fetched
  when a quarter of `duration_s` is left, and every call waits for them once only a sixth is left, so a
  long-running bridge never signs with expired credentials.

A failed AssumeRole goes through the one classifier (`aws_errors.classify`): access denied or an expired
token is a `ConfigError` naming the role; other failures propagate as botocore raised them, to be classified
by the call that needed the credentials (a throttled STS is retried like a throttled DynamoDB).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

import boto3
import botocore.session
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    Credentials,
    RefreshableCredentials,
)
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

from bridge.config import DEFAULT_ROLE_DURATION_S, DEFAULT_SESSION_NAME, SourceConfig
from bridge.errors import ConfigError
from bridge.source.aws_errors import NO_CREDENTIALS, classify_at_start, error_code

Clock = Callable[[], datetime.datetime]  # the current time, timezone-aware (the seam tests move)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Identity:
    """Who the bridge's calls run as (STS GetCallerIdentity): no secret, only names."""

    account: str
    arn: str


def base_session(source: SourceConfig) -> boto3.Session:
    """The session of `source.profile`, or of the default chain; an unknown profile is a `ConfigError`."""
    try:
        return boto3.Session(profile_name=source.profile)
    except ProfileNotFound as error:
        known = ", ".join(botocore.session.Session().available_profiles) or "none"
        where = "source.profile" if source.profile is not None else "the AWS_PROFILE environment variable"
        raise ConfigError(
            f"{where}: profile {error.kwargs.get('profile', source.profile)!r} is not in the AWS config files "
            "(~/.aws/config and ~/.aws/credentials, or AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE); known "
            f"profiles: {known}"
        ) from None


def assumed_role_session(
    source: SourceConfig, base: boto3.Session, sts_options: dict, clock: Clock = _now
) -> boto3.Session:
    """A session whose credentials are `source.role_arn` assumed from `base`'s, refreshed before they expire.

    The first AssumeRole is made here, so a role that cannot be assumed stops the bridge at start with one
    line. `sts_options` are the options of the STS client (region, endpoint, timeouts); `clock` tells the
    refreshable credentials the time.
    """
    duration = source.duration_s or DEFAULT_ROLE_DURATION_S
    extra_args = {"RoleSessionName": source.session_name or DEFAULT_SESSION_NAME, "DurationSeconds": duration}
    if source.external_id is not None:
        extra_args["ExternalId"] = source.external_id
    refresh_at, block_at = duration // 4, duration // 6  # seconds left; 900 and 600 (botocore's) for an hour
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=lambda service, **keys: base.client(service, **sts_options, **keys),
        source_credentials=_source_credentials(source, base),
        role_arn=source.role_arn,
        extra_args=extra_args,
        cache=_NoCache(),  # when to fetch is the refreshable credentials' decision, by their clock
    )

    def fetch() -> dict:
        try:
            return fetcher.fetch_credentials()
        except (ClientError, BotoCoreError) as error:
            problem = _assume_role_problem(error, source)
            if problem is not None:
                raise problem from None
            raise

    try:
        first = fetch()
    except (ClientError, BotoCoreError) as error:  # not a config problem: throttled, unreachable, ...
        raise classify_at_start(error, f"assuming role {source.role_arn} (source.role_arn)") from error
    credentials = RefreshableCredentials(
        access_key=first["access_key"],
        secret_key=first["secret_key"],
        token=first["token"],
        expiry_time=datetime.datetime.fromisoformat(first["expiry_time"]),
        refresh_using=fetch,
        method="assume-role",
        time_fetcher=clock,
        advisory_timeout=refresh_at,  # botocore's fixed 15 and 10 minutes would refresh credentials
        mandatory_timeout=block_at,  # of 15 minutes on every call
    )
    session = botocore.session.Session()
    session.register_component("credential_provider", CredentialResolver([_Provider(credentials)]))
    return boto3.Session(botocore_session=session, region_name=source.region)


def _source_credentials(source: SourceConfig, base: boto3.Session) -> Credentials:
    """The credentials the role is assumed with: `base`'s, or dummy ones for a local stack without any."""
    credentials = base.get_credentials()
    if credentials is not None:
        return credentials
    if source.endpoint_url:
        return Credentials("local", "local")
    raise ConfigError(f"{NO_CREDENTIALS}, needed to assume role {source.role_arn} (source.role_arn)")


def _assume_role_problem(error: BaseException, source: SourceConfig) -> ConfigError | None:
    """The `ConfigError` a failed AssumeRole of `source.role_arn` means, or None (not a config problem)."""
    doing = f"assuming role {source.role_arn} (source.role_arn)"
    if isinstance(error, ClientError) and error_code(error) == "ValidationError":  # a duration above the role's
        message = error.response.get("Error", {}).get("Message", "")
        return ConfigError(f"{doing}: STS refused the request: {message} (source.duration_s, source.session_name)")
    problem = classify_at_start(error, doing)
    return problem if isinstance(problem, ConfigError) else None


class _NoCache(dict):
    """A fetcher's cache that keeps nothing: every refresh is a new AssumeRole."""

    def __setitem__(self, key, value) -> None:
        pass


class _Provider(CredentialProvider):
    """The only link of the credential chain of an assumed-role session."""

    METHOD = "assume-role"
    CANONICAL_NAME = "cdc-bridge-assume-role"

    def __init__(self, credentials: RefreshableCredentials) -> None:
        super().__init__()
        self.credentials = credentials

    def load(self) -> RefreshableCredentials:
        return self.credentials


def caller_identity(session: boto3.Session, sts_options: dict) -> Identity:
    """Who `session`'s calls run as (STS GetCallerIdentity at the same endpoint); errors as `classify_at_start` says."""
    doing = "asking STS who the bridge runs as (GetCallerIdentity)"
    try:
        answer = session.client("sts", **sts_options).get_caller_identity()
    except (ClientError, BotoCoreError) as error:
        raise classify_at_start(error, doing) from error
    account, arn = answer.get("Account"), answer.get("Arn")
    if not isinstance(account, str) or not isinstance(arn, str):
        raise ConfigError(f"{doing}: the answer holds no Account and Arn")
    return Identity(account, arn)
