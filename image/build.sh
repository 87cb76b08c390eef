#!/usr/bin/env bash
# Build the TitanS3 appliance image: a raw GPT disk image to dd onto a server's
# boot disk (and optionally a qcow2 copy), plus the upgrade medium of the same
# version.  See docs/appliance.md.
#
#   image/build.sh [--out DIR] [--version V] [--qcow2] [--root-size MiB] [--kernel cloud|generic]
#
# Layout (GPT, partitions found by PARTLABEL, never by device name):
#   1 esp          FAT32   systemd-boot, loader entries, one kernel+initrd per image version
#   2 root-a       ext4    the root filesystem of this version
#   3 root-b       (empty) the other root slot: an upgrade is written here (A/B)
#   4 titans3-state ext4   /var/lib/titans3: host identity, keys, credentials, config,
#                          cluster membership, journal -- everything an upgrade keeps
#
# Steps are cached in $TITANS3_IMAGE_CACHE (default ~/.cache/titans3-image):
#   rootfs-<sha of packages.txt + kernel>.tar   the mmdebstrap tarball
#   wheels-<sha of the dependencies>/          dependency wheels (pyproject.toml), built on this host
#                                               (Debian 12, Python 3.11 -- the image's own)
#   release-key.pem                             the key that signs upgrade media
#                                               ($TITANS3_RELEASE_KEY: a real release key)
# Everything else (the titans3 wheel, appliance/ and systemd/ files) is rebuilt
# each run.  Safe to rerun: outputs are written under temporary names and renamed.
set -euo pipefail
T0=$(date +%s)
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

OUT="$REPO/image/out"
VERSION=""
QCOW2=0
ROOT_MIB=600
ESP_MIB=128
STATE_MIB=64
KERNEL=cloud
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --version) VERSION=$2; shift 2 ;;
    --qcow2) QCOW2=1; shift ;;
    --root-size) ROOT_MIB=$2; shift 2 ;;
    --kernel) KERNEL=$2; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$KERNEL" in
  cloud) KPKG=linux-image-cloud-amd64 ;;       # virtio, NVMe, AHCI; small and fast to boot
  generic) KPKG=linux-image-amd64 ;;           # every driver Debian ships (bare metal)
  *) echo "build.sh: --kernel must be cloud or generic" >&2; exit 2 ;;
esac

STEP=0
NSTEPS=8
step() { STEP=$((STEP + 1)); printf '[%d/%d] %s (%ds)\n' "$STEP" "$NSTEPS" "$*" $(( $(date +%s) - T0 )); }
die() { echo "build.sh: $*" >&2; exit 1; }

