"""sd_notify against a real unix datagram socket standing in for systemd's."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import trio

from titans3.core.sdnotify import Notifier


def listener(tmp_path: Path) -> tuple[socket.socket, str]:
    path = str(tmp_path / "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(5)
    return s, path


def test_outside_systemd_every_call_is_a_no_op() -> None:
    n = Notifier({})
    assert not n.enabled
    assert n.ready("x") is False and n.stopping() is False
    trio.run(n.watchdog_loop)  # returns at once: no watchdog asked for


def test_ready_status_and_stopping_arrive_as_key_value_datagrams(tmp_path: Path) -> None:
    s, path = listener(tmp_path)
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.ready("serving")
    assert s.recv(4096) == b"READY=1\nSTATUS=serving"
    assert n.stopping()
    assert s.recv(4096) == b"STOPPING=1\nSTATUS=stopping"


def test_abstract_namespace_socket(tmp_path: Path) -> None:
    name = f"titans3-test-{os.getpid()}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(b"\0" + name.encode())
    s.settimeout(5)
    assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
    assert s.recv(4096) == b"READY=1"


def test_watchdog_pings_at_half_the_interval_from_the_event_loop(tmp_path: Path) -> None:
    s, path = listener(tmp_path)
    s.setblocking(False)
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())})
    assert n.watchdog_s == 0.2

    async def main() -> None:
        with trio.move_on_after(0.55):
            await n.watchdog_loop()

    trio.run(main)
    pings = []
    while True:
        try:
            pings.append(s.recv(100))
        except BlockingIOError:
            break
    assert pings and set(pings) == {b"WATCHDOG=1"}
    assert 4 <= len(pings) <= 7  # every 0.1 s for 0.55 s


def test_a_watchdog_meant_for_another_pid_is_ignored(tmp_path: Path) -> None:
    _, path = listener(tmp_path)
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
    assert n.watchdog_s is None


def test_a_vanished_socket_does_not_raise(tmp_path: Path) -> None:
    assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).ready() is False
