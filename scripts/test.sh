#!/usr/bin/env bash
# Install everything (apt-get + ./.venv) and run the whole test suite:
# unit tests, integration tests against the real daemon with real S3 clients,
# and hwtests/ (loop devices, FUSE) where the machine allows them.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PYTHONDONTWRITEBYTECODE=1
status=0
# Import contracts (layers, fronts through the object API; pyproject.toml [tool.importlinter]).
.venv/bin/lint-imports --no-cache || status=$?
.venv/bin/python -m pytest -p no:cacheprovider tests hwtests "$@" || status=$?
# pytest exit 5 = nothing collected: treat as failure, a suite that ran nothing proves nothing.
exit "$status"
