#!/usr/bin/env python3
"""TitanS3's FUSE mounts against s3fs-fuse and rclone mount, same bucket, same run.

Starts one ``titans3 serve --drives 6 --mount fusebench:<tmp>/titans3-daemon``
(the daemon's own mount, over the object layer) and mounts the same bucket
three more ways over its S3 port: ``titans3 mount`` (remote, SigV4), s3fs-fuse
and ``rclone mount`` (``--vfs-cache-mode writes``, rclone's usual setting for
programs that write).  Each mount works under its own prefix for the write
rows; the read-only metadata rows read one shared prefix of ``--files``
objects written through S3 beforehand.  Rows, each mount in turn:

=========================  ==============================================
tar x (s)                  the 2,000-file source tree from a tar archive
tar x until all in S3 (s)  the same, until boto3 lists every file (a mount
                           that uploads after close, like rclone's write-back
                           cache, is done only then)
ls -lR / find (s)          over ``--files`` files (100 directories)
stat (s)                   ``os.lstat`` of every one of them
seq write / read (MB/s)    ``--big-mib`` MiB, write includes close(); read
                           after dropping the page cache; "until in S3":
                           until boto3 sees the whole object
4 KiB random reads/s       ``--random`` preads at random offsets of it
rename big file (ms)       ``os.rename`` of the ``--big-mib`` file
=========================  ==============================================

Metadata rows expire every mount's caches first (a 2 s pause: ours are 1 s,
s3fs's stat cache is set to 1 s, rclone's dir cache to 1 s).  Prints a
Markdown table with the ratio of the daemon mount to the better peer
(for times, peer/ours; for rates, ours/peer), and ``uptime`` before and after.
Long: a few minutes at the defaults; ``--quick`` uses 1,000 files and 256 MiB.
``--row`` picks rows; ``--profile DIR`` records each titans3 mount's serving
process with py-spy during each row (collapsed stacks, one file per row).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "hwtests")]

from fusemount import (  # noqa: E402
    MountDaemon,
    RemoteMount,
    big_file,
    build_tree,
    unmount,
    wait_mounted,
)

from tests.integration.cluster import BIN, s3_client  # noqa: E402

BUCKET = "fusebench"
MiB = 1 << 20


def drop_caches() -> None:
    subprocess.run(["sync"], check=False)
    with contextlib.suppress(OSError):
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


ROWS = ("tar x (s)", "tar x until all in S3 (s)", "ls -lR (s)", "find (s)", "stat (s)", "seq write MB/s",
        "seq write until in S3 MB/s", "seq read MB/s",
        "4 KiB random reads/s", "rename big file (ms)")


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=3600)


class Peer:
    def __init__(self, name: str, mnt: Path, proc: subprocess.Popen) -> None:
        self.name, self.mnt, self.proc = name, mnt, proc

    def stop(self) -> None:
        unmount(self.mnt)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


def start_s3fs(endpoint: str, creds, mnt: Path, tmp: Path) -> Peer:
    mnt.mkdir(parents=True, exist_ok=True)
    pw = tmp / "s3fs.passwd"
    pw.write_text(f"{creds.access_key}:{creds.secret_key}\n")
    pw.chmod(0o600)
    proc = subprocess.Popen(
        ["s3fs", BUCKET, str(mnt), "-f", "-o", f"url={endpoint}", "-o", "use_path_request_style",
         "-o", f"passwd_file={pw}", "-o", "endpoint=us-east-1", "-o", "stat_cache_expire=1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_mounted(mnt, proc=proc)
    return Peer("s3fs-fuse", mnt, proc)


def start_rclone(endpoint: str, creds, mnt: Path, tmp: Path) -> Peer:
    mnt.mkdir(parents=True, exist_ok=True)
    conf = tmp / "rclone.conf"
    conf.write_text(f"[t]\ntype = s3\nprovider = Other\nendpoint = {endpoint}\n"
                    f"access_key_id = {creds.access_key}\nsecret_access_key = {creds.secret_key}\n"
                    "region = us-east-1\n")
    proc = subprocess.Popen(
        [str(BIN / "rclone"), "--config", str(conf), "mount", f"t:{BUCKET}", str(mnt),
         "--vfs-cache-mode", "writes", "--dir-cache-time", "1s", "--cache-dir",
         str(tmp / "rclone-cache")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_mounted(mnt, proc=proc)
    return Peer("rclone mount", mnt, proc)


def seed(d: MountDaemon, files: int) -> None:
    """``files`` small objects under meta/dNN/ through S3 (100 directories)."""
    s3 = s3_client(d)

    def put(i: int) -> None:
        s3.put_object(Bucket=BUCKET, Key=f"meta/d{i % 100:02d}/f{i:06d}", Body=b"x" * 100)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(files)))
    s3.close()


class Profiler:
    """``py-spy record`` of one mount's serving process while its rows run."""

    def __init__(self, out_dir: Path | None, name: str = "", pid: int | None = None) -> None:
        self.out_dir, self.name, self.pid = out_dir, name, pid
        self.proc: subprocess.Popen | None = None

    @contextlib.contextmanager
    def row(self, row: str):
        self.start(row)
        try:
            yield
        finally:
            self.stop()

    def start(self, row: str) -> None:
        if self.out_dir is None or self.pid is None:
            return
        pid = self.pid
        self.out_dir.mkdir(parents=True, exist_ok=True)
        slug = "".join(c if c.isalnum() else "-" for c in f"{self.name} {row}")
        out = self.out_dir / f"{slug}.txt"
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.proc = subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw",
                                      "--rate", "200", "--nonblocking", "-o", str(out)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(2)  # SIGINT: py-spy writes its file and exits
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


