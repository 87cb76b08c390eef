#!/usr/bin/env bash
# Crash torture (issue 17): a bounded S3 workload against the real daemon while
# a seeded fault schedule SIGKILLs it (also mid-commit), pulls and returns
# drives and flips bytes in fragment files; a checker reads everything back
# after every round.  CI runs the short form (tests/torture/test_torture.py,
# 40 + 12 rounds).
#
#   scripts/torture.sh                     # short form of both topologies
#   scripts/torture.sh --long              # 30 minutes: 20 single host, 10 cluster
#   scripts/torture.sh --topology single --seed 123 --rounds 40   # rerun a failure
#
# Extra arguments go to `python -m tests.torture.runner` (--minutes, --workdir,
# --json FILE appends each topology's figures as a JSON line).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || ./scripts/setup.sh
args=()
for a in "$@"; do
  if [ "$a" = "--long" ]; then args+=(--minutes 30); else args+=("$a"); fi
done
exec nice .venv/bin/python -m tests.torture.runner "${args[@]}"
