"""A failed drive's fragments are rebuilt on spare drives before any new disk
arrives (titans3/objects/spares.py, titans3/workers/spares.py).

One real daemon, eight directory drives, EC 4+2: every stripe leaves two
drives out, the spares.  Drive X is drained (FAILED); the spare rebuild puts
X's fragment of every object on a spare, with progress in ``titanctl repair
status`` and on the status page.  Then two more drives fail, chosen so that
some objects lose three of their six primaries -- one more than m: only the
spare copies make those readable, and every object must read back.  New
writes made while X is failed read back too.  Finally the three slots get
blank disks: the refills use the spare copies where three primaries are
gone, nothing is lost, and the spare copies are dropped once the primaries
hold everything again (placements move back to the ring).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
from collections.abc import Callable
from contextlib import closing
from typing import Any

import httpx

from .cluster import Daemon, MiB, s3_client
from .durability import WORKER_ENV, admin, all_healthy, inspect, wait_for
from .test_titanctl import titanctl

BUCKET = "spares"
X = 3


def drain(d: Daemon, i: int) -> None:
    r = titanctl("disk", "drain", f"drive-{i}", endpoint=d.endpoint)
    assert r.returncode == 0, r.stderr
    wait_for(f"drive-{i} failed",
             lambda: admin(d, "GET", "info")["drives"][i]["state"] == "failed", timeout=60)


def spare_stats(d: Daemon) -> dict[str, Any]:
    return admin(d, "GET", "repair/status")["workers"]["spares"]


def read_all(s3: Any, digests: dict[str, str]) -> list[str]:
    bad = []
    for key, digest in digests.items():
        try:
            got = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        except Exception as e:  # noqa: BLE001 -- collected: the assertion names every failure
            bad.append(f"{key}: {e}")
            continue
        if hashlib.sha256(got).hexdigest() != digest:
            bad.append(f"{key}: wrong bytes")
    return bad


def test_a_failed_drive_is_rebuilt_on_spares_so_m_more_failures_lose_nothing(
        daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(drives=8, env={**WORKER_ENV, "TITANS3_EC": "4+2"})
    digests: dict[str, str] = {}
    with closing(s3_client(d)) as s3:
        s3.create_bucket(Bucket=BUCKET)
        sizes = [3 * MiB + 17, 300_000, 9_000, 0]
        for i in range(24):
            body = os.urandom(sizes[i % len(sizes)])
            s3.put_object(Bucket=BUCKET, Key=f"o{i:02d}", Body=body)
            digests[f"o{i:02d}"] = hashlib.sha256(body).hexdigest()
        up = s3.create_multipart_upload(Bucket=BUCKET, Key="mpu")
        parts, whole = [], b""
        for n in (1, 2):
            chunk = os.urandom(5 * MiB + n)
            whole += chunk
            etag = s3.upload_part(Bucket=BUCKET, Key="mpu", UploadId=up["UploadId"], PartNumber=n,
                                  Body=chunk)["ETag"]
            parts.append({"PartNumber": n, "ETag": etag})
        s3.complete_multipart_upload(Bucket=BUCKET, Key="mpu", UploadId=up["UploadId"],
                                     MultipartUpload={"Parts": parts})
        digests["mpu"] = hashlib.sha256(whole).hexdigest()
        stripes = {key: {p["position"] for p in inspect(d, BUCKET, key)["placement"][:6]}
                   for key in digests}

        drain(d, X)
        with_x = [key for key, s in stripes.items() if X in s]
        wait_for("the spare rebuild of drive 3",
                 lambda: [t["state"] for t in spare_stats(d)["drives"]] == ["done"], timeout=180)
        t = spare_stats(d)["drives"][0]
        print(f"\nspare rebuild: {t['objects_checked']} keys checked, {t['objects_rebuilt']} rebuilt, "
              f"{t['fragments_rebuilt']} fragments, {t['bytes_rebuilt']} bytes")
        assert t["objects_rebuilt"] == len(with_x), (t, len(with_x))
        assert t["no_spare"] == 0 and t["retry_pending"] == 0, t
        out = titanctl("repair", "status", endpoint=d.endpoint).stdout
        assert "spare rebuild" in out and "done" in out, out
        page = httpx.get(f"{d.web_endpoint}/api/status", timeout=10).json()
        assert any(w["name"] == "spares" and w["drives"] for w in page["workers"]), page["workers"]

        # Written while X is failed: handed to a spare at once (objects/handoff.py).
        body = os.urandom(2 * MiB)
        s3.put_object(Bucket=BUCKET, Key="during", Body=body)
        digests["during"] = hashlib.sha256(body).hexdigest()
        stripes["during"] = {p["position"] for p in inspect(d, BUCKET, "during")["placement"][:6]}

        # The two further failures that take three primaries from the most objects.
        others = [i for i in range(8) if i != X]
        y, z = max(itertools.combinations(others, 2),
                   key=lambda p: sum({X, *p} <= s for s in stripes.values()))
        beyond_m = [key for key, s in stripes.items() if {X, y, z} <= s]
        assert beyond_m, "no object loses three primaries: the test would prove nothing"
        drain(d, y)
        drain(d, z)
        assert read_all(s3, digests) == [], f"unreadable with {X}, {y}, {z} failed"
        print(f"drives {X}, {y}, {z} failed: {len(digests)} objects read back, "
              f"{len(beyond_m)} of them with three of six primaries gone")

        # New disks: the refills read the spare copies where the primaries are short
        # (three of six gone), and once they are done the spare copies go away.
        for i in (X, y, z):
            shutil.move(str(d.drive_dir(i)), str(d.drive_dir(i).with_name(f"drive-{i}.failed")))
            r = titanctl("disk", "replace", f"drive-{i}", str(d.drive_dir(i)), endpoint=d.endpoint)
            assert r.returncode == 0, r.stderr
        wait_for("the refills", lambda: not admin(d, "GET", "repair/status").get("healing"),
                 timeout=240, every=1.0)
        refill = admin(d, "GET", "repair/status")["workers"]["refill"]
        assert refill["lost"] == 0, refill
        assert all_healthy(d, BUCKET, sorted(digests)) == []
        wait_for("the spare copies moved back",
                 lambda: admin(d, "GET", "repair/status")["workers"]["handoff"]["hints_held"] == 0,
                 timeout=60)
        assert read_all(s3, digests) == []
