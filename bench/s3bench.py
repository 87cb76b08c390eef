#!/usr/bin/env python3
"""S3 benchmark: a TitanS3 host against a peer S3 server on this machine, same client.

    .venv/bin/python bench/s3bench.py                # both servers, ~3-4 minutes
    .venv/bin/python bench/s3bench.py --quick        # ~1 minute
    .venv/bin/python bench/s3bench.py --only-peer    # rclone alone (no TitanS3 needed)
    .venv/bin/python bench/s3bench.py --cluster 4    # + a 4-host cluster on 127.0.0.1..4
    .venv/bin/python bench/s3bench.py --titans3-endpoint http://127.0.0.1:9000 \\
        --access-key AK --secret-key SK              # a TitanS3 that is already running

It starts (unless given endpoints) ``titans3 serve`` with 6 directory drives and
``rclone serve s3`` over a local directory, both on 127.0.0.1 and in temporary
directories, waits for them, and runs every row for each server in turn:

    4 KiB PUT ops/s, 4 KiB GET ops/s, 64 MiB PUT MB/s, 64 MiB GET MB/s
    (plus LIST pages/s, a 70/30 GET/PUT mix of 256 KiB, and the server's peak RSS
    while 64 clients PUT 64 MiB objects at once, sampled every 0.25 s)
    at concurrency 1 and 8 (threads, one client and one connection per thread)

``--cluster N`` adds a third column: N ``titans3 serve`` hosts forming one
cluster (``--peers``) on 127.0.0.1..N of this same machine, ``--cluster-drives``
each, EC ``--cluster-ec`` (default 4+2, the single host's scheme, so the two
columns differ by the peer hops, not by the code).  Client thread ``i`` talks to
host ``i mod N``; the server CPU column sums every host.  All hosts share the
machine's cores with each other and the client, so this measures the cost of
the cluster path, not the throughput of N machines.

Each measurement is bounded in time (--duration) and operation count.  Progress
goes to stderr; stdout gets a Markdown table (or JSON with --json).  Everything
it started is killed by pid (process group) and temporary directories are
removed on exit, on Ctrl-C and on SIGTERM; servers also get SIGTERM if this
process dies (PR_SET_PDEATHSIG).  The S3 clients live in bench/s3clients.py.
See bench/README.md for what the numbers mean.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import http.client
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling module below
from s3clients import CLIENTS, KiB, S3Failure  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
MiB = 1 << 20
GET_SMALL_KEYS = 64  # objects the small-GET rows cycle through
GET_LARGE_KEYS = 2
LIST_KEYS = 10_000  # the LIST row pages through a bucket prefix of this many keys
LIST_PAGE = 1_000
MIXED_SIZE = 256 * KiB
MIXED_GET_KEYS = 32


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------- servers
def _die_with_parent() -> None:
    # Runs in the child between fork and exec: SIGTERM it if this process dies.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port(addr: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


class Server:
    """A server process in its own process group; stop() ends exactly that group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name, self.log_path = name, log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 -- closed in stop()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        log(f"[{name}] started pid {self.proc.pid}: {' '.join(argv)}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            pgid = self.proc.pid  # start_new_session: the group id is the child's pid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            log(f"[{self.name}] stopped pid {self.proc.pid} (exit {self.proc.returncode})")
        # also reap anything the server left in its group after it exited itself
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _group_stats(pgids: set[int]) -> Iterator[tuple[str, list[bytes]]]:
    """(pid, /proc/PID/stat fields from field 3 on) of every live process in ``pgids``."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is field 3 (state): pgrp is field 5
        if int(fields[2]) in pgids:
            yield entry.name, fields


def group_cpu_seconds(pgid: int | list[int]) -> float:
    """utime + stime of every live process in process group(s) ``pgid`` (Linux /proc)."""
    pgids = {pgid} if isinstance(pgid, int) else set(pgid)
    # utime/stime are fields 14/15
    total = sum(int(f[11]) + int(f[12]) for _, f in _group_stats(pgids))
    return total / os.sysconf("SC_CLK_TCK")


def group_rss_bytes(pgids: list[int]) -> int:
    """Resident set size summed over every live process in the process groups (Linux /proc)."""
    total = 0
    for pid, _ in _group_stats(set(pgids)):
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended between the two reads
    return total * os.sysconf("SC_PAGE_SIZE")


class RssSampler:
    """Samples a server's RSS every ``every`` seconds while a phase runs.

    The RSS row's promise is "bounded and flat over time": the report keeps the
    peak and the peak of the first and last third of the samples, so growth
    across the run (a leak, an unbounded buffer) shows as last > first.
    """

    def __init__(self, pgids: list[int], every: float = 0.25) -> None:
        self.pgids, self.every = pgids, every
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return self.summary()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(group_rss_bytes(self.pgids))
            self._stop.wait(self.every)

    def summary(self) -> dict:
        s = self.samples or [0]
        third = max(1, len(s) // 3)
        return {"rss_peak_mib": round(max(s) / MiB, 1), "rss_first_third_peak_mib":
                round(max(s[:third]) / MiB, 1), "rss_last_third_peak_mib":
                round(max(s[-third:]) / MiB, 1), "rss_samples": len(s)}


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_ready(endpoint: str, server: Server | None, timeout: float) -> None:
    """Until the endpoint answers HTTP at all (any status: unauthenticated is fine)."""
    url = urllib.parse.urlsplit(endpoint)
    deadline = time.monotonic() + timeout
    while True:
        if server is not None and server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.proc.returncode}:\n{server.tail()}"
            )
        try:
            conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=2)
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                tail = server.tail() if server else ""
                raise RuntimeError(
                    f"{endpoint} not answering after {timeout:.0f}s\n{tail}"
                ) from None
            time.sleep(0.2)


def new_credentials() -> tuple[str, str]:
    """A fresh access key / secret pair (rclone refuses very short keys)."""
    access = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(20))
    return access, secrets.token_urlsafe(30)[:40]


# ---------------------------------------------------------------------- phases
@dataclass
class Target:
    name: str
    label: str
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    endpoints: list[str] = field(default_factory=list)  # a cluster: thread i uses i mod N

    def endpoint_for(self, tid: int) -> str:
        return self.endpoints[tid % len(self.endpoints)] if self.endpoints else self.endpoint


@dataclass
class Payloads:
    small: bytes
    small_sha: str
    large: bytes
    large_sha: str
    medium: bytes = b""
    medium_sha: str = ""


@dataclass
class Phase:
    row: str  # table row label
    op: str  # one of ROWS
    concurrency: int
    unit: str  # "ops/s" or "MB/s"


@dataclass
class Result:
    ops: int = 0
    errors: int = 0
    bytes: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_error: str = ""
    client_cpu: float = 0.0  # CPU seconds of this process (all client threads)
    server_cpu: float | None = None  # CPU seconds of the server's process group
    rss: dict = field(default_factory=dict)  # the RSS row's RssSampler.summary()

    def value(self, unit: str) -> float | None:
        if unit == "MiB RSS":
            return self.rss.get("rss_peak_mib") if self.ops else None
        if self.ops == 0 or self.seconds <= 0:
            return None
        return self.bytes / self.seconds / 1e6 if unit == "MB/s" else self.ops / self.seconds

    def summary(self, unit: str) -> dict:
        lat = sorted(self.latencies)

        def pct(q: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 3) if lat else None

        return {
            "value": self.value(unit),
            "unit": unit,
            "ops": self.ops,
            "errors": self.errors,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "mean_ms": round(statistics.fmean(lat) * 1000, 3) if lat else None,
            "client_cpu_pct": self._pct_of_core(self.client_cpu),
            "server_cpu_pct": self._pct_of_core(self.server_cpu),
            "server_cpu_ms_per_op": (
                round(1000 * self.server_cpu / self.ops, 3)
                if self.server_cpu is not None and self.ops else None
            ),
            "first_error": self.first_error or None,
            **self.rss,
        }

    def _pct_of_core(self, cpu: float | None) -> float | None:
        if cpu is None or self.seconds <= 0:
            return None
        return round(100 * cpu / self.seconds, 1)


def make_op(phase: Phase, t: Target, p: Payloads) -> Callable[[object, int, int, memoryview], int]:
    """The operation of a phase: (client, thread, op index, sink) -> bytes moved."""
    b = t.bucket
    if phase.op == "small_put":

        def op(c, tid, i, sink):
            c.put(b, f"put4k/c{phase.concurrency}/{tid}/{i}", p.small, p.small_sha)
            return len(p.small)
    elif phase.op == "small_get":

        def op(c, tid, i, sink):
            data, n = c.get(b, f"get4k/{(tid * 7 + i) % GET_SMALL_KEYS}")
            if data != p.small:
                raise S3Failure(f"GET returned {n} wrong bytes")
            return n
    elif phase.op == "list":

        def op(c, tid, i, sink):
            page = (tid * 3 + i) % (LIST_KEYS // LIST_PAGE)
            after = f"list/{page * LIST_PAGE - 1:08d}" if page else ""
            n = c.list_page(b, "list/", after, LIST_PAGE)
            if n != LIST_PAGE:
                raise S3Failure(f"LIST page {page} held {n} keys, expected {LIST_PAGE}")
            return 0
    elif phase.op == "mixed":

        def op(c, tid, i, sink):
            if (i * 7 + tid) % 10 < 3:  # 30 % PUTs, overwriting a bounded set of keys
                c.put(b, f"mix/put/{tid}/{i % 8}", p.medium, p.medium_sha)
                return len(p.medium)
            data, n = c.get(b, f"mix/get/{(tid * 5 + i) % MIXED_GET_KEYS}")
            if data != p.medium:
                raise S3Failure(f"GET returned {n} wrong bytes")
            return n
    elif phase.op in ("large_put", "rss_put"):

        def op(c, tid, i, sink):
            c.put(b, f"put64m/{tid}", p.large, p.large_sha)  # overwrite: bounded disk use
            return len(p.large)
    else:

        def op(c, tid, i, sink):
            _, n = c.get(b, f"get64m/{(tid + i) % GET_LARGE_KEYS}", sink)
            if n != len(p.large):
                raise S3Failure(f"GET returned {n} bytes, expected {len(p.large)}")
            return n

    return op


def run_phase(
    phase: Phase,
    t: Target,
    p: Payloads,
    client_cls,
    duration: float,
    max_ops: int,
    server_pgid: int | list[int] | None = None,
) -> Result:
    """Run one measurement: ``concurrency`` threads until ``duration`` or ``max_ops``."""
    op = make_op(phase, t, p)
    c = phase.concurrency
    clients = [client_cls(t.endpoint_for(i), t.access_key, t.secret_key) for i in range(c)]
    result = Result()
    lock = threading.Lock()
    timing = {"start": 0.0, "deadline": 0.0, "client_cpu": 0.0, "server_cpu": 0.0}

    def start_clock() -> None:  # runs once, before any thread passes the barrier
        timing["client_cpu"] = client_cpu_seconds()
        if server_pgid is not None:
            timing["server_cpu"] = group_cpu_seconds(server_pgid)
        timing["start"] = time.perf_counter()
        timing["deadline"] = timing["start"] + duration

    start_gate = threading.Barrier(c + 1, action=start_clock)
    ends: list[float] = []
    claimed = [0]
    stop = threading.Event()

    def worker(tid: int) -> None:
        client = clients[tid]
        sink = memoryview(bytearray(MiB))
        with contextlib.suppress(Exception):
            op(client, tid, -1 - tid, sink)  # warm-up: connect, first-touch; not counted
        try:
            start_gate.wait()
        except threading.BrokenBarrierError:
            return
        lat: list[float] = []
        ops = moved = errors = 0
        first_error = ""
        while not stop.is_set() and time.perf_counter() < timing["deadline"]:
            with lock:
                if claimed[0] >= max_ops:
                    break
                i = claimed[0]
                claimed[0] += 1
            t0 = time.perf_counter()
            try:
                moved += op(client, tid, i, sink)
            except Exception as exc:  # counted and reported, never fatal
                errors += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"[:300]
                client.close()
                continue
            lat.append(time.perf_counter() - t0)
            ops += 1
        with lock:
            ends.append(time.perf_counter())
            result.ops += ops
            result.bytes += moved
            result.errors += errors
            result.latencies += lat
            result.first_error = result.first_error or first_error

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(c)]
    for th in threads:
        th.start()
    sampler = None
    if phase.op == "rss_put" and server_pgid is not None:  # includes the warm-up PUTs: also load
        sampler = RssSampler([server_pgid] if isinstance(server_pgid, int) else server_pgid)
        sampler.start()
    try:
        # the clock starts once every worker has connected and warmed up
        try:
            start_gate.wait(timeout=120)
        except threading.BrokenBarrierError:
            raise RuntimeError("workers did not start within 120 s") from None
        for th in threads:
            while th.is_alive():
                th.join(timeout=0.2)  # short joins keep Ctrl-C responsive
    finally:
        stop.set()
        if sampler is not None:
            result.rss = sampler.stop()
        for client in clients:
            with contextlib.suppress(Exception):
                client.close()
    result.seconds = (max(ends) if ends else time.perf_counter()) - timing["start"]
    result.client_cpu = client_cpu_seconds() - timing["client_cpu"]
    if server_pgid is not None:
        result.server_cpu = group_cpu_seconds(server_pgid) - timing["server_cpu"]
    return result


ROWS = ("small_put", "small_get", "list", "mixed", "large_put", "large_get", "rss_put")
RSS_CONCURRENCY = 64  # the RSS row: 64 concurrent large PUTs, whatever --concurrency says


def phases(
    concurrencies: list[int], small: int, large: int, rows: tuple[str, ...] = ROWS
) -> list[Phase]:
    s, lg = human(small), human(large)
    out = []
    for op, size_label, verb, unit in (
        ("small_put", s, "PUT", "ops/s"),
        ("small_get", s, "GET", "ops/s"),
        ("list", f"LIST {LIST_PAGE:,}-key pages of {LIST_KEYS:,} keys", "", "pages/s"),
        ("mixed", human(MIXED_SIZE), "70/30 GET/PUT", "ops/s"),
        ("large_put", lg, "PUT", "MB/s"),
        ("large_get", lg, "GET", "MB/s"),
        ("rss_put", lg, "PUT", "MiB server RSS (peak)"),
    ):
        if op not in rows:
            continue
        if op == "rss_put":
            out.append(Phase(f"server RSS (MiB, peak) during {RSS_CONCURRENCY} concurrent {lg} PUTs",
                             op, RSS_CONCURRENCY, "MiB RSS"))
            continue
        for c in concurrencies:
            label = f"{size_label} {verb} {unit}, c={c}".replace("  ", " ")
            out.append(Phase(label, op, c, unit))
    return out


def human(n: int) -> str:
    return f"{n // MiB} MiB" if n % MiB == 0 else f"{n // KiB} KiB" if n % KiB == 0 else f"{n} B"


# ------------------------------------------------------------------------ main
def prepare(t: Target, p: Payloads, client_cls, rows: tuple[str, ...] = ROWS) -> None:
    """Create the bucket and the objects the GET rows read (not timed)."""
    client = client_cls(t.endpoint, t.access_key, t.secret_key)
    try:
        deadline = time.monotonic() + 30
        while True:  # a daemon may answer HTTP before its drives are ready
            try:
                client.create_bucket(t.bucket)
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{t.label}: cannot create bucket: {exc}") from exc
                client.close()
                time.sleep(0.5)
        for i in range(GET_SMALL_KEYS):
            client.put(t.bucket, f"get4k/{i}", p.small, p.small_sha)
        if "mixed" in rows:
            for i in range(MIXED_GET_KEYS):
                client.put(t.bucket, f"mix/get/{i}", p.medium, p.medium_sha)
        if "list" in rows:
            fill_listing(t, client_cls)
        if "large_get" not in rows:
            return
        for i in range(GET_LARGE_KEYS):
            client.put(t.bucket, f"get64m/{i}", p.large, p.large_sha)
        data, _ = client.get(t.bucket, "get64m/0")
        if data != p.large:
            raise RuntimeError(f"{t.label}: large object read back differs")
    finally:
        client.close()


def fill_listing(t: Target, client_cls, threads: int = 16) -> None:
    """LIST_KEYS one-byte objects under list/ (not timed; 16 writers)."""
    t0 = time.monotonic()
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        c = client_cls(t.endpoint, t.access_key, t.secret_key)
        try:
            for i in range(w, LIST_KEYS, threads):
                c.put(t.bucket, f"list/{i:08d}", b"x", hashlib.sha256(b"x").hexdigest())
        except BaseException as e:  # noqa: BLE001 -- re-raised below
            errors.append(e)
        finally:
            c.close()

    ths = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    if errors:
        raise RuntimeError(f"{t.label}: filling the listing failed: {errors[0]}")
    log(f"[{t.name}] {LIST_KEYS:,} keys for the LIST row in {time.monotonic() - t0:.1f} s")


def start_titans3(
    tmp: Path, access: str, secret: str, *, binary: Path = BIN / "titans3", name: str = "titans3"
) -> tuple[Server, str]:
    port, peer_port, web_port = free_port(), free_port(), free_port()
    env = dict(os.environ, TITANS3_ROOT_ACCESS_KEY=access, TITANS3_ROOT_SECRET_KEY=secret)
    argv = [
        str(binary), "serve",
        "--data", str(tmp / name), "--drives", "6",
        "--listen", f"127.0.0.1:{port}",
        "--peer-listen", f"127.0.0.1:{peer_port}",
        "--web-listen", f"127.0.0.1:{web_port}",
    ]  # fmt: skip
    return Server(name, argv, env, tmp / f"{name}.log"), f"http://127.0.0.1:{port}"


def start_cluster(
    tmp: Path, access: str, secret: str, hosts: int, drives: int, ec: str
) -> list[tuple[Server, str]]:
    """``hosts`` daemons on 127.0.0.1..hosts forming one cluster; (server, S3 URL) each."""
    addrs = [f"127.0.0.{i + 1}" for i in range(hosts)]
    ports = [(free_port(a), free_port(a), free_port(a)) for a in addrs]
    peers = ",".join(f"{a}:{p[1]}" for a, p in zip(addrs, ports, strict=True))
    env = dict(os.environ, TITANS3_ROOT_ACCESS_KEY=access, TITANS3_ROOT_SECRET_KEY=secret,
               TITANS3_CLUSTER_SECRET=secrets.token_urlsafe(24))  # fmt: skip
    out = []
    for i, (a, (port, peer_port, web_port)) in enumerate(zip(addrs, ports, strict=True)):
        argv = [
            str(BIN / "titans3"), "serve",
            "--data", str(tmp / f"cluster-host{i + 1}"), "--drives", str(drives),
            "--listen", f"{a}:{port}",
            "--peer-listen", f"{a}:{peer_port}",
            "--web-listen", f"{a}:{web_port}",
            "--peers", peers,
            *(["--ec", ec] if ec else []),
        ]  # fmt: skip
        log_path = tmp / f"cluster-host{i + 1}.log"
        out.append((Server(f"cluster-host{i + 1}", argv, env, log_path), f"http://{a}:{port}"))
    return out


def start_rclone(tmp: Path, access: str, secret: str) -> tuple[Server, str]:
    port = free_port()
    (tmp / "peer").mkdir()
    argv = [
        str(BIN / "rclone"), "serve", "s3",
        "--addr", f"127.0.0.1:{port}",
        "--auth-key", f"{access},{secret}",
        "--config", str(tmp / "rclone.conf"),  # never the user's rclone config
        "--log-level", "NOTICE",
        f":local:{tmp / 'peer'}",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
    return Server("peer", argv, env, tmp / "rclone.log"), f"http://127.0.0.1:{port}"


def markdown(report: dict) -> str:
    names = [t["name"] for t in report["targets"]]
    cols = ["titans3", "peer"]
    head = "| row | TitanS3 | peer (rclone serve s3) | ratio TitanS3/peer |"
    sep = "|---|---:|---:|---:|"
    baseline = next((t for t in report["targets"] if t["name"] == "baseline"), None)
    if baseline is not None:  # another build of TitanS3, measured in the same run
        cols.append("baseline")
        head += f" {baseline['label']} | ratio TitanS3/baseline |"
        sep += "---:|---:|"
    cluster = next((t for t in report["targets"] if t["name"] == "cluster"), None)
    if cluster is not None:  # the cluster columns go after the single-host ones
        cols.append("cluster")
        head += f" {cluster['label']} | ratio cluster/TitanS3 |"
        sep += "---:|---:|"
    lines = [head, sep]
    for row in report["rows"]:
        vals = [row["results"].get(n, {}).get("value") for n in cols]
        cells = []
        for n, v in zip(cols, vals, strict=True):
            errs = row["results"].get(n, {}).get("errors", 0)
            cell = ("—" if n not in names else "failed" if v is None
                    else f"{v:,.0f}" if v >= 20 else f"{v:,.1f}")  # LIST: a few pages/s
            cells.append(cell + (f" ({errs} err)" if errs else ""))
        ratio = f"{vals[0] / vals[1]:.2f}" if vals[0] and vals[1] else "—"
        line = f"| {row['row']} | {cells[0]} | {cells[1]} | {ratio} |"
        at = 2
        if baseline is not None:
            bratio = f"{vals[0] / vals[at]:.2f}" if vals[0] and vals[at] else "—"
            line += f" {cells[at]} | {bratio} |"
            at += 1
        if cluster is not None:
            cratio = f"{vals[at] / vals[0]:.2f}" if vals[0] and vals[at] else "—"
            line += f" {cells[at]} | {cratio} |"
        lines.append(line)
    return "\n".join(lines)


def cpu_table(report: dict) -> str:
    """Server CPU per unit of work: robust to a busy machine, where ops/s is not."""
    names = [t["name"] for t in report["targets"]]
    labels = {t["name"]: t["label"] for t in report["targets"]}
    lines = ["| row (server CPU) | " + " | ".join(labels[n] for n in names) + " |",
             "|---|" + "---:|" * len(names)]
    for row in report["rows"]:
        if row["unit"] == "MiB RSS":
            continue  # not a rate: its own row in the main table says it all
        per_op = row["unit"] != "MB/s"  # ops/s or pages/s
        cells = []
        for n in names:
            r = row["results"].get(n, {})
            value, cpu = r.get("value"), r.get("server_cpu_pct")
            if not value or cpu is None:
                cells.append("—")
            elif per_op:
                unit = "ms/page" if row["unit"] == "pages/s" else "ms/op"
                cells.append(f"{10 * cpu / value:.2f} {unit}")  # (cpu% / 100) / (ops/s) * 1000
            else:
                cells.append(f"{10 * cpu / value:.1f} s/GB")  # (cpu% / 100) / (MB/s) * 1000
        lines.append(f"| {row['row']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="short run (~1 minute): 2 s per row")
    ap.add_argument("--duration", type=float, help="seconds per row and server (default 7)")
    ap.add_argument("--concurrency", default="1,8", help="comma-separated thread counts")
    ap.add_argument("--rows", default=",".join(ROWS),
                    help=f"comma-separated rows to run (of {','.join(ROWS)})")  # fmt: skip
    ap.add_argument("--client", choices=sorted(CLIENTS), default="raw", help="S3 client")
    ap.add_argument("--small-size", type=int, default=4 * KiB)
    ap.add_argument("--large-size", type=int, default=64 * MiB)
    ap.add_argument("--only-peer", action="store_true", help="benchmark the peer server only")
    ap.add_argument("--only-titans3", action="store_true", help="benchmark TitanS3 only")
    ap.add_argument("--titans3-endpoint", metavar="URL", help="use a running TitanS3 host")
    ap.add_argument("--peer-endpoint", metavar="URL", help="use a running peer S3 server")
    ap.add_argument(
        "--access-key",
        default=os.environ.get("AWS_ACCESS_KEY_ID"),
        help="credentials for --*-endpoint servers (default $AWS_ACCESS_KEY_ID)",
    )
    ap.add_argument("--secret-key", default=os.environ.get("AWS_SECRET_ACCESS_KEY"))
    ap.add_argument("--tmpdir", help="where temporary data directories go (default $TMPDIR)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    ap.add_argument("--baseline", metavar="BIN",
                    help="also run this titans3 executable (another checkout's .venv/bin/titans3) "
                         "as a 'baseline' column: before/after in one run")
    ap.add_argument("--cluster", type=int, default=0, metavar="N",
                    help="also benchmark an N-host cluster on 127.0.0.1..N (e.g. 4)")
    ap.add_argument("--cluster-drives", type=int, default=2, metavar="D", help="drives per host")
    ap.add_argument("--cluster-ec", default="4+2", metavar="K+M",
                    help="the cluster's EC scheme ('' = by drive count; default 4+2 as single-host)")
    opts = ap.parse_args(argv)  # fmt: skip
    if opts.duration is None:
        opts.duration = 2.0 if opts.quick else 7.0
    opts.rows = tuple(r.strip() for r in opts.rows.split(",") if r.strip())
    if unknown := set(opts.rows) - set(ROWS):
        ap.error(f"--rows: unknown {', '.join(sorted(unknown))}")
    if opts.cluster and not 2 <= opts.cluster <= 16:
        ap.error("--cluster: 2..16 hosts")
    if opts.only_peer and opts.only_titans3:
        ap.error("--only-peer and --only-titans3 exclude each other")
    if (opts.titans3_endpoint or opts.peer_endpoint) and not (opts.access_key and opts.secret_key):
        ap.error("an external endpoint needs --access-key and --secret-key")
    for url in (opts.titans3_endpoint, opts.peer_endpoint):
        host = urllib.parse.urlsplit(url).hostname if url else "127.0.0.1"
        if not (host or "").startswith("127."):
            ap.error(f"only 127.0.0.x endpoints are allowed, not {url}")
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    # SIGTERM/SIGHUP take the same cleanup path as Ctrl-C.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)

    client_cls = CLIENTS[opts.client]
    concurrencies = [int(x) for x in opts.concurrency.split(",")]
    small_max, large_max = (5_000, 24) if opts.quick else (40_000, 128)
    rnd = os.urandom(opts.large_size)
    payloads = Payloads(
        small=rnd[: opts.small_size],
        small_sha=hashlib.sha256(rnd[: opts.small_size]).hexdigest(),
        large=rnd,
        large_sha=hashlib.sha256(rnd).hexdigest(),
        medium=(med := rnd[:MIXED_SIZE] if len(rnd) >= MIXED_SIZE else os.urandom(MIXED_SIZE)),
        medium_sha=hashlib.sha256(med).hexdigest(),
    )
    run_id = secrets.token_hex(3)
    servers: list[Server] = []
    tmp = Path(tempfile.mkdtemp(prefix="titans3-s3bench-", dir=opts.tmpdir))

    def cleanup() -> None:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a 2nd Ctrl-C must not skip it
        try:
            for server in reversed(servers):
                server.stop()
            shutil.rmtree(tmp, ignore_errors=True)
            log(f"removed {tmp}")
        finally:
            signal.signal(signal.SIGINT, previous)

    try:
        targets: list[Target] = []
        started: dict[str, Server] = {}
        if not opts.only_peer:
            if opts.titans3_endpoint:
                t = Target("titans3", "TitanS3", opts.titans3_endpoint, opts.access_key,
                           opts.secret_key, f"s3bench-{run_id}")  # fmt: skip
            else:
                access, secret = new_credentials()
                server, url = start_titans3(tmp, access, secret)
                servers.append(server)
                started["titans3"] = server
                t = Target("titans3", "TitanS3", url, access, secret, "s3bench")
            targets.append(t)
        if not opts.only_titans3:
            if opts.peer_endpoint:
                t = Target("peer", "peer", opts.peer_endpoint, opts.access_key,
                           opts.secret_key, f"s3bench-{run_id}")  # fmt: skip
            else:
                access, secret = new_credentials()
                server, url = start_rclone(tmp, access, secret)
                servers.append(server)
                started["peer"] = server
                t = Target("peer", "peer (rclone)", url, access, secret, "s3bench")
            targets.append(t)
        if opts.baseline:
            access, secret = new_credentials()
            server, url = start_titans3(tmp, access, secret, binary=Path(opts.baseline),
                                        name="baseline")  # fmt: skip
            servers.append(server)
            started["baseline"] = server
            targets.append(Target("baseline", "baseline build", url, access, secret, "s3bench"))
        pgids = {name: [srv.proc.pid] for name, srv in started.items()}
        if opts.cluster:
            access, secret = new_credentials()
            hosts = start_cluster(tmp, access, secret, opts.cluster, opts.cluster_drives,
                                  opts.cluster_ec)  # fmt: skip
            servers.extend(srv for srv, _ in hosts)
            pgids["cluster"] = [srv.proc.pid for srv, _ in hosts]
            urls = [url for _, url in hosts]
            for srv, url in hosts:  # together: each host waits for all the others
                wait_ready(url, srv, timeout=120)
            targets.append(Target("cluster", f"cluster ({opts.cluster} hosts)", urls[0], access,
                                  secret, "s3bench", endpoints=urls))  # fmt: skip

        for t in targets:
            wait_ready(t.endpoint, started.get(t.name), timeout=90)
            log(f"[{t.name}] ready at {t.endpoint}; preparing bucket {t.bucket}")
            prepare(t, payloads, client_cls, opts.rows)

        rows = []
        for phase in phases(concurrencies, opts.small_size, opts.large_size, opts.rows):
            row = {"row": phase.row, "op": phase.op, "concurrency": phase.concurrency,
                   "unit": phase.unit, "results": {}}  # fmt: skip
            for t in targets:
                max_ops = (large_max if phase.op.startswith("large")
                           else RSS_CONCURRENCY if phase.op == "rss_put" else small_max)
                pgid = pgids.get(t.name)
                r = run_phase(phase, t, payloads, client_cls, opts.duration, max_ops, pgid)
                s = r.summary(phase.unit)
                row["results"][t.name] = s
                value = "failed" if s["value"] is None else f"{s['value']:,.1f} {phase.unit}"
                log(
                    f"[{t.name}] {phase.row:26} {value:>16}  ops {r.ops:6}  "
                    f"p50 {s['p50_ms']} ms  p99 {s['p99_ms']} ms  "
                    f"cpu% client {s['client_cpu_pct']} server {s['server_cpu_pct']} "
                    f"({s['server_cpu_ms_per_op']} ms/op)"
                    + (f"  errors {r.errors}: {r.first_error}" if r.errors else "")
                )
            rows.append(row)
    except KeyboardInterrupt:
        log("interrupted")
        cleanup()
        return 130
    except Exception:
        for server in servers:
            log(f"--- {server.name} log tail ---\n{server.tail()}")
        cleanup()
        raise
    cleanup()

    report = {
        "client": opts.client,
        "client_note": (
            "raw SigV4 over http.client, one keep-alive connection per thread"
            if opts.client == "raw"
            else "boto3, one client per thread, path-style, SDK default checksums"
        ),
        "duration_s": opts.duration,
        "cpus": os.cpu_count(),
        "small_size": opts.small_size,
        "large_size": opts.large_size,
        "targets": [{"name": t.name, "label": t.label, "endpoint": t.endpoint,
                     **({"endpoints": t.endpoints} if t.endpoints else {})} for t in targets],
        "rows": rows,
    }
    if opts.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"\nS3 bench: {report['client_note']}; {opts.duration:g} s per cell; "
            f"{os.cpu_count()} CPUs shared by client and servers.\n"
        )
        print(markdown(report))
        print()
        print(cpu_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
