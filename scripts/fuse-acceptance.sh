#!/usr/bin/env bash
# The FUSE tree acceptance tests at full size (issue 10): cp -a, rsync -a and
# tar x of 2,000 real source files plus a 1 GiB file, every sha256 checked
# through the mount, boto3 and the AWS CLI. CI runs the same tests smaller.
# Needs root and /dev/fuse; ~5-15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export TITANS3_FUSE_TREE_FILES=${TITANS3_FUSE_TREE_FILES:-2000}
export TITANS3_FUSE_BIG_MIB=${TITANS3_FUSE_BIG_MIB:-1024}
export TITANS3_FUSE_ORACLE_EXAMPLES=${TITANS3_FUSE_ORACLE_EXAMPLES:-200}
exec .venv/bin/python -m pytest -p no:cacheprovider hwtests/test_fuse_trees.py hwtests/test_fuse_oracle.py "$@"
