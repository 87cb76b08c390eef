"""Full disks: small ext4 loop devices as drives, filled through S3 until they refuse.

Every drive directory ``DATA/drive-i`` is the mount point of its own small
ext4 filesystem on a loop device this test attached (hwtests/loopdev.py
cleans up mounts and devices in a ``finally``).  What must hold:

* a PUT that no longer fits gets ``507 XMinioStorageFull`` as an S3 XML error
  (MinIO's answer; AWS has none) -- not a 503 "drives offline", not a
  traceback -- while small objects that fit in LMDB and every read go on;
* a drive that is full stays *online* (it still serves reads) and shows as
  ``full`` in ``titanctl info`` and on the status page (``/api/status``);
* freeing space (DELETEs) makes writes work again and the ``full`` flag go;
* nothing acknowledged is lost and LMDB is intact: after a SIGKILL every
  object reads back, and every drive's environment opens and walks cleanly;
* one full drive among healthy ones costs no availability: writes go on to
  the other placements (W = 5 of 6) and the drive shows ``full``.

Memory (VmRSS) and open descriptors of the daemon are printed before and
after filling, and the descriptor count must come back down.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import require_loop_devices
from loopdev import LoopSet, sh

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.integration.cluster import ROOT, TITANCTL, Daemon, clean_env, s3_client  # noqa: E402
from tests.integration.rawhttp import raw_request  # noqa: E402

MiB = 1 << 20
BUCKET = "full-disks"


def mount_small_drives(loops: LoopSet, data: Path, which: list[int], size: int) -> None:
    for i in which:
        dev = loops.attach(loops.file(f"drive-{i}.img", size))
        sh("mkfs.ext4", "-q", "-F", "-m", "0", "-E", "nodiscard", dev)
        mp = data / f"drive-{i}"
        mp.mkdir(parents=True, exist_ok=True)
        sh("mount", dev, str(mp))


@pytest.fixture
def small_drives(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Daemon, Path]]:
    """A daemon whose drives ``request.param`` (indices) are 40 MiB ext4 filesystems."""
    require_loop_devices()
    which, size = request.param
    loops = LoopSet(tmp_path)  # base = tmp_path: cleanup unmounts everything under it
    data = tmp_path / "data"
    d = Daemon(data, tmp_path / "titans3.log", drives=6, name="full")
    try:
        mount_small_drives(loops, data, which, size)
        d.start()
        yield d, data
    finally:
        try:
            d.stop()
        finally:
            loops.cleanup()


def ctl_info(d: Daemon) -> dict[str, Any]:
    env = clean_env({"TITANS3_ROOT_ACCESS_KEY": ROOT.access_key,
                     "TITANS3_ROOT_SECRET_KEY": ROOT.secret_key})
    proc = subprocess.run([str(TITANCTL), "--endpoint", d.endpoint, "info", "--json"], env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(proc.stdout)


def ctl_info_text(d: Daemon) -> str:
    env = clean_env({"TITANS3_ROOT_ACCESS_KEY": ROOT.access_key,
                     "TITANS3_ROOT_SECRET_KEY": ROOT.secret_key})
    return subprocess.run([str(TITANCTL), "--endpoint", d.endpoint, "info"], env=env,
                          capture_output=True, text=True, timeout=60, check=True).stdout


def page_states(d: Daemon) -> list[str]:
    doc = httpx.get(f"{d.web_endpoint}/api/status", timeout=10).json()
    return [row["state"] for row in doc["drives"]]


def files_open(pid: int) -> int:
    """Open descriptors that are not sockets (the test's own idle keep-alive
    connections come and go; files and pipes are what would leak)."""
    return sum(1 for n in os.listdir(f"/proc/{pid}/fd")
               if not os.readlink(f"/proc/{pid}/fd/{n}").startswith("socket:"))


def process_figures(d: Daemon) -> tuple[int, int]:
    """(VmRSS in KiB, open files) of the daemon."""
    assert d.proc is not None
    pid = d.proc.pid
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss, files_open(pid)


def fill(s3: Any, size: int, limit: int) -> tuple[dict[str, str], Any]:
    """PUT ``size``-byte objects until one is refused; (key -> sha256 acked, the error)."""
    acked: dict[str, str] = {}
    for n in range(limit):
        body = os.urandom(size)
        key = f"fill/{n:04d}"
        try:
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        except Exception as e:  # noqa: BLE001 -- the refusal is what we fill for
            return acked, e
        acked[key] = hashlib.sha256(body).hexdigest()
    return acked, None


def read_all(s3: Any, acked: dict[str, str]) -> None:
    for key, digest in acked.items():
        got = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert hashlib.sha256(got).hexdigest() == digest, key


def walk_lmdb(data: Path) -> int:
    """Open every drive's LMDB read-only and read every record of every table."""
    import lmdb

    records = 0
    for drive in sorted(data.glob("drive-*")):
        env = lmdb.open(str(drive / "index.lmdb"), readonly=True, lock=False, max_dbs=64)
        try:
            with env.begin() as txn:
                names = [k for k, _ in txn.cursor()]
                for name in names:
                    db = env.open_db(name, txn=txn, create=False)
                    for _k, v in txn.cursor(db=db):
                        records += 1
                        assert v is not None
        finally:
            env.close()
    return records


