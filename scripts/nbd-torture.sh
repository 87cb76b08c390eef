#!/usr/bin/env bash
# Long runs of the NBD gateway's torture tests (CI runs short forms):
#   NBD_CRASH_ROUNDS  SIGKILL rounds of tests/integration/test_nbd_crash.py (default 200)
#   NBD_FUZZ_EXAMPLES examples per property of tests/nbd/test_protocol_fuzz.py (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
export NBD_CRASH_ROUNDS="${NBD_CRASH_ROUNDS:-200}" NBD_FUZZ_EXAMPLES="${NBD_FUZZ_EXAMPLES:-20000}"
.venv/bin/python -m pytest -q -s tests/nbd/test_protocol_fuzz.py tests/nbd/test_blockmap.py
.venv/bin/python -m pytest -q -s tests/integration/test_nbd_crash.py
