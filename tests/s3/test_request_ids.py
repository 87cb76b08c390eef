"""titans3.s3.request_ids: unique ids in AWS's shapes, also across a fork."""

from __future__ import annotations

import base64
import os
import re

from titans3.s3 import request_ids


def test_ids_have_aws_shapes_and_do_not_repeat() -> None:
    seen = set()
    for _ in range(10_000):
        rid, hid = request_ids.next_ids()
        assert re.fullmatch(r"[0-9A-F]{16}", rid)
        assert len(base64.b64decode(hid, validate=True)) == 24
        seen.add((rid, hid))
    assert len({r for r, _ in seen}) == len({h for _, h in seen}) == 10_000


def test_a_forked_child_draws_its_own_prefix() -> None:
    mine = request_ids.next_ids()[0][:8]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover -- the child
        os.write(w, request_ids.next_ids()[0].encode())
        os._exit(0)
    os.close(w)
    child = os.read(r, 64).decode()
    os.close(r)
    os.waitpid(pid, 0)
    assert child[:8] != mine


def test_the_counter_wraps_to_a_new_prefix(monkeypatch) -> None:
    before = request_ids.next_ids()[0][:8]
    monkeypatch.setattr(request_ids, "_count", 0xFFFFFFFF)
    rid = request_ids.next_ids()[0]
    assert rid[:8] != before and rid[8:] == "00000001"
