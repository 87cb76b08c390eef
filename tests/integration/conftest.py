"""Fixtures that run the real ``titans3 serve`` for integration tests.

Fixtures
--------
``daemon_factory``  function-scoped: ``daemon_factory(drives=6, credentials=ROOT, ...)``
                    starts a daemon with a fresh data dir under ``tmp_path``; every
                    daemon it made is stopped (SIGTERM, then SIGKILL) at teardown.
``daemon``          one started daemon, 6 drives (EC 4+2), fixed root credentials.
``module_daemon``   the same, shared by a module (for many cheap tests).
``s3``              boto3 client for ``daemon`` (path-style, us-east-1, default checksums).
``aws_cli``         :class:`cluster.AwsCli` for ``daemon``.

When a test fails, the tail of the log of every daemon still in use is added
to the report (section "titans3 log ...").
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from . import cluster
from .cluster import AwsCli, Daemon


@pytest.fixture(scope="session", autouse=True)
def _hermetic_aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """boto3 in this process must not read ~/.aws or AWS_* settings of whoever runs tests."""
    empty = tmp_path_factory.mktemp("aws") / "empty-config"
    empty.touch()
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                mp.delenv(name)
        mp.setenv("AWS_CONFIG_FILE", str(empty))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield


def _start(base: Path, made: list[Daemon], **kwargs: object) -> Daemon:
    n = len(made)
    d = Daemon(
        base / f"data{n}" if n else base / "data",
        base / (f"titans3-{n}.log" if n else "titans3.log"),
        name=f"titans3[{n}]",
        **kwargs,  # type: ignore[arg-type]
    )
    made.append(d)
    cluster.LIVE.append(d)
    d.start()
    return d


def _teardown(made: list[Daemon]) -> None:
    # boto3 clients sit in reference cycles; collect the unreachable ones so
    # their pooled keep-alive sockets are closed before the daemon is stopped.
    gc.collect()
    for d in made:
        try:
            d.stop()
        finally:
            if d in cluster.LIVE:
                cluster.LIVE.remove(d)


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    made: list[Daemon] = []

    def make(**kwargs: object) -> Daemon:
        return _start(tmp_path, made, **kwargs)

    try:
        yield make
    finally:
        _teardown(made)


@pytest.fixture
def daemon(daemon_factory: Callable[..., Daemon]) -> Daemon:
    return daemon_factory(drives=6)


@pytest.fixture(scope="module")
def module_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    made: list[Daemon] = []
    try:
        yield _start(tmp_path_factory.mktemp("titans3"), made, drives=6)
    finally:
        _teardown(made)


@pytest.fixture
def s3(daemon: Daemon) -> Iterator[object]:
    client = cluster.s3_client(daemon)
    yield client
    # Close pooled keep-alive connections before the daemon fixture stops it,
    # so teardown measures the daemon, not our idle sockets.
    client.close()


@pytest.fixture
def aws_cli(daemon: Daemon, tmp_path: Path) -> AwsCli:
    return AwsCli(daemon.endpoint, daemon.credentials, tmp_path / "aws-home")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for d in cluster.LIVE:
            report.sections.append((f"titans3 log {d.name} ({d.log_path})", d.log_tail(80)))