@pytest.mark.parametrize("small_drives", [([0, 1, 2, 3, 4, 5], 40 * MiB)], indirect=True)
def test_full_drives_refuse_with_507_serve_reads_and_recover_when_freed(
        small_drives: tuple[Daemon, Path]) -> None:
    d, data = small_drives
    s3 = s3_client(d)
    s3.create_bucket(Bucket=BUCKET)
    rss0, fds0 = process_figures(d)

    acked, refusal = fill(s3, 4 * MiB, limit=80)
    assert refusal is not None, "six 40 MiB drives took 320 MiB of 4+2 fragments"
    assert len(acked) >= 20, f"refused after only {len(acked)} objects: {refusal!r}"
    err = refusal.response  # type: ignore[attr-defined]
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 507, err
    assert err["Error"]["Code"] == "XMinioStorageFull", err

    # The raw answer: an S3 XML error with AWS's headers.
    raw = raw_request(d, "PUT", f"/{BUCKET}/raw-after-full", body=os.urandom(4 * MiB))
    assert raw.status == 507, raw
    assert raw.error_code() == "XMinioStorageFull"
    headers = {k.lower(): v for k, v in raw.headers.items()}
    assert headers.get("content-type", "").startswith("application/xml")
    assert headers.get("x-amz-request-id")

    # Reads go on, and so do objects small enough for the LMDB records.
    read_all(s3, acked)
    s3.put_object(Bucket=BUCKET, Key="tiny", Body=b"still fits")
    acked["tiny"] = hashlib.sha256(b"still fits").hexdigest()

    info = ctl_info(d)
    states = [dr["state"] for dr in info["drives"]]
    assert states.count("full") >= 2 and "offline" not in states, states
    assert "full" in ctl_info_text(d)
    assert page_states(d).count("full") >= 2
    rss1, fds1 = process_figures(d)
    print(f"\nfull disks: {len(acked)} objects acked; daemon RSS {rss0} -> {rss1} KiB, "
          f"open files (not sockets) {fds0} -> {fds1}; states {states}")

    # Free about half the space: writes work again and the flag goes.
    for key in sorted(acked)[: len(acked) // 2]:
        if key.startswith("fill/"):
            s3.delete_object(Bucket=BUCKET, Key=key)
            del acked[key]
    body = os.urandom(4 * MiB)
    s3.put_object(Bucket=BUCKET, Key="after-free", Body=body)
    acked["after-free"] = hashlib.sha256(body).hexdigest()
    assert "full" not in [dr["state"] for dr in ctl_info(d)["drives"]]
    assert "full" not in page_states(d)

    # Acknowledged data survives a SIGKILL; LMDB opens and walks cleanly.
    d.kill()
    records = walk_lmdb(data)
    assert records > 0
    d.start()
    s3 = s3_client(d)
    read_all(s3, acked)
    rss2, fds2 = process_figures(d)
    assert fds2 <= fds1 + 8, (fds1, fds2)
    print(f"after freeing and a SIGKILL: {len(acked)} objects read back, {records} LMDB records "
          f"walked; RSS {rss2} KiB, fds {fds2}")


@pytest.mark.parametrize("small_drives", [([0], 24 * MiB)], indirect=True)
def test_one_full_drive_costs_no_availability(small_drives: tuple[Daemon, Path]) -> None:
    d, _ = small_drives
    s3 = s3_client(d)
    s3.create_bucket(Bucket=BUCKET)
    # drive-0 holds a quarter of each object's bytes: ~96 MiB of objects fill it.
    acked, refusal = fill(s3, 4 * MiB, limit=40)
    assert refusal is None, f"a write failed with one full drive of six: {refusal!r}"
    read_all(s3, acked)
    deadline = time.monotonic() + 10
    while (states := [dr["state"] for dr in ctl_info(d)["drives"]])[0] != "full":
        assert time.monotonic() < deadline, states
        time.sleep(0.2)
    assert states[1:] == ["online"] * 5, states
    assert page_states(d)[0] == "full"
