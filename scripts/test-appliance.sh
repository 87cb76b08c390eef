#!/usr/bin/env bash
# Build the appliance image and run only its VM tests (hwtests/test_appliance*.py),
# long ones included (TITANS3_LONG_TESTS=1): the single-node life (also in CI:
# first boot, disks, upgrade with a power cut, fallback) and the three-VM cluster
# with its rolling upgrade (long).  Under qemu TCG this takes 30-60 minutes on a
# 2-core machine; progress lines show each boot.
#   ./scripts/test-appliance.sh [pytest args, e.g. -k upgrade]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PYTHONDONTWRITEBYTECODE=1 TITANS3_LONG_TESTS=1
exec .venv/bin/python -m pytest -p no:cacheprovider -s -m "vm or long" hwtests/test_appliance*.py "$@"
