#!/usr/bin/env bash
# Install everything TitanS3 needs on a fresh Debian 12 machine; safe to re-run.
#   system packages: apt-get (only what is missing)
#   Python packages: a venv at ./.venv with the project installed editable
# Set TITANS3_SETUP_QUICK=1 to skip work when the stamp says nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3-venv python3-dev build-essential pkg-config libfuse3-dev  # build pyfuse3
  fuse3 libnbd-bin nbdkit qemu-utils                                 # FUSE / NBD clients
  fio python3-libnbd                                                 # NBD tests: fio nbd engine, libnbd (nbdfuse is in libnbd-bin)
  xfsprogs e2fsprogs util-linux iproute2 udev                        # disks, namespaces
  nftables                                                           # partition test: loopback rules
  fdisk                                                              # sfdisk: disk tests craft partition tables
  chromium chromium-driver                                           # status page tests (headless, WebDriver)
  s3fs curl ca-certificates
  mmdebstrap mtools dosfstools ovmf qemu-system-x86                  # appliance image: build + VM tests
  rsync git sqlite3                                                  # FUSE acceptance tests (tests/fuse)
)

need=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "setup: apt-get install ${need[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # Wait for another apt/dpkg run (a parallel setup, unattended-upgrades) instead of failing.
  apt_opts=(-o DPkg::Lock::Timeout=600)
  # DPkg::Lock::Timeout covers dpkg's lock, not the package lists': retry update while another run holds it.
  for try in 1 2 3 4 5 6 7 8 9 10; do
    $SUDO apt-get "${apt_opts[@]}" update -qq && break
    [ "$try" -lt 10 ] || exit 1
    echo "setup: apt-get update failed (another apt run?), retrying in 15 s" >&2
    sleep 15
  done
  $SUDO apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.titans3-setup-stamp
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! .venv/bin/python -c "import titans3" 2>/dev/null; then
  echo "setup: installing Python packages into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  echo "$want" > "$stamp"
fi
