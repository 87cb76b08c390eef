#!/usr/bin/env bash
# Make an upgrade medium: an ext4 filesystem image labelled TITANS3-UPD holding
# a manifest and the parts of one image version (root filesystem, kernel,
# initrd).  Write it to a USB stick / spare disk (dd), or attach it to a VM;
# the node installs it (appliance/titans3-upgrade).
#   image/mkbundle.sh --version V --root root.img --kernel vmlinuz --initrd initrd.img \
#                     --out X.upgrade.img [--tries N]
set -euo pipefail
TRIES=2
while [ $# -gt 0 ]; do
  case "$1" in
    --version) VERSION=$2; shift 2 ;;
    --root) ROOTIMG=$2; shift 2 ;;
    --kernel) KERNEL=$2; shift 2 ;;
    --initrd) INITRD=$2; shift 2 ;;
    --out) OUTIMG=$2; shift 2 ;;
    --tries) TRIES=$2; shift 2 ;;
    *) echo "mkbundle.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
: "${VERSION:?--version}" "${ROOTIMG:?--root}" "${KERNEL:?--kernel}" "${INITRD:?--initrd}" "${OUTIMG:?--out}"
[[ "$TRIES" =~ ^[1-9]$ ]] || { echo "mkbundle.sh: --tries must be 1..9" >&2; exit 2; }
D=$(mktemp -d "${TMPDIR:-/tmp}/titans3-bundle.XXXXXX")
trap 'rm -rf "$D"' EXIT
cp --sparse=always "$ROOTIMG" "$D/root.img"
cp "$KERNEL" "$D/vmlinuz"
cp "$INITRD" "$D/initrd.img"
{
  echo "format=1"
  echo "version=$VERSION"
  echo "boot_tries=$TRIES"
  for f in root.img vmlinuz initrd.img; do
    echo "sha256_$f=$(sha256sum "$D/$f" | cut -d' ' -f1)"
  done
} > "$D/manifest"
# Room for the files plus ext4's own metadata.
mib=$(( ($(du -s --apparent-size --block-size=1M "$D" | cut -f1) * 105 / 100) + 32 ))
rm -f "$OUTIMG.tmp"
mkfs.ext4 -q -F -L TITANS3-UPD -m 0 -d "$D" -E root_owner=0:0 "$OUTIMG.tmp" "${mib}M" >/dev/null
mv "$OUTIMG.tmp" "$OUTIMG"
