#!/usr/bin/env bash
# Put appliance/ and systemd/ into an image root tree and enable the units.
#   image/install-appliance.sh REPO ROOT VERSION [RELEASE_KEY.pem]
# With a release key, its public half becomes the key the image trusts for
# upgrade media (/etc/titans3/release-keys/<key id>.pub).
set -euo pipefail
REPO=$1 ROOT=$2 VERSION=$3 RELEASE_KEY=${4:-}
A=$REPO/appliance S=$REPO/systemd
install -D -m 0644 "$A/titans3.toml" "$ROOT/etc/titans3/titans3.toml"
install -D -m 0755 "$A/titans3-firstboot" "$ROOT/usr/lib/titans3/firstboot"
install -D -m 0755 "$A/titans3-console" "$ROOT/usr/lib/titans3/console"
install -D -m 0755 "$A/titans3-boot-check" "$ROOT/usr/lib/titans3/boot-check"
install -D -m 0755 "$A/titans3-grow-state" "$ROOT/usr/lib/titans3/grow-state"
install -D -m 0755 "$A/titans3-wait-disks" "$ROOT/usr/lib/titans3/wait-disks"
install -D -m 0755 "$A/titans3-upgrade" "$ROOT/usr/sbin/titans3-upgrade"
install -D -m 0644 "$A/fstab" "$ROOT/etc/fstab"
install -D -m 0644 "$A/10-titans3.network" "$ROOT/etc/systemd/network/10-titans3.network"
install -D -m 0644 "$A/90-titans3-upgrade.rules" "$ROOT/etc/udev/rules.d/90-titans3-upgrade.rules"
install -D -m 0644 "$A/journald.conf" "$ROOT/etc/systemd/journald.conf.d/titans3.conf"
install -D -m 0644 "$A/sysctl.conf" "$ROOT/etc/sysctl.d/90-titans3.conf"
install -D -m 0644 "$A/system.conf" "$ROOT/etc/systemd/system.conf.d/titans3.conf"
install -D -m 0644 "$A/wait-online.conf" "$ROOT/etc/systemd/system/systemd-networkd-wait-online.service.d/titans3.conf"
for unit in "$S"/*.service; do
  install -m 0644 "$unit" "$ROOT/etc/systemd/system/$(basename "$unit")"
done
echo "$VERSION" > "$ROOT/etc/titans3-release"
if [ -n "$RELEASE_KEY" ]; then
  pub=$(PYTHONPATH="$REPO" "$REPO/.venv/bin/python" -m titans3.core.releasesig pubkey "$RELEASE_KEY")
  kid=$(printf '%s' "$pub" | PYTHONPATH="$REPO" "$REPO/.venv/bin/python" -c \
    'import sys; from titans3.core.releasesig import PublicKey; print(PublicKey.parse(sys.stdin.read()).key_id)')
  mkdir -p "$ROOT/etc/titans3/release-keys"
  printf '%s\n' "$pub" > "$ROOT/etc/titans3/release-keys/$kid.pub"
fi
mkdir -p "$ROOT/var/lib/titans3" "$ROOT/efi"
mkdir -p "$ROOT/var/log/journal"  # bind-mounted from /var/lib/titans3/journal (fstab)
: > "$ROOT/etc/hostname"
: > "$ROOT/etc/machine-id"
# No password login: the appliance is run from its status page (and titanctl).
chroot "$ROOT" passwd -l root >/dev/null
# Enable every unit of ours that has an [Install] section (the FUSE and NBD
# engineers' units come along once they exist under systemd/), plus networkd.
enable=(systemd-networkd.service systemd-networkd-wait-online.service)
for unit in "$S"/*.service; do
  name=$(basename "$unit")
  case "$name" in *@.service) continue ;; esac
  grep -q '^\[Install\]' "$unit" && enable+=("$name")
done
systemctl --root="$ROOT" enable "${enable[@]}" >/dev/null 2>&1
systemctl --root="$ROOT" mask apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1 || true
