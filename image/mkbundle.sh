#!/usr/bin/env bash
# Make an upgrade medium: an ext4 filesystem image labelled TITANS3-UPD holding
# a manifest and the parts of one image version (root filesystem, kernel,
# initrd).  Write it to a USB stick / spare disk (dd), or attach it to a VM;
# the node installs it (appliance/titans3-upgrade).
#   image/mkbundle.sh --version V --root root.img --kernel vmlinuz --initrd initrd.img \
#                     --out X.upgrade.img [--tries N] [--key RELEASE_KEY.pem]
# The manifest is signed (manifest.sig, Ed25519; titans3/core/releasesig.py) with
# the release key: --key, else $TITANS3_RELEASE_KEY, else the build host's key in
# the image cache (made on first use).  Nodes apply only media signed by a key
# their image trusts (/etc/titans3/release-keys/).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
TRIES=2
KEY=${TITANS3_RELEASE_KEY:-${TITANS3_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/titans3-image}/release-key.pem}
while [ $# -gt 0 ]; do
  case "$1" in
    --version) VERSION=$2; shift 2 ;;
    --root) ROOTIMG=$2; shift 2 ;;
    --kernel) KERNEL=$2; shift 2 ;;
    --initrd) INITRD=$2; shift 2 ;;
    --out) OUTIMG=$2; shift 2 ;;
    --tries) TRIES=$2; shift 2 ;;
    --key) KEY=$2; shift 2 ;;
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
sig() { PYTHONPATH="$REPO" "$REPO/.venv/bin/python" -m titans3.core.releasesig "$@"; }
sig keygen "$KEY"
sig sign "$KEY" "$D/manifest" || { echo "mkbundle.sh: signing the manifest with $KEY failed" >&2; exit 1; }
# Room for the files plus ext4's own metadata.
mib=$(( ($(du -s --apparent-size --block-size=1M "$D" | cut -f1) * 105 / 100) + 32 ))
rm -f "$OUTIMG.tmp"
mkfs.ext4 -q -F -L TITANS3-UPD -m 0 -d "$D" -E root_owner=0:0 "$OUTIMG.tmp" "${mib}M" >/dev/null
mv "$OUTIMG.tmp" "$OUTIMG"
