"""GC collects what a drive that was away kept: found by the crash torture (issue 17).

A drive pulled while an upload is aborted misses the abort.  When it returns,
its upload record is a *remnant* (below write quorum although every placement
drive answers: ListMultipartUploads does not show it), but its part records
still name the part's data, so the data was never an orphan either -- it
stayed on the disk for good.  GC must drop such upload remnants once they are
older than the commit window, and the files with them.

A SIGKILL between the drives' commits of a part leaves its part record on too
few drives for any Complete to choose it; the Abort that ends the upload must
still remove those records, or their data outlives every GC pass -- the two
fragment files the single-host torture's GC check found.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from contextlib import closing, suppress

from .cluster import Daemon, MiB, s3_client
from .durability import WORKER_ENV, admin, status, wait_for

WINDOW = 2.0


def gc_pass(d: Daemon) -> dict:
    before = status(d)["workers"]["gc"]["passes_completed"]
    admin(d, "POST", "gc/start")
    wait_for("a gc pass", lambda: status(d)["workers"]["gc"]["passes_completed"] > before)
    return status(d)["workers"]["gc"]


def all_online(d: Daemon) -> bool:
    return all(dr["state"] == "online" for dr in admin(d, "GET", "info")["drives"])


def test_parts_of_an_upload_aborted_while_a_drive_was_away_are_collected(
        daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(drives=6, env={**WORKER_ENV, "TITANS3_COMMIT_WINDOW": str(WINDOW)})
    with closing(s3_client(d)) as s3:
        s3.create_bucket(Bucket="remnants")
        uid = s3.create_multipart_upload(Bucket="remnants", Key="big")["UploadId"]
        s3.upload_part(Bucket="remnants", Key="big", UploadId=uid, PartNumber=1,
                       Body=os.urandom(5 * MiB))
        assert len(d.fragment_files()) == 6
        away = d.drive_dir(2)
        away.rename(away.with_name("drive-2.away"))
        s3.abort_multipart_upload(Bucket="remnants", Key="big", UploadId=uid)
        away.with_name("drive-2.away").rename(away)
        wait_for("every drive online", lambda: all_online(d), timeout=60)
        assert s3.list_multipart_uploads(Bucket="remnants").get("Uploads", []) == []
        time.sleep(WINDOW + 0.5)
        gc_pass(d)  # the remnant upload goes ...
        gc = gc_pass(d)  # ... and with it the last reference to its data
        left = d.fragment_files()
        assert left == [], f"after GC: {left} ({gc})"


def test_a_part_killed_between_the_drives_commits_is_collected_after_the_abort(
        daemon_factory: Callable[..., Daemon]) -> None:
    # Four of the six drives are slow to write (injected delays, drive/faults.py),
    # so the part commits on the two fast ones first: the daemon dies in between.
    d = daemon_factory(drives=6, env={**WORKER_ENV, "TITANS3_COMMIT_WINDOW": str(WINDOW),
                                      "TITANS3_FAULT_INJECTION": "1"})
    fast, slow = [0, 1], [2, 3, 4, 5]
    with closing(s3_client(d)) as s3:
        s3.create_bucket(Bucket="cut-short")
        uid = s3.create_multipart_upload(Bucket="cut-short", Key="k")["UploadId"]
        for i in slow:
            (d.drive_dir(i) / "titans3-faults.json").write_text(json.dumps({"write_delay": 3.0}))
        time.sleep(0.5)  # the drives re-read the fault file every 0.2 s

        def part() -> None:
            with suppress(Exception):  # the daemon is killed under it
                s3.upload_part(Bucket="cut-short", Key="k", UploadId=uid, PartNumber=1,
                               Body=os.urandom(100_000))

        sender = threading.Thread(target=part, daemon=True)
        sender.start()
        wait_for("the part promoted on the fast drives",
                 lambda: all(d.fragment_files(i) for i in fast), timeout=120)
        time.sleep(1.0)  # promote renames before the LMDB commit: let that land too
        assert not any(d.fragment_files(i) for i in slow)
        d.kill()
        sender.join(30)
    for i in slow:
        (d.drive_dir(i) / "titans3-faults.json").unlink()
    d.start()
    wait_for("every drive online", lambda: all_online(d), timeout=60)
    time.sleep(WINDOW + 0.5)
    gc_pass(d)
    assert len(d.fragment_files()) == 2, "the part records on the fast drives keep the data"
    with closing(s3_client(d)) as s3:
        assert s3.list_parts(Bucket="cut-short", Key="k", UploadId=uid).get("Parts", []) == []
        s3.abort_multipart_upload(Bucket="cut-short", Key="k", UploadId=uid)
    time.sleep(WINDOW + 0.5)
    gc = gc_pass(d)
    left = d.fragment_files()
    assert left == [], f"after the abort and GC: {left} ({gc})"