# ---------------------------------------------------------------- 1. tools
step "checking tools"
[ "$(id -u)" -eq 0 ] || die "must run as root (the root filesystem is assembled in a chroot with real file owners)"
missing=()
for tool in mmdebstrap:mmdebstrap mkfs.ext4:e2fsprogs debugfs:e2fsprogs mkfs.vfat:dosfstools \
            mcopy:mtools mmd:mtools sfdisk:fdisk python3:python3 chroot:coreutils; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool%%:*} (apt-get install ${tool#*:})")
done
[ "$QCOW2" = 0 ] || command -v qemu-img >/dev/null || missing+=("qemu-img (apt-get install qemu-utils)")
PY="$REPO/.venv/bin/python"
[ -x "$PY" ] || missing+=("$PY (run ./scripts/setup.sh)")
if [ "${#missing[@]}" -gt 0 ]; then
  printf 'build.sh: missing tool: %s\n' "${missing[@]}" >&2
  echo "build.sh: ./scripts/setup.sh installs all of them" >&2
  exit 1
fi
PKGVER=$("$PY" -c 'import tomllib;print(tomllib.load(open("'"$REPO"'/pyproject.toml","rb"))["project"]["version"])')
if [ -z "$VERSION" ]; then
  # Sortable by systemd-boot: the package version, then the commit time.
  stamp=$(git -C "$REPO" log -1 --format=%cd --date=format:%Y%m%d%H%M%S 2>/dev/null || date +%Y%m%d%H%M%S)
  VERSION="$PKGVER-$stamp"
fi
[[ "$VERSION" =~ ^[A-Za-z0-9.+~_-]+$ ]] || die "--version: only letters, digits and . + ~ _ - ($VERSION)"
CACHE=${TITANS3_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/titans3-image}
mkdir -p "$CACHE" "$OUT"
# Work directories of builds that were killed, and caches no key points at any more.
find "$CACHE" -maxdepth 1 -name 'work.*' -mmin +180 -exec rm -rf {} + 2>/dev/null || true
WORK=$(mktemp -d "$CACHE/work.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
echo "    version $VERSION, kernel $KPKG, output $OUT, cache $CACHE"

# ---------------------------------------------------------------- 2. rootfs tarball
PACKAGES=$( (grep -v '^\s*#' "$HERE/packages.txt" | grep -v '^\s*$'; echo "$KPKG") | sort -u | paste -sd, -)
RKEY=$(printf '%s\n' "bookworm" "$PACKAGES" "v1" | sha256sum | cut -c1-16)
ROOTFS_TAR="$CACHE/rootfs-$RKEY.tar"
if [ -f "$ROOTFS_TAR" ]; then
  step "Debian 12 base: cached $(basename "$ROOTFS_TAR")"
else
  step "Debian 12 base: mmdebstrap bookworm ($(echo "$PACKAGES" | tr , '\n' | wc -l) packages; ~1-2 min)"
  mmdebstrap --variant=minbase --format=tar --include="$PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -f "$1"/etc/machine-id "$1"/var/lib/dbus/machine-id; : > "$1"/etc/machine-id' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
    bookworm "$ROOTFS_TAR.tmp" >"$WORK/mmdebstrap.log" 2>&1 \
    || { tail -30 "$WORK/mmdebstrap.log" >&2; die "mmdebstrap failed (log above)"; }
  mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
fi

# ---------------------------------------------------------------- 3. wheels
# Keyed by what decides the wheels: the dependency list and this Python.
WKEY=$("$PY" -c 'import sys,tomllib;d=tomllib.load(open(sys.argv[1],"rb"))["project"];print(sys.version.split()[0],*d["dependencies"])' \
  "$REPO/pyproject.toml" | sha256sum | cut -c1-16)
WHEELS="$CACHE/wheels-$WKEY"
if [ -f "$WHEELS/.complete" ]; then
  step "Python wheels: cached $(basename "$WHEELS") ($(ls "$WHEELS"/*.whl | wc -l) wheels)"
else
  step "Python wheels: building dependencies of pyproject.toml on this host (~1-3 min)"
  rm -rf "$WHEELS.tmp"; mkdir -p "$WHEELS.tmp"
  "$PY" -m pip wheel -q --wheel-dir "$WHEELS.tmp" "$REPO" >"$WORK/wheels.log" 2>&1 \
    || { tail -30 "$WORK/wheels.log" >&2; die "pip wheel failed (log above)"; }
  rm -f "$WHEELS.tmp"/titans3-*.whl  # the package itself is rebuilt every run
  touch "$WHEELS.tmp/.complete"
  rm -rf "$WHEELS"; mv "$WHEELS.tmp" "$WHEELS"
fi
# Keep the two newest wheel sets and bases (another checkout may build the previous ones).
touch "$WHEELS" "$ROOTFS_TAR"  # in use: the newest
ls -1dt "$CACHE"/wheels-* 2>/dev/null | grep -v '\.tmp$' | tail -n +3 | xargs -r rm -rf
ls -1t "$CACHE"/rootfs-*.tar 2>/dev/null | tail -n +3 | xargs -r rm -f
# The package itself, from a clean copy of its sources (setuptools would reuse a stale build/).
mkdir -p "$WORK/self" "$WORK/src"
cp -r "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/titans3" "$WORK/src/"
find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
"$PY" -m pip wheel -q --no-deps --wheel-dir "$WORK/self" "$WORK/src" >"$WORK/self.log" 2>&1 \
  || { tail -30 "$WORK/self.log" >&2; die "building the titans3 wheel failed"; }

# ---------------------------------------------------------------- 4. root filesystem
step "root filesystem: base + venv /opt/titans3/venv + appliance files"
ROOT="$WORK/root"
mkdir -p "$ROOT"
tar -xf "$ROOTFS_TAR" -C "$ROOT" --numeric-owner
mkdir -p "$ROOT/tmp/wheels"
cp "$WHEELS"/*.whl "$WORK"/self/*.whl "$ROOT/tmp/wheels/"
in_root() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 chroot "$ROOT" "$@"; }
in_root /usr/bin/python3 -m venv /opt/titans3/venv
in_root /opt/titans3/venv/bin/pip install -q --no-index --find-links /tmp/wheels --no-cache-dir \
  --disable-pip-version-check "titans3==$PKGVER" >"$WORK/pip.log" 2>&1 \
  || { tail -30 "$WORK/pip.log" >&2; die "installing titans3 into the image venv failed"; }
in_root /opt/titans3/venv/bin/pip freeze --disable-pip-version-check > "$ROOT/opt/titans3/requirements.lock"
rm -rf "$ROOT/tmp/wheels"
ln -sf /opt/titans3/venv/bin/titans3 "$ROOT/usr/local/bin/titans3"
ln -sf /opt/titans3/venv/bin/titanctl "$ROOT/usr/local/bin/titanctl"
ln -sfn venv "$ROOT/opt/titans3/.venv"  # the path units written for a checkout use
cp "$REPO/README.md" "$ROOT/opt/titans3/README.md"
cp -r "$REPO/docs" "$ROOT/opt/titans3/docs"
# The release key signs upgrade media (mkbundle.sh); the image trusts its public half.
RELEASE_KEY=${TITANS3_RELEASE_KEY:-$CACHE/release-key.pem}
PYTHONPATH="$REPO" "$PY" -m titans3.core.releasesig keygen "$RELEASE_KEY"
"$HERE/install-appliance.sh" "$REPO" "$ROOT" "$VERSION" "$RELEASE_KEY"

# Kernel and initrd leave the root for the ESP (systemd-boot reads them from there).
KVER=$(basename "$(ls "$ROOT"/boot/vmlinuz-* | sort -V | tail -1)" | sed 's/^vmlinuz-//')
cp "$ROOT/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
cp "$ROOT/boot/initrd.img-$KVER" "$WORK/initrd.img"
cp "$ROOT/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$WORK/BOOTX64.EFI"
rm -f "$ROOT"/boot/vmlinuz-* "$ROOT"/boot/initrd.img-*  # they live on the ESP only
echo "    kernel $KVER, root tree $(du -sm "$ROOT" | cut -f1) MiB"

# ---------------------------------------------------------------- 5. filesystems
step "filesystems: ext4 root ($ROOT_MIB MiB), FAT ESP ($ESP_MIB MiB), ext4 state ($STATE_MIB MiB)"
# mke2fs -d copies the tree into a new filesystem image without mounting anything.
mkfs.ext4 -q -F -L titans3-root -d "$ROOT" -E root_owner=0:0 "$WORK/root.img" "${ROOT_MIB}M" >/dev/null \
  || die "the root tree does not fit in $ROOT_MIB MiB (--root-size)"
# The state tree's skeleton exists from the start: the journal's bind mount needs its source.
mkdir -p "$WORK/state/state" "$WORK/state/etc" "$WORK/state/upgrade" "$WORK/state/journal"
chmod 0700 "$WORK/state/state"
mkfs.ext4 -q -F -L titans3-state -d "$WORK/state" -E root_owner=0:0 "$WORK/state.img" "${STATE_MIB}M" >/dev/null
rm -rf "$ROOT"
ROOT_A_UUID=$(python3 -c 'import uuid;print(uuid.uuid4())')
ROOT_B_UUID=$(python3 -c 'import uuid;print(uuid.uuid4())')
mkfs.vfat -F 32 -n TITANS3-ESP -C "$WORK/esp.img" $((ESP_MIB * 1024)) >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$WORK/esp.img" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries ::/titans3 "::/titans3/$VERSION"
mcopy -i "$WORK/esp.img" "$WORK/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$WORK/esp.img" "$WORK/vmlinuz" "::/titans3/$VERSION/vmlinuz"
mcopy -i "$WORK/esp.img" "$WORK/initrd.img" "::/titans3/$VERSION/initrd.img"
printf 'timeout 0\neditor no\nconsole-mode keep\n' > "$WORK/loader.conf"
mcopy -i "$WORK/esp.img" "$WORK/loader.conf" ::/loader/loader.conf
# The first version's entry has no boot counter: it is known good by construction.
"$HERE/../appliance/titans3-upgrade" --print-entry "$VERSION" "$ROOT_A_UUID" > "$WORK/entry.conf"
mcopy -i "$WORK/esp.img" "$WORK/entry.conf" "::/loader/entries/titans3-$VERSION.conf"

# ---------------------------------------------------------------- 6. disk image
step "disk image: GPT, 4 partitions"
MiB=$((1024 * 1024))
TOTAL_MIB=$((1 + ESP_MIB + 2 * ROOT_MIB + STATE_MIB + 1))
RAW="$OUT/titans3-$VERSION.raw"
rm -f "$RAW.tmp"
truncate -s "$((TOTAL_MIB * MiB))" "$RAW.tmp"
sfdisk -q "$RAW.tmp" <<EOF
label: gpt
first-lba: 2048
start=1MiB, size=${ESP_MIB}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="esp"
size=${ROOT_MIB}MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$ROOT_A_UUID, name="root-a"
size=${ROOT_MIB}MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$ROOT_B_UUID, name="root-b"
size=${STATE_MIB}MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="titans3-state"
EOF
put() { dd if="$1" of="$RAW.tmp" bs=1M seek="$2" conv=notrunc,sparse status=none; }
put "$WORK/esp.img" 1
put "$WORK/root.img" $((1 + ESP_MIB))
put "$WORK/state.img" $((1 + ESP_MIB + 2 * ROOT_MIB))
mv "$RAW.tmp" "$RAW"

# ---------------------------------------------------------------- 7. upgrade medium
step "upgrade medium: titans3-$VERSION.upgrade.img (for nodes running an older image)"
"$HERE/mkbundle.sh" --key "$RELEASE_KEY" --version "$VERSION" --root "$WORK/root.img" --kernel "$WORK/vmlinuz" \
  --initrd "$WORK/initrd.img" --out "$OUT/titans3-$VERSION.upgrade.img"
# The parts stay beside the image (tests derive a deliberately broken release from them).
mkdir -p "$OUT/parts-$VERSION"
mv "$WORK/root.img" "$WORK/vmlinuz" "$WORK/initrd.img" "$OUT/parts-$VERSION/"

# ---------------------------------------------------------------- 8. outputs
step "outputs"
if [ "$QCOW2" = 1 ]; then
  qemu-img convert -O qcow2 "$RAW" "$OUT/titans3-$VERSION.qcow2.tmp"
  mv "$OUT/titans3-$VERSION.qcow2.tmp" "$OUT/titans3-$VERSION.qcow2"
fi
ln -sfn "titans3-$VERSION.raw" "$OUT/titans3-latest.raw"
ln -sfn "titans3-$VERSION.upgrade.img" "$OUT/titans3-latest.upgrade.img"
echo "$VERSION" > "$OUT/latest-version"
apparent=$(stat -c %s "$RAW")
allocated=$(( $(stat -c %b "$RAW") * $(stat -c %B "$RAW") ))
echo "image:     $RAW"
[ "$QCOW2" = 0 ] || echo "qcow2:     $OUT/titans3-$VERSION.qcow2 ($(( $(stat -c %s "$OUT/titans3-$VERSION.qcow2") / MiB )) MiB)"
echo "upgrade:   $OUT/titans3-$VERSION.upgrade.img"
awk -v a="$apparent" -v b="$allocated" \
  'BEGIN { printf "size:      %d MiB raw (%.2f GiB), %d MiB allocated (sparse)\n", a/1048576, a/1073741824, b/1048576 }'
echo "version:   $VERSION"
echo "built in:  $(( $(date +%s) - T0 ))s"