def wait_listed(s3, prefix: str, files: int, timeout: float = 1800) -> None:
    """Until ``files`` objects (markers aside) are listed under ``prefix``."""
    deadline = time.monotonic() + timeout
    while True:
        n = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            n += sum(1 for o in page.get("Contents", ()) if not o["Key"].endswith("/"))
        if n >= files or time.monotonic() > deadline:
            return
        time.sleep(0.2)


def wait_object(s3, key: str, size: int, timeout: float = 1800) -> None:
    """Until ``key`` is in the bucket with ``size`` bytes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == size:
                return
        except Exception:  # noqa: BLE001 -- not there yet
            pass
        time.sleep(0.2)


def measure(mnt: Path, name: str, tree_tar: Path, big: Path, args,
            prof: Profiler, s3) -> dict[str, float]:
    out: dict[str, float] = {}
    work = mnt / f"w-{name}"
    work.mkdir(exist_ok=True)

    def want(row: str) -> bool:
        return not args.row or any(r in row for r in args.row)

    def timed(row: str, fn, *a) -> float:
        with prof.row(row):
            t = time.perf_counter()
            fn(*a)
            took = time.perf_counter() - t
        print(f"  {name}: {row}: {took:.3f} s", file=sys.stderr, flush=True)
        return took

    if want("tar x"):
        t0 = time.perf_counter()
        out["tar x (s)"] = timed("tar x (s)", sh, "tar", "-C", str(work), "-xf", str(tree_tar))
        # A mount that acknowledges close() before uploading (rclone's write-back
        # cache) is done only when S3 clients can see the files.
        wait_listed(s3, f"w-{name}/", args.tree_files)
        out["tar x until all in S3 (s)"] = time.perf_counter() - t0
        print(f"  {name}: tar x until all in S3: {out['tar x until all in S3 (s)']:.3f} s",
              file=sys.stderr, flush=True)
    if want("ls -lR (s)"):
        time.sleep(2)
        out["ls -lR (s)"] = timed("ls -lR (s)", sh, "ls", "-lR", str(mnt / "meta"))
    if want("find (s)"):
        time.sleep(2)
        out["find (s)"] = timed("find (s)", sh, "find", str(mnt / "meta"), "-type", "f")
    if want("stat (s)"):
        paths = [mnt / "meta" / f"d{i % 100:02d}" / f"f{i:06d}" for i in range(args.files)]
        time.sleep(2)
        out["stat (s)"] = timed("stat (s)", lambda: [os.lstat(p) for p in paths])
    if not any(want(r) for r in ROWS[5:]):
        return out
    dst = work / "big.bin"
    t0 = time.perf_counter()
    if want("seq write MB/s"):
        out["seq write MB/s"] = args.big_mib / timed("seq write MB/s", shutil.copyfile, big, dst)
    else:
        shutil.copyfile(big, dst)
    if want("seq write until in S3 MB/s"):
        wait_object(s3, f"w-{name}/big.bin", args.big_mib * MiB)
        out["seq write until in S3 MB/s"] = args.big_mib / (time.perf_counter() - t0)
    if want("seq read MB/s"):
        drop_caches()
        t = timed("seq read MB/s", sh, "dd", f"if={dst}", "of=/dev/null", "bs=1M")
        out["seq read MB/s"] = args.big_mib / t
    if want("4 KiB random reads/s"):
        drop_caches()
        size = args.big_mib * MiB
        fd = os.open(dst, os.O_RDONLY)
        rng = random.Random(1)

        def preads() -> None:
            for _ in range(args.random):
                os.pread(fd, 4096, rng.randrange(0, size - 4096) & ~4095)

        out["4 KiB random reads/s"] = args.random / timed("4 KiB random reads/s", preads)
        os.close(fd)
    if want("rename big file (ms)"):
        out["rename big file (ms)"] = 1000 * timed("rename big file (ms)", os.rename, dst, work / "big-renamed.bin")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--tree", type=int, default=2_000)
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--random", type=int, default=2_000)
    ap.add_argument("--quick", action="store_true", help="1,000 files, 256 MiB")
    ap.add_argument("--only", action="append", help="measure only these mounts "
                    "(titans3-daemon, titans3-remote, s3fs-fuse, rclone mount)")
    ap.add_argument("--row", action="append", help="measure only rows whose name contains "
                    "this (repeatable), e.g. --row tar --row random")
    ap.add_argument("--profile", type=Path, metavar="DIR", help="py-spy record each titans3 "
                    "mount's serving process while it is measured (collapsed stacks in DIR)")
    ap.add_argument("--close-async", type=int, default=0, metavar="BYTES",
                    help="both titans3 mounts: close() of files up to BYTES returns before the "
                         "commit is durable (fuse_close_async / --close-async-max; default 0)")
    ap.add_argument("--write-behind", action="store_true",
                    help="the remote mount uploads parts while a file is written (titans3 mount "
                         "--write-behind; the daemon mount has no such setting: off)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.files, args.big_mib, args.random = 1000, 256, 500
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="fuse-bench-"))
    d = MountDaemon(tmp / "data", tmp / "titans3.log", mount_spec=BUCKET,
                    mountpoint=tmp / "titans3-daemon", name="bench",
                    env={"TITANS3_FUSE_CLOSE_ASYNC": str(args.close_async)})
    peers: list[Peer] = []
    remote = None
    results: dict[str, dict[str, float]] = {}
    try:
        args.tree_files = build_tree(tmp / "tree", args.tree)
        sh("tar", "-C", str(tmp / "tree"), "-cf", str(tmp / "tree.tar"), ".")
        big_file(tmp / "big.bin", args.big_mib * MiB)
        d.start()
        seed(d, args.files)
        s3 = s3_client(d)
        remote = RemoteMount(d.endpoint, BUCKET, tmp / "titans3-remote", tmp / "remote.log",
                             extra=("--close-async-max", str(args.close_async),
                                    *(("--write-behind",) if args.write_behind else ())))
        remote.start()
        peers = [start_s3fs(d.endpoint, d.credentials, tmp / "s3fs", tmp),
                 start_rclone(d.endpoint, d.credentials, tmp / "rclone", tmp)]
        mounts = [("titans3-daemon", d.mountpoint, d.proc.pid if d.proc else None),
                  ("titans3-remote", remote.mountpoint, remote.proc.pid if remote.proc else None)]
        mounts += [(p.name, p.mnt, None) for p in peers]
        for name, mnt, pid in mounts:
            if args.only and name not in args.only:
                continue
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            results[name] = measure(mnt, name.split()[0], tmp / "tree.tar", tmp / "big.bin",
                                    args, Profiler(args.profile, name, pid), s3)
    finally:
        for p in peers:
            p.stop()
        if remote is not None:
            remote.stop()
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()
    if args.json:
        print(json.dumps({"results": results, "load": [load_before, load_after]}, indent=2))
        return 0
    rows = list(next(iter(results.values())))
    names = list(results)
    print(f"close-async {args.close_async} bytes; load average before: {load_before[0]:.2f}, after: {load_after[0]:.2f} "
          f"({os.cpu_count()} cores); {args.files} files, {args.big_mib} MiB\n")
    print("| row | " + " | ".join(names) + " | ours / best peer |")
    print("|---|" + "---|" * (len(names) + 1))
    for row in rows:
        vals = [results[n][row] for n in names]
        peer = [results[n][row] for n in names if not n.startswith("titans3")]
        ours = results.get("titans3-daemon", {}).get(row)
        if ours is None or not peer:
            ratio = "-"
        elif row.endswith("(s)") or row.endswith("(ms)"):
            ratio = f"{min(peer) / ours:.1f}x"
        else:
            ratio = f"{ours / max(peer):.1f}x"
        cells = " | ".join(f"{v:.3f}" if v < 10 else f"{v:.0f}" for v in vals)
        print(f"| {row} | {cells} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
