"""Durability across restarts: a lost drive refilled onto its replacement; a scrub resumed after a crash."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from boto3.s3.transfer import TransferConfig

from .cluster import Daemon, MiB, s3_client
from .durability import WORKER_ENV, admin, all_healthy, status, wait_for

BUCKET = "durable"


def put_mix(d: Daemon, tmp_path: Path) -> dict[str, bytes]:
    """Inline, single-part and multipart objects, plus a versioned key with a delete marker."""
    objects = {f"small-{i}": os.urandom(20_000 + i) for i in range(6)}
    objects |= {f"big-{i}": os.urandom(MiB + 4096 * i) for i in range(10)}
    objects["multipart"] = os.urandom(12 * MiB)
    with closing(s3_client(d)) as s3:
        s3.create_bucket(Bucket=BUCKET)
        for key, data in objects.items():
            if key == "multipart":
                src = tmp_path / key
                src.write_bytes(data)
                cfg = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB)
                s3.upload_file(str(src), BUCKET, key, Config=cfg)
            else:
                s3.put_object(Bucket=BUCKET, Key=key, Body=data)
        s3.create_bucket(Bucket="versioned")
        s3.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket="versioned", Key="v", Body=b"one")
        s3.put_object(Bucket="versioned", Key="v", Body=b"two" * 100_000)
        s3.delete_object(Bucket="versioned", Key="v")
    return objects


def read_all_exact(d: Daemon, objects: dict[str, bytes], when: str) -> None:
    with closing(s3_client(d)) as s3:
        for key, data in objects.items():
            assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data, f"{key} {when}"
        versions = s3.list_object_versions(Bucket="versioned")
        assert len(versions.get("Versions", [])) == 2 and len(versions["DeleteMarkers"]) == 1


def drive_state(d: Daemon, i: int) -> str:
    info = admin(d, "GET", "info")
    path = str(d.drive_dir(i))
    return next(x["state"] for x in info["drives"] if x["path"].rstrip("/") == path)


def test_deleted_drive_is_rebuilt_onto_its_replacement(
    daemon_factory: Callable[..., Daemon], tmp_path: Path
) -> None:
    d = daemon_factory(drives=6, env=WORKER_ENV)
    objects = put_mix(d, tmp_path)
    shutil.rmtree(d.drive_dir(3))  # the disk is gone while the daemon runs
    wait_for("drive-3 to be marked offline", lambda: drive_state(d, 3) in ("offline", "failed"),
             timeout=30)
    read_all_exact(d, objects, "with drive-3 gone")
    # The operator puts in a blank disk in the same slot and restarts.
    d.stop()
    d.start()
    wait_for("the refill of drive-3", lambda: not status(d)["healing"]
             and status(d)["workers"]["refill"]["drives"], timeout=120)
    refill = status(d)["workers"]["refill"]["drives"][0]
    assert refill["slot"].endswith("/drive-3") and refill["state"] == "done", refill
    assert refill["lost"] == 0 and refill["objects_checked"] == len(objects) + 1, refill
    assert refill["bytes_rebuilt"] > 0
    assert drive_state(d, 3) == "online"
    keys = list(objects)
    assert all_healthy(d, BUCKET, keys) == []
    assert all_healthy(d, "versioned", ["v"]) == []
    roster = json.loads((d.data_dir / ".titans3" / "drives.json").read_text())
    assert not any(s["healing"] for s in roster["slots"])
    # Full redundancy for real: any two other drives may go now.
    d.stop()
    for i in (0, 5):
        shutil.rmtree(d.drive_dir(i))
    d.start()
    read_all_exact(d, objects, "after refill, with drives 0 and 5 gone")


def test_scrub_checkpoint_survives_a_crash_and_the_pass_resumes(
    daemon_factory: Callable[..., Daemon]
) -> None:
    d = daemon_factory(drives=6, env={**WORKER_ENV, "TITANS3_SCRUB_RATE": str(3 * MiB)})
    with closing(s3_client(d)) as s3:
        s3.create_bucket(Bucket=BUCKET)
        for i in range(30):
            s3.put_object(Bucket=BUCKET, Key=f"k{i:02d}", Body=os.urandom(MiB))
    assert admin(d, "POST", "scrub/start")["started"]
    t0 = time.monotonic()
    wait_for("some scrub progress", lambda: status(d)["workers"]["scrubber"]["objects_checked"] >= 3)
    time.sleep(max(0.0, 7.0 - (time.monotonic() - t0)))  # past the 5 s checkpoint interval
    before = status(d)["workers"]["scrubber"]
    assert before["state"] == "running", "the pass must still be running when the host dies"
    d.kill()
    d.start()
    after = status(d)["workers"]["scrubber"]
    assert after["state"] == "running", after
    resumed = {x["position"]: x["resumed_from_keys"] for x in after["drives"]}
    assert all(n > 0 for n in resumed.values()), after["drives"]
    assert all(x["keys_scanned"] >= x["resumed_from_keys"] for x in after["drives"])
    admin(d, "PUT", "scrub/rate", bytes_per_second="0")
    wait_for("the resumed pass", lambda: status(d)["workers"]["scrubber"]["state"] == "idle")
    done = status(d)["workers"]["scrubber"]
    assert done["passes_completed"] == 1 and done["corrupt"] == 0
    # Every key once per drive: resumed from the checkpoint, not started over.
    assert [x["keys_scanned"] for x in done["drives"]] == [30] * 6, done["drives"]
    assert done["objects_checked"] == 30
