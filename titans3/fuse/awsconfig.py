"""Credentials, region and endpoint the way the AWS CLI finds them (pure).

Order, first hit wins -- the AWS CLI's:

* keys: ``--access-key``/``--secret-key`` options; ``AWS_ACCESS_KEY_ID`` /
  ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` (unless ``--profile`` is
  given); the profile (``--profile``, ``AWS_PROFILE``, else ``default``) in the
  shared credentials file (``AWS_SHARED_CREDENTIALS_FILE``, ``~/.aws/credentials``),
  then in the config file (``AWS_CONFIG_FILE``, ``~/.aws/config``, section
  ``[profile NAME]`` or ``[default]``);
* region: ``--region``; ``AWS_REGION``; ``AWS_DEFAULT_REGION``; the profile's
  ``region``; ``us-east-1``;
* endpoint: ``--endpoint``; ``AWS_ENDPOINT_URL_S3``; ``AWS_ENDPOINT_URL``; the
  profile's ``endpoint_url``; TitanS3's default ``http://127.0.0.1:9000``.
"""

from __future__ import annotations

import configparser
import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_ENDPOINT = "http://127.0.0.1:9000"


@dataclass(frozen=True)
class Resolved:
    access_key: str
    secret_key: str
    session_token: str
    region: str
    endpoint: str
    source: str  # where the keys came from, for messages


class NoCredentials(Exception):
    pass


def _read(path: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(interpolation=None)
    with contextlib.suppress(configparser.Error):
        cp.read(os.path.expanduser(path))
    return cp


def _section(cp: configparser.ConfigParser, name: str, config: bool) -> Mapping[str, str]:
    for sec in ([f"profile {name}", name] if config else [name]):
        if cp.has_section(sec):
            return dict(cp.items(sec))
    return {}


def resolve(*, access_key: str | None = None, secret_key: str | None = None,
            profile: str | None = None, region: str | None = None, endpoint: str | None = None,
            env: Mapping[str, str] | None = None) -> Resolved:
    env = os.environ if env is None else env
    name = profile or env.get("AWS_PROFILE") or "default"
    creds = _section(_read(env.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")),
                     name, config=False)
    conf = _section(_read(env.get("AWS_CONFIG_FILE", "~/.aws/config")), name, config=True)
    token = ""
    if access_key or secret_key:
        if not (access_key and secret_key):
            raise NoCredentials("give both --access-key and --secret-key")
        source = "the command line"
    elif not profile and env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        access_key, secret_key = env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
        token = env.get("AWS_SESSION_TOKEN", "")
        source = "the environment"
    else:
        for where, sec in (("credentials file", creds), ("config file", conf)):
            if sec.get("aws_access_key_id") and sec.get("aws_secret_access_key"):
                access_key, secret_key = sec["aws_access_key_id"], sec["aws_secret_access_key"]
                token = sec.get("aws_session_token", "")
                source = f"profile {name} ({where})"
                break
        else:
            raise NoCredentials(
                f"no credentials: pass --access-key/--secret-key, set AWS_ACCESS_KEY_ID and "
                f"AWS_SECRET_ACCESS_KEY, or add profile {name!r} to ~/.aws/credentials")
    return Resolved(
        access_key=access_key or "", secret_key=secret_key or "", session_token=token,
        region=(region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
                or conf.get("region") or "us-east-1"),
        endpoint=(endpoint or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
                  or conf.get("endpoint_url") or DEFAULT_ENDPOINT),
        source=source,
    )
