"""Coverage-guided fuzzing of tests/fuzz/targets.py with atheris (libFuzzer).

``python -m tests.fuzz.run [--seconds S] [--target NAME ...] [--corpus DIR]``:
each target runs in its own process (libFuzzer owns the process and exits it)
for ``S`` seconds; the executions per target and any crash are printed and,
with ``--json FILE``, appended as JSON lines.  A crash leaves its input as
``crash-<sha1>`` in the working directory: turn it into a regression test in
tests/fuzz/test_regressions.py.  ``scripts/fuzz.sh`` wraps this.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def child(name: str, seconds: int, corpus: Path) -> None:
    import atheris

    with atheris.instrument_imports():
        from tests.fuzz import targets
    fn = targets.TARGETS[name]
    corpus.mkdir(parents=True, exist_ok=True)
    atheris.Setup([sys.argv[0], str(corpus), f"-max_total_time={seconds}", "-rss_limit_mb=1024",
                   "-max_len=8192", "-print_final_stats=1"], fn)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fuzz", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=int, default=60, help="per target (default 60)")
    p.add_argument("--target", action="append", help="only these (default: all)")
    p.add_argument("--corpus", type=Path, default=None, help="keep corpora here")
    p.add_argument("--json", type=Path)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    corpus_root = args.corpus or Path(tempfile.mkdtemp(prefix="titans3-fuzz-"))
    if args.child:
        child(args.child, args.seconds, corpus_root / args.child)
        return 0
    from tests.fuzz.targets import TARGETS

    names = args.target or list(TARGETS)
    failed = False
    for name in names:
        proc = subprocess.run([sys.executable, "-m", "tests.fuzz.run", "--child", name,
                               "--seconds", str(args.seconds), "--corpus", str(corpus_root)],
                              cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        out = proc.stdout + proc.stderr
        runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", out)
        execs = int(runs[-1]) if runs else 0
        crash = proc.returncode != 0
        failed |= crash
        line = {"kind": "fuzz", "target": name, "seconds": args.seconds, "executions": execs,
                "crashed": crash}
        print(f"{name:16s} {execs:>10,d} executions in {args.seconds}s"
              + ("  CRASH" if crash else ""), flush=True)
        if crash:
            print("\n".join(out.splitlines()[-40:]))
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(line) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
