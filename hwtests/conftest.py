"""Shared checks for hardware tests: skip (with the reason) where the machine cannot run them."""

from __future__ import annotations

import os

import pytest


def require_loop_devices() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to attach loop devices")
    if not os.path.exists("/dev/loop-control"):
        pytest.skip("no /dev/loop-control on this machine")


def require_fuse() -> None:
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse on this machine")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``long`` run only with TITANS3_LONG_TESTS=1 (scripts/test-appliance.sh)."""
    if os.environ.get("TITANS3_LONG_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="long: run by scripts/test-appliance.sh (TITANS3_LONG_TESTS=1)")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)
