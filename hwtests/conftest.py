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
