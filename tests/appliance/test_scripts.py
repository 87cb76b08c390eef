"""The appliance's shell scripts and units, checked on the host (the VM tests run them for real)."""

from __future__ import annotations

import configparser
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for p in (REPO / "appliance").iterdir() if p.name.startswith("titans3-")) + sorted(
    (REPO / "image").glob("*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses(script: Path) -> None:
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0


def test_boot_entry_names_the_root_slot_and_the_serial_console() -> None:
    out = subprocess.run([str(REPO / "appliance" / "titans3-upgrade"), "--print-entry", "1.2-3", "abcd-ef"],
                         capture_output=True, text=True, check=True).stdout
    fields = dict(line.split(None, 1) for line in out.splitlines())
    assert fields["version"] == "1.2-3" and fields["sort-key"] == "titans3"
    assert fields["linux"] == "/titans3/1.2-3/vmlinuz" and fields["initrd"] == "/titans3/1.2-3/initrd.img"
    opts = fields["options"].split()
    assert "root=PARTUUID=abcd-ef" in opts and "console=ttyS0,115200n8" in opts and "panic=10" in opts


def test_upgrade_without_arguments_prints_usage() -> None:
    out = subprocess.run([str(REPO / "appliance" / "titans3-upgrade")], capture_output=True, text=True)
    assert out.returncode == 2 and "titans3-upgrade install" in out.stdout


def unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(REPO / "systemd" / name)
    return cp


def test_daemon_unit_is_notify_with_watchdog_and_hardening() -> None:
    svc = unit("titans3.service")["Service"]
    assert svc["Type"] == "notify" and int(svc["WatchdogSec"]) > 0 and svc["Restart"] == "on-failure"
    for key, want in (("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                      ("NoNewPrivileges", "yes")):
        assert svc[key] == want, key
    caps = set(svc["CapabilityBoundingSet"].split())
    assert "CAP_SYS_ADMIN" in caps and "CAP_SYS_MODULE" not in caps and "CAP_SYS_RAWIO" not in caps
    assert "/var/lib/titans3" in svc["ReadWritePaths"].split()


def test_boot_check_gates_boot_complete_and_reboots_on_failure() -> None:
    u = unit("titans3-boot-check.service")
    assert "boot-complete.target" in u["Unit"]["Before"]
    assert u["Install"]["RequiredBy"] == "boot-complete.target"
    assert u["Service"]["FailureAction"] == "reboot"


def wait_disks(tmp_path: Path, ledger: dict[str, object] | None, timeout: int = 1) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "disks.json"
    if ledger is not None:
        import json

        path.write_text(json.dumps(ledger))
    return subprocess.run([str(REPO / "appliance" / "titans3-wait-disks"), str(path)], capture_output=True,
                          text=True, timeout=30, env={"PATH": "/usr/bin:/bin", "TITANS3_WAIT_DISKS_TIMEOUT": str(timeout),
                                                      "TITANS3_BY_UUID_DIR": str(tmp_path / "by-uuid")})


def test_wait_disks_waits_for_the_active_drives_of_the_ledger_only(tmp_path: Path) -> None:
    active, spare, failed = "a" * 32, "b" * 32, "c" * 32
    ledger = {"format": 1, "disks": [{"drive_id": active, "state": "active"},
                                     {"drive_id": spare, "state": "spare"},
                                     {"drive_id": failed, "state": "failed"}]}
    (tmp_path / "by-uuid").mkdir()
    late = wait_disks(tmp_path, ledger, timeout=1)
    assert late.returncode == 0  # the daemon starts anyway and marks the drive failed
    assert "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa" in late.stdout and "bbbb" not in late.stdout
    assert "cccc" not in late.stdout and "not there after 1s" in late.stdout

    (tmp_path / "by-uuid" / "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa").symlink_to("/dev/null")
    ok = wait_disks(tmp_path, ledger, timeout=30)
    assert ok.returncode == 0 and "1 drives present after 0s" in ok.stdout


def test_wait_disks_has_nothing_to_wait_for_at_first_boot(tmp_path: Path) -> None:
    out = wait_disks(tmp_path, None, timeout=30)
    assert (out.returncode, out.stdout) == (0, "")


def test_daemon_waits_for_its_disks_not_for_udev_settle() -> None:
    u = unit("titans3.service")
    assert "systemd-udev-settle" not in u["Unit"]["After"] + u["Unit"].get("Wants", "")
    assert u["Service"]["ExecStartPre"] == "/usr/lib/titans3/wait-disks"
    assert "install -D -m 0755 \"$A/titans3-wait-disks\"" in (REPO / "image" / "install-appliance.sh").read_text()
