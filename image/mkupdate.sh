#!/usr/bin/env bash
# Build the upgrade medium of a new version from an earlier build's parts: the
# same Debian base, kernel and dependency venv, with this checkout's titans3
# package, appliance/ and systemd/ files and a new release stamp.  That is what
# most releases change, and it takes seconds where a full image build
# (build.sh) takes minutes: the tests' N -> N+1 upgrade uses it.  A release
# that changes packages.txt or the dependencies needs build.sh.
#
#   image/mkupdate.sh --from PARTS_DIR --version V --out DIR [--tries N] [--key RELEASE_KEY.pem]
#
# PARTS_DIR is build.sh's parts-<old version>/ (root.img, vmlinuz, initrd.img).
# Writes DIR/titans3-V.upgrade.img and DIR/parts-V/.  Needs root: the root
# filesystem image is loop-mounted (never left mounted: the trap unmounts it,
# and the loop device is released with the mount).
set -euo pipefail
T0=$(date +%s)
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
TRIES=2
KEY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --from) FROM=$2; shift 2 ;;
    --version) VERSION=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --tries) TRIES=$2; shift 2 ;;
    --key) KEY=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "mkupdate.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "mkupdate.sh: $*" >&2; exit 1; }
: "${FROM:?--from PARTS_DIR}" "${VERSION:?--version}" "${OUT:?--out}"
[ "$(id -u)" -eq 0 ] || die "must run as root (the root filesystem image is loop-mounted)"
[[ "$VERSION" =~ ^[A-Za-z0-9.+~_-]+$ ]] || die "--version: only letters, digits and . + ~ _ - ($VERSION)"
for f in root.img vmlinuz initrd.img; do [ -f "$FROM/$f" ] || die "$FROM/$f missing (give build.sh's parts-V dir)"; done
PY="$REPO/.venv/bin/python"
[ -x "$PY" ] || die "$PY missing (run ./scripts/setup.sh)"
CACHE=${TITANS3_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/titans3-image}
KEY=${KEY:-${TITANS3_RELEASE_KEY:-$CACHE/release-key.pem}}
PKGVER=$("$PY" -c 'import tomllib;print(tomllib.load(open("'"$REPO"'/pyproject.toml","rb"))["project"]["version"])')
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/titans3-update.XXXXXX")
MNT=$WORK/root
cleanup() {
  if mountpoint -q "$MNT"; then umount "$MNT" || umount -l "$MNT"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "[1/4] titans3 wheel from this checkout ($(( $(date +%s) - T0 ))s)"
mkdir -p "$WORK/self" "$WORK/src"
cp -r "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/titans3" "$WORK/src/"
find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
"$PY" -m pip wheel -q --no-deps --wheel-dir "$WORK/self" "$WORK/src" >"$WORK/self.log" 2>&1 \
  || { tail -30 "$WORK/self.log" >&2; die "building the titans3 wheel failed"; }

echo "[2/4] root filesystem: $(basename "$FROM")/root.img + the new package and appliance files ($(( $(date +%s) - T0 ))s)"
mkdir -p "$OUT/parts-$VERSION" "$MNT"
cp --sparse=always "$FROM/root.img" "$WORK/root.img"
mount -o loop "$WORK/root.img" "$MNT"
cp "$WORK"/self/*.whl "$MNT/tmp/"
in_root() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 chroot "$MNT" "$@"; }
in_root /opt/titans3/venv/bin/pip install -q --no-index --no-deps --force-reinstall --no-cache-dir \
  --disable-pip-version-check "/tmp/$(basename "$WORK"/self/*.whl)" >"$WORK/pip.log" 2>&1 \
  || { tail -30 "$WORK/pip.log" >&2; die "installing the titans3 wheel into the root failed"; }
rm -f "$MNT"/tmp/*.whl
# The dependency versions are the old build's (this is a package-only release).
grep -v '^titans3' "$MNT/opt/titans3/requirements.lock" > "$WORK/lock" || true
echo "titans3==$PKGVER" >> "$WORK/lock"
cp "$WORK/lock" "$MNT/opt/titans3/requirements.lock"
rm -rf "$MNT/opt/titans3/docs"
cp -r "$REPO/docs" "$MNT/opt/titans3/docs"
cp "$REPO/README.md" "$MNT/opt/titans3/README.md"
"$HERE/install-appliance.sh" "$REPO" "$MNT" "$VERSION" "$KEY"
umount "$MNT"
e2fsck -fy "$WORK/root.img" >/dev/null 2>&1 || [ $? -le 1 ] || die "the new root filesystem does not check clean"

echo "[3/4] upgrade medium: titans3-$VERSION.upgrade.img ($(( $(date +%s) - T0 ))s)"
"$HERE/mkbundle.sh" --key "$KEY" --version "$VERSION" --root "$WORK/root.img" --kernel "$FROM/vmlinuz" \
  --initrd "$FROM/initrd.img" --out "$OUT/titans3-$VERSION.upgrade.img" --tries "$TRIES"
mv "$WORK/root.img" "$OUT/parts-$VERSION/root.img"
cp "$FROM/vmlinuz" "$FROM/initrd.img" "$OUT/parts-$VERSION/"

echo "[4/4] done"
echo "upgrade:   $OUT/titans3-$VERSION.upgrade.img ($(( $(stat -c %s "$OUT/titans3-$VERSION.upgrade.img") >> 20 )) MiB)"
echo "version:   $VERSION (from $(basename "$FROM"))"
echo "built in:  $(( $(date +%s) - T0 ))s"
