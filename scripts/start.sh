#!/usr/bin/env bash
# Start a single-host TitanS3 on this machine: 6 directory-backed drives under
# ./data (EC 4+2), S3 on :9000, status page on 127.0.0.1:9001.  Installs what it
# needs first (apt-get + ./.venv).  Safe to run twice: a host already running
# from this data directory is left alone and its credentials are shown again.
#
# Overrides (environment): TITANS3_DATA (./data), TITANS3_LISTEN (0.0.0.0:9000),
# TITANS3_PEER_LISTEN, TITANS3_WEB_LISTEN, TITANS3_DRIVES, and any other TITANS3_*.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${TITANS3_SETUP_QUICK:-0}" != 1 ] || [ ! -x .venv/bin/titans3 ]; then
  ./scripts/setup.sh
fi
export TITANS3_DATA="${TITANS3_DATA:-./data}"
# Loopback by default: a quick-start node is for this machine until you say
# otherwise (TITANS3_LISTEN=0.0.0.0:9000 ./scripts/start.sh serves the network).
listen="${TITANS3_LISTEN:-127.0.0.1:9000}"
export TITANS3_LISTEN="$listen"
# The peer port too: a single host has no peers (set it to a reachable address to form a cluster).
export TITANS3_PEER_LISTEN="${TITANS3_PEER_LISTEN:-127.0.0.1:9100}"
port="${listen##*:}"
host="${listen%:*}"; [ -z "$host" ] || [ "$host" = "0.0.0.0" ] && host=127.0.0.1

# Print the root credentials (created, sealed, on first use) as ready-to-paste
# export lines: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, and
# TITANS3_ENDPOINT for titanctl when the port is not the default.
TITANS3_LISTEN="$listen" .venv/bin/titans3 credentials --data "$TITANS3_DATA"
echo "S3 endpoint: http://$host:$port   (status page: http://${TITANS3_WEB_LISTEN:-127.0.0.1:9001})"
echo "then try:    aws s3 mb s3://demo   and   .venv/bin/titanctl info"

if curl -s -o /dev/null -m 2 -D - "http://$host:$port/" 2>/dev/null | grep -qi '^server: TitanS3'; then
  echo "TitanS3 is already running on $host:$port"
  exit 0
fi
exec .venv/bin/titans3 serve
