#!/usr/bin/env bash
# Parser fuzzing (issue 17): hypothesis property tests with many examples, then
# coverage-guided atheris (libFuzzer) runs of every target in tests/fuzz/targets.py.
# CI runs the hypothesis tests with 150 examples each (tests/fuzz/test_fuzz.py).
#
#   scripts/fuzz.sh                      # 2000 examples each, then 60 s of atheris per target
#   scripts/fuzz.sh --seconds 600        # the long run
#   scripts/fuzz.sh --target chunked --seconds 300
#
# Extra arguments go to `python -m tests.fuzz.run` (--json FILE appends
# executions per target; --corpus DIR keeps corpora between runs).  A crash
# leaves crash-<sha1> here: make it a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || ./scripts/setup.sh
export TITANS3_FUZZ_EXAMPLES=${TITANS3_FUZZ_EXAMPLES:-2000}
nice .venv/bin/python -m pytest -q -p no:cacheprovider tests/fuzz
exec nice .venv/bin/python -m tests.fuzz.run "$@"
