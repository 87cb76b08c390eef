"""Helpers shared by the object-API integration tests (versioning, copy, batch
delete, tagging, conditional requests): a module-scoped AWS CLI, reading an
S3 error out of a botocore exception, and a guard that the daemon logged no
traceback while a test ran."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .cluster import AwsCli, Daemon


def cli_for(daemon: Daemon, home: Path) -> AwsCli:
    return AwsCli(daemon.endpoint, daemon.credentials, home)


def cli_json(cli: AwsCli, *args: str) -> Any:
    out = cli(*args, "--output", "json").stdout
    return json.loads(out) if out.strip() else {}


def s3_error(call: Any, *args: Any, **kwargs: Any) -> tuple[int, str, dict[str, str]]:
    """Run a boto3 call that must fail: ``(HTTP status, error code, response headers)``."""
    with pytest.raises(ClientError) as e:
        call(*args, **kwargs)
    meta = e.value.response["ResponseMetadata"]
    return meta["HTTPStatusCode"], e.value.response["Error"]["Code"], meta["HTTPHeaders"]


@contextlib.contextmanager
def clean_log(daemon: Daemon) -> Iterator[None]:
    """Fail if the daemon logs a traceback (or dies) inside the block."""
    mark = daemon.log_mark()
    yield
    time.sleep(0.1)  # a failure is sometimes logged just after the response went out
    new = daemon.log_since(mark)
    assert "Traceback" not in new, f"daemon logged a traceback:\n{new[-4000:]}"
    assert daemon.running, f"daemon died:\n{daemon.log_tail()}"
