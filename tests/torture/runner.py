"""Run torture rounds: workload + fault, then the checker. CLI for long runs.

Theory of operation
-------------------
One run = one topology started once, then ``rounds`` rounds (or rounds until
``minutes`` are up).  A round:

1. maybe return a drive pulled in an earlier round;
2. draw a fault (:mod:`tests.torture.faults`);
3. start the workers (``workers`` threads, 3-9 operations each) and perform
   the fault while they run (kills stop them: every request in flight is
   MAYBE in the model); restart what was killed;
4. ``Checker.check`` -- deep (every version by id) after a fault;
5. every ``gc_every`` rounds and at the end: return the drive, wait for every
   drive online, ``Checker.gc_check``.

Everything random comes from the seed (the schedule, each worker's requests
and bodies, kill delays); thread interleaving and the exact moment a SIGKILL
lands do not, so a rerun with the same seed repeats the schedule, not the
race.  The seed is printed first; a failure names the rerun command and
where the per-request log (``ops.jsonl``) and daemon logs are.

``python -m tests.torture.runner --topology single|cluster|both
[--rounds N | --minutes M] [--seed S] [--workdir DIR]``; ``scripts/torture.sh``
wraps it (``--long`` = 30 minutes, both topologies).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.torture import hosts
from tests.torture.checker import Checker, wait_whole
from tests.torture.faults import Faults
from tests.torture.hosts import Cluster, Node, SingleHost, Topology
from tests.torture.model import Violation
from tests.torture.workload import PLAIN, VERSIONED, MiB, OpLog, Worker, World

COMMIT_WINDOW = float(hosts.ENV["TITANS3_COMMIT_WINDOW"])


@dataclass
class Report:
    topology: str
    seed: int
    rounds: int = 0
    seconds: float = 0.0
    faults: dict[str, int] = field(default_factory=dict)
    ops: dict[str, dict[str, int]] = field(default_factory=dict)
    acked: int = 0
    maybe: int = 0
    failed: int = 0
    bytes_acked: int = 0
    checks: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    lost: int = 0  # violations: must be 0
    violation: str = ""

    def summary(self) -> str:
        f = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        c = self.checks
        return (f"torture {self.topology} seed {self.seed}: {self.rounds} rounds in "
                f"{self.seconds:.0f}s; faults: {f}; requests acked {self.acked} "
                f"({self.bytes_acked / MiB:.0f} MiB), maybe {self.maybe}, refused {self.failed}; "
                f"checked {c.get('keys_read', 0)} reads ({c.get('bytes_verified', 0) / MiB:.0f} MiB), "
                f"{c.get('versions_verified', 0)} versions by id, {c.get('listings', 0)} listings, "
                f"{c.get('gc_checks', 0)} GC checks; lost {self.lost}")


class Run:
    def __init__(self, topo: Topology, seed: int, workdir: Path, *, workers: int = 3,
                 gc_every: int = 8) -> None:
        self.topo = topo
        self.seed = seed
        self.rng = random.Random(seed)
        self.workdir = workdir
        self.workers_n = workers
        self.gc_every = gc_every
        self.world = World(topo, OpLog(workdir / "ops.jsonl"))
        self.faults = Faults(topo, random.Random(seed + 1))
        self.checker = Checker(self.world, random.Random(seed + 2))
        self.report = Report(topo.name, seed)
        self.events: list[str] = []

    # ------------------------------------------------------------ setup
    def setup(self) -> None:
        node = self.topo.live()[0]
        s3 = self.topo.client(node)
        s3.create_bucket(Bucket=PLAIN)
        s3.create_bucket(Bucket=VERSIONED)
        s3.put_bucket_versioning(Bucket=VERSIONED, VersioningConfiguration={"Status": "Enabled"})

    def event(self, msg: str) -> None:
        line = f"[{self.topo.name} r{self.world.round}] {msg}"
        self.events.append(line)
        self.world.log.write(event=msg, r=self.world.round)

    # ------------------------------------------------------------ rounds
    def round(self, n: int) -> None:
        self.world.round = n
        rng = self.rng
        if self.faults.pulled is not None and rng.random() < 0.5:
            self._put_back()
        kind = self.faults.draw()
        workers = [Worker(self.world, w, self.seed * 100_003 + n) for w in range(self.workers_n)]
        stop = threading.Event()
        errors: list[BaseException] = []

        def work(wk: Worker) -> None:
            try:
                wk.run(rng_ops[wk.wid], stop)
            except BaseException as e:  # noqa: BLE001 -- re-raised below, after the join
                errors.append(e)

        rng_ops = {w.wid: rng.randint(3, 9) for w in workers}
        threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in workers]
        for t in threads:
            t.start()
        killed: list[Node] = []
        if kind == "kill":
            time.sleep(rng.uniform(0.05, 2.0))
            victim = self.faults.victim_node()
            self._kill(victim, stop, killed)
        elif kind == "kill_commit":
            self._kill_commit(workers[0], stop, killed)
        elif kind == "kill_complete":
            self._kill_complete(workers[0], stop, killed)
        elif kind == "pull":
            time.sleep(rng.uniform(0.05, 1.5))
            ref = self.faults.pull()
            self.event(f"pulled {ref}")
        elif kind == "replace":
            victim = self.faults.victim_node()
            self._kill(victim, stop, killed)
            ref = self.rng.choice([d for d in self.topo.drives if d.node is victim])
            self.faults.replace(ref, n)
            self.event(f"replaced {ref} with a blank directory while {victim.name} was down")
        for t in threads:
            t.join(600)
            if t.is_alive():
                raise AssertionError("a worker hung for 600 s")
        for node in killed:
            if self.faults.pulled is not None and self.faults.pulled.node is node:
                self._put_back()  # see faults.py: never restart with a drive out
            self.topo.restart(node)
            self.event(f"restarted {node.name}")
        if kind == "replace":
            self.wait_refilled()
        if errors:
            raise errors[0]
        for w in workers:
            if w.violations:
                raise w.violations[0]
        if kind == "flip":
            done = self.faults.flip(rng.randint(1, 3))
            self.event(f"flipped {done}")
            if not done:
                kind = "none"
        self.faults.note(kind)
        self.checker.check(deep=kind != "none")

    def _kill(self, node: Node, stop: threading.Event, killed: list[Node]) -> None:
        if self.topo.name == "single":
            stop.set()  # nothing to talk to: let the workers stop
        self.topo.kill(node)
        killed.append(node)
        self.event(f"SIGKILL {node.name}")

    def _kill_commit(self, wk: Worker, stop: threading.Event, killed: list[Node]) -> None:
        delay = self.rng.uniform(0.0, 0.015)
        size = self.rng.choice([70_000, 900_000, 3 * MiB, 9 * MiB + 7, 16 * MiB])
        victim_worker = Worker(self.world, wk.wid + 50, self.seed * 7 + self.world.round)

        def fire() -> None:
            time.sleep(delay)
            node = victim_worker.node
            assert node is not None
            self._kill(node, stop, killed)

        victim_worker.raw_put(fire, size)
        self.event(f"kill {delay * 1000:.1f} ms after the last byte of a {size} B PUT")

    def _kill_complete(self, wk: Worker, stop: threading.Event, killed: list[Node]) -> None:
        delay = self.rng.uniform(0.0, 0.015)
        victim_worker = Worker(self.world, wk.wid + 60, self.seed * 11 + self.world.round)
        fired = threading.Event()

        def hook(**kw: Any) -> None:
            if fired.is_set():
                return
            fired.set()
            node = victim_worker.node
            assert node is not None
            threading.Timer(delay, self._kill, (node, stop, killed)).start()

        client_hook = ("before-send.s3.CompleteMultipartUpload", hook)
        registered = []
        for node in self.topo.live():
            c = self.topo.client(node)
            c.meta.events.register(*client_hook)
            registered.append(c)
        try:
            victim_worker.op_mpu(fate=1.0)  # always complete
        finally:
            for c in registered:
                c.meta.events.unregister(*client_hook)
        deadline = time.monotonic() + 5
        while fired.is_set() and not killed and time.monotonic() < deadline:
            time.sleep(0.01)
        self.event(f"kill {delay * 1000:.1f} ms after CompleteMultipartUpload was sent"
                   + ("" if fired.is_set() else " (not reached: the upload failed earlier)"))

    def _put_back(self) -> None:
        ref = self.faults.put_back()
        if ref is not None:
            self.event(f"returned {ref}")

    def wait_refilled(self, timeout: float = 180.0) -> None:
        """Until no node has a drive marked healing (the refill worker is done)."""
        deadline = time.monotonic() + timeout
        wait_whole(self.topo)
        while True:
            healing = {n.name: self.topo.admin(n, "GET", "repair/status").get("healing")
                       for n in self.topo.nodes}
            if not any(healing.values()):
                self.event("refill of the blank drive done")
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"refill not done after {timeout:.0f}s: {healing}")
            time.sleep(0.3)

    def make_whole(self) -> None:
        self._put_back()
        for node in self.topo.nodes:
            if not node.up:
                self.topo.restart(node)
        wait_whole(self.topo)

    # -------------------------------------------------------------- run
    def run(self, *, rounds: int | None = None, minutes: float | None = None) -> Report:
        t0 = time.monotonic()
        n = 0
        try:
            with self.topo.running():
                self.setup()
                while True:
                    if rounds is not None and n >= rounds:
                        break
                    if minutes is not None and time.monotonic() - t0 > minutes * 60:
                        break
                    n += 1
                    self.round(n)
                    self.report.rounds = n
                    if n % self.gc_every == 0:
                        self.make_whole()
                        self.checker.check(deep=True)
                        self.checker.gc_check(COMMIT_WINDOW)
                self.make_whole()
                self.checker.check(deep=True)
                self.checker.gc_check(COMMIT_WINDOW)
        except Violation as v:
            self.report.lost += 1
            self.report.violation = str(v)
            raise
        finally:
            self.report.seconds = time.monotonic() - t0
            self._fill_report()
            self.world.log.close()
        return self.report

    def _fill_report(self) -> None:
        r, tally = self.report, self.world.tally
        r.faults = dict(self.faults.done)
        ops: dict[str, dict[str, int]] = {}
        for (op, outcome), count in sorted(tally.ops.items()):
            ops.setdefault(op, {})[outcome] = count
        r.ops = ops
        r.acked, r.maybe, r.failed = tally.count("acked"), tally.count("maybe"), tally.count("failed")
        r.bytes_acked = tally.bytes_acked
        c = asdict(self.checker.tally)
        c["retried"] = dict(c["retried"])
        r.checks = c
        r.errors = dict(tally.errors)

    def rerun_hint(self, rounds: int | None, minutes: float | None) -> str:
        span = f"--rounds {rounds}" if rounds is not None else f"--minutes {minutes}"
        return (f"rerun: scripts/torture.sh --topology {self.topo.name} --seed {self.seed} {span}"
                f"   (per-request log: {self.workdir / 'ops.jsonl'}; daemon logs under "
                f"{self.workdir})")


def make_topology(name: str, base: Path) -> Topology:
    base.mkdir(parents=True, exist_ok=True)
    return SingleHost(base) if name == "single" else Cluster(base)


def run_one(name: str, seed: int, workdir: Path, *, rounds: int | None = None,
            minutes: float | None = None, out: Any = sys.stdout) -> Report:
    print(f"torture {name}: seed {seed} (TITANS3_TORTURE_SEED={seed} or --seed {seed} to rerun)",
          file=out, flush=True)
    run = Run(make_topology(name, workdir / name), seed, workdir / name)
    try:
        report = run.run(rounds=rounds, minutes=minutes)
    except BaseException:
        print("\n".join(run.events[-30:]), file=out)
        print(run.report.summary(), file=out)
        print(run.rerun_hint(rounds, minutes), file=out, flush=True)
        raise
    print(report.summary(), file=out, flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="torture", description=__doc__.split("\n")[0])
    p.add_argument("--topology", choices=["single", "cluster", "both"], default="both")
    p.add_argument("--rounds", type=int, help="rounds per topology (default 40 single, 12 cluster)")
    p.add_argument("--minutes", type=float, help="run for this long instead (split 2:1 when both)")
    p.add_argument("--seed", type=int, default=int(os.environ.get("TITANS3_TORTURE_SEED", "0"))
                   or random.randrange(1, 1 << 30))
    p.add_argument("--workdir", type=Path, help="keep everything here (default: a temp dir, "
                                                "removed after a passing run)")
    p.add_argument("--json", type=Path, help="append each topology's report as a JSON line")
    args = p.parse_args(argv)
    names = ["single", "cluster"] if args.topology == "both" else [args.topology]
    keep = args.workdir is not None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="titans3-torture-"))
    failed = False
    for name in names:
        minutes = None
        if args.minutes is not None:
            minutes = args.minutes * ((2 / 3 if name == "single" else 1 / 3) if len(names) == 2 else 1)
        rounds = args.rounds if args.rounds is not None else (
            None if minutes is not None else (40 if name == "single" else 12))
        try:
            report = run_one(name, args.seed, workdir, rounds=rounds, minutes=minutes)
        except (Violation, AssertionError) as e:
            print(f"FAILED: {e}", flush=True)
            failed = True
            keep = True
            report = None
        if args.json and report is not None:
            with open(args.json, "a") as f:
                f.write(json.dumps({"kind": "torture", **asdict(report)}) + "\n")
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"kept {workdir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
