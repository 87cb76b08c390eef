"""Helpers shared by the object-API integration tests (versioning, copy, batch
delete, tagging, conditional requests): a module-scoped AWS CLI, reading an
S3 error out of a botocore exception, a guard that the daemon logged no
traceback while a test ran, and the module fixtures all of them share."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .cluster import AwsCli, Daemon, s3_client


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


def module_fixtures(*buckets: str, home: str) -> tuple[Any, Any, Any, Any]:
    """The fixtures every object-API test module uses: ``d`` (the module's
    daemon, with ``buckets`` created), ``s3`` (a boto3 client), ``cli`` (the
    AWS CLI) and an autouse no-traceback guard.  Assign them by these names:
    ``d, s3, cli, _no_traceback = module_fixtures(...)``."""

    @pytest.fixture(scope="module")
    def d(module_daemon: Daemon) -> Daemon:
        if buckets:
            client = s3_client(module_daemon)
            for bucket in buckets:
                client.create_bucket(Bucket=bucket)
            client.close()
        return module_daemon

    @pytest.fixture(scope="module")
    def s3(d: Daemon) -> Iterator[object]:
        client = s3_client(d)
        yield client
        client.close()

    @pytest.fixture(scope="module")
    def cli(d: Daemon, tmp_path_factory: pytest.TempPathFactory) -> AwsCli:
        return cli_for(d, tmp_path_factory.mktemp(home))

    @pytest.fixture(autouse=True)
    def _no_traceback(d: Daemon) -> Iterator[None]:
        with clean_log(d):
            yield

    return d, s3, cli, _no_traceback
