"""titans3.front.limits and the ``s3_processes`` key: how many S3 processes, what each may hold."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from titans3.core.config import load
from titans3.core.errors import ConfigError
from titans3.front.limits import process_count, shared_limits


def test_auto_is_the_usable_cores_up_to_four_and_a_number_is_taken_as_given() -> None:
    assert process_count("auto") == min(len(os.sched_getaffinity(0)), 4)
    assert process_count("1") == 1 and process_count("6") == 6


def test_s3_processes_from_toml_env_and_flags(tmp_path: Path) -> None:
    assert load(environ={}).s3_processes == "1"  # the measured default (docs/multiprocess.md)
    f = tmp_path / "c.toml"
    f.write_text("s3_processes = 3\n")
    assert load(environ={}, config_file=str(f)).s3_processes == "3"
    assert load(environ={"TITANS3_S3_PROCESSES": "2"}).s3_processes == "2"
    assert load(environ={}, flags={"s3_processes": "1"}).s3_processes == "1"


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_bad_s3_processes_is_one_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="s3_processes"):
        load(environ={"TITANS3_S3_PROCESSES": bad})


def test_each_process_takes_its_share_of_the_hosts_connection_limit() -> None:
    cfg = load(environ={"TITANS3_S3_PROCESSES": "3", "TITANS3_MAX_CONNECTIONS": "1000"})
    assert shared_limits(cfg).max_connections == 334
    one = load(environ={"TITANS3_S3_PROCESSES": "1", "TITANS3_MAX_CONNECTIONS": "1000"})
    assert shared_limits(one) is one
