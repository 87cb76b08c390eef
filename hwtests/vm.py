"""Boot the appliance image under qemu the way a server boots: UEFI (OVMF), no -kernel.

Theory of operation
-------------------
KVM is not usable here, so every VM runs under TCG (slow: one boot is minutes
when the machine is busy).  The harness therefore

* boots a qcow2 overlay over the built raw image, so the image stays pristine
  and a VM's disk is cheap to make;
* keeps one OVMF variable store per VM (systemd-boot's boot counting lives on
  the ESP, but firmware state belongs to the machine, like a real server);
* writes the serial console of each boot to its own file and waits for
  markers in it (``TITANS3-READY ...`` from appliance/titans3-console),
  printing the console's last line while it waits so a slow boot shows
  progress;
* talks to qemu over QMP (a unix socket in the test's directory) for
  hot-plug: ``drive_add`` + ``device_add`` / ``device_del``;
* forwards guest ports to 127.0.0.1 only (user-mode networking);
* kills qemu by its pid (SIGKILL: the "pull the power cord" of the tests);
* turns a reboot of the guest into a power cycle (``-no-reboot``: qemu exits
  when the guest resets; :meth:`VM.wait_for` starts it again, and the next
  boot writes its own serial log).  Measured here under TCG, a warm reset of
  a guest with hot-plugged disks spent 4-6 minutes in the firmware before the
  boot loader ran, a fresh qemu ~30 s; for the guest both are a reset
  (firmware, boot loader, boot counting on the ESP, the OVMF variables kept).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
QEMU = "qemu-system-x86_64"
MiB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg: str) -> None:
    print(f"[vm {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Disk:
    id: str
    path: Path
    attached: bool = True  # part of the command line at the next boot
    readonly: bool = False


@dataclass
class VM:
    workdir: Path
    image: Path  # the built raw image (read-only base)
    name: str = "node"
    memory_mib: int = 1536
    cpus: int = 2
    disks: list[Disk] = field(default_factory=list)
    forwards: dict[int, int] = field(default_factory=dict)  # guest port -> host port
    proc: subprocess.Popen[bytes] | None = None
    boots: int = 0
    seed_env: str = ""  # TITANS3_* lines handed to first boot through fw_cfg (opt/org.titans3/env)
    reboot_as_power_cycle: bool = True  # see the module docstring

    def __post_init__(self) -> None:
        self.dir = self.workdir / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.boot_disk = self.dir / "boot.qcow2"
        if not self.boot_disk.exists():
            # Larger than the image, like a real boot disk: first boot grows the state partition.
            size = self.image.stat().st_size + 512 * MiB
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(self.image),
                            str(self.boot_disk), str(size)], check=True)
        self.vars = self.dir / "OVMF_VARS.fd"
        if not self.vars.exists():
            shutil.copyfile(OVMF_VARS, self.vars)
        self.qmp_path = self.dir / "qmp.sock"
        for guest in (9000, 80, 9100):
            self.forwards.setdefault(guest, free_port())

    # ------------------------------------------------------------ disks
    def new_disk(self, id: str, size: int = 1024 * MiB, attach: bool = True) -> Disk:
        path = self.dir / f"{id}.raw"
        with open(path, "wb") as f:
            f.truncate(size)
        d = Disk(id, path, attached=attach)
        self.disks.append(d)
        return d

    def attach_file(self, id: str, path: Path) -> Disk:
        """An existing image (an upgrade medium) as a read-only disk, plugged in later."""
        d = Disk(id, path, attached=False, readonly=True)
        self.disks.append(d)
        return d

    def ext4_disk(self, id: str, size: int = 256 * MiB) -> Disk:
        d = self.new_disk(id, size)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "keepme", str(d.path)], check=True,
                       stdout=subprocess.DEVNULL)
        return d

    # ------------------------------------------------------------ lifecycle
    @property
    def serial_log(self) -> Path:
        return self.dir / f"serial-{self.boots}.log"

    def argv(self) -> list[str]:
        fwd = ",".join(f"hostfwd=tcp:127.0.0.1:{h}-:{g}" for g, h in self.forwards.items())
        a = [
            QEMU, "-accel", "tcg", "-machine", "pc", "-m", str(self.memory_mib), "-smp", str(self.cpus),
            "-name", self.name, "-display", "none", "-no-user-config", "-nodefaults",
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={self.vars}",
            "-chardev", f"file,id=ser0,path={self.serial_log}", "-serial", "chardev:ser0",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            "-netdev", f"user,id=n0,{fwd}", "-device", "virtio-net-pci,netdev=n0",
            "-drive", f"file={self.boot_disk},if=none,id=boot,format=qcow2",
            "-device", "virtio-blk-pci,drive=boot,bootindex=0",
            "-device", "virtio-rng-pci",
        ]
        if self.reboot_as_power_cycle:
            a.append("-no-reboot")
        if self.seed_env:
            seed = self.dir / "seed.env"
            seed.write_text(self.seed_env)
            a += ["-fw_cfg", f"name=opt/org.titans3/env,file={seed}"]
        for d in self.disks:
            if d.attached:
                ro = ",readonly=on" if d.readonly else ""
                a += ["-drive", f"file={d.path},if=none,id=drv-{d.id},format=raw{ro}",
                      "-device", f"virtio-blk-pci,drive=drv-{d.id},id={d.id},serial={d.id}"]
        return a

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.boots += 1
        with contextlib.suppress(FileNotFoundError):
            self.qmp_path.unlink()
        self.started = time.monotonic()
        log(f"{self.name}: boot {self.boots} (serial: {self.serial_log})")
        with open(self.dir / f"qemu-{self.boots}.log", "wb") as out:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT)

    def kill(self) -> None:
        """Power off without shutdown: SIGKILL by pid."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=60)
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rebooted(self) -> bool:
        """qemu exited because the guest reset itself (``-no-reboot``), not a crash or a power-off."""
        if not self.reboot_as_power_cycle or self.proc is None or self.proc.poll() != 0:
            return False
        return "reboot: Restarting system" in self.console()[-4000:]

    # ------------------------------------------------------------ console
    def console(self, boot: int | None = None) -> str:
        path = self.dir / f"serial-{boot or self.boots}.log"
        try:
            return path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, pattern: str, timeout: float, *, since: int = 0) -> re.Match[str]:
        """Wait until the serial console of the current boot matches ``pattern``
        (after character ``since``); progress every 30 s; fail with the console's tail."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        last_note = time.monotonic()
        while True:
            text = self.console()
            m = rx.search(text, since)
            if m:
                log(f"{self.name}: {pattern!r} after {time.monotonic() - self.started:.0f}s of boot {self.boots}")
                return m
            if self.rebooted():
                log(f"{self.name}: the guest rebooted after {time.monotonic() - self.started:.0f}s: power cycle")
                self.start()
                since = 0  # the pattern may come in the next boot's log
                continue
            if not self.alive():
                raise AssertionError(f"{self.name}: qemu exited ({self.proc and self.proc.returncode}) "
                                     f"waiting for {pattern!r}; console:\n{text[-3000:]}")
            now = time.monotonic()
            if now > deadline:
                raise AssertionError(f"{self.name}: no {pattern!r} within {timeout:.0f}s; console:\n{text[-3000:]}")
            if now - last_note > 30:
                tail = [ln for ln in text.splitlines() if ln.strip()][-1:] or ["(nothing yet)"]
                log(f"{self.name}: waiting for {pattern!r}, {now - self.started:.0f}s: {tail[0][:120]}")
                last_note = now
            time.sleep(1)

    def wait_ready(self, timeout: float = 900) -> dict[str, str]:
        """Fields of the TITANS3-READY line of this boot."""
        m = self.wait_for(r"TITANS3-READY [^\r\n]*\r?\n", timeout)
        return dict(kv.split("=", 1) for kv in m.group(0).split()[1:] if "=" in kv)

    def journal(self, *args: str) -> str:
        """The guest's systemd journal, read from its state partition (post-mortem:
        call with qemu stopped, or accept a torn last entry)."""
        tmp = self.dir / "postmortem"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            raw = tmp / "boot.raw"
            subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", str(self.boot_disk), str(raw)], check=True)
            table = json.loads(subprocess.run(["sfdisk", "--json", str(raw)], capture_output=True, text=True,
                                              check=True).stdout)["partitiontable"]
            part = next(p for p in table["partitions"] if p.get("name") == "titans3-state")
            state = tmp / "state.img"
            subprocess.run(["dd", f"if={raw}", f"of={state}", "bs=512", f"skip={part['start']}",
                            f"count={part['size']}", "status=none"], check=True)
            raw.unlink()
            subprocess.run(["e2fsck", "-fy", str(state)], capture_output=True, check=False)  # replay its journal
            subprocess.run(["debugfs", "-R", f"rdump /journal {tmp}", str(state)], capture_output=True, check=True)
            files = [str(p) for p in (tmp / "journal").rglob("*.journal")]
            if not files:
                return "(no journal files on the state partition)"
            out = subprocess.run(["journalctl", "--no-pager", "-o", "short-monotonic", *(f"--file={f}" for f in files),
                                  *args], capture_output=True, text=True, check=False)
            return out.stdout + out.stderr
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # ------------------------------------------------------------ QMP
    def qmp(self, command: str, **arguments: object) -> object:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(60)
            s.connect(str(self.qmp_path))
            f = s.makefile("rwb")
            json.loads(f.readline())  # greeting
            for cmd, args in (("qmp_capabilities", {}), (command, arguments)):
                f.write(json.dumps({"execute": cmd, "arguments": args}).encode() + b"\n")
                f.flush()
                while True:
                    reply = json.loads(f.readline())
                    if "event" in reply:
                        continue
                    if "error" in reply:
                        raise RuntimeError(f"QMP {cmd}: {reply['error']}")
                    break
            return reply.get("return")

    def sysrq(self, key: str) -> None:
        """SysRq-<key> on the guest's keyboard ('w': blocked tasks to the console)."""
        self.qmp("send-key", keys=[{"type": "qcode", "data": k} for k in ("alt", "sysrq", key)])

    def hot_add(self, disk: Disk) -> None:
        self.qmp("human-monitor-command",
                 **{"command-line": f"drive_add 0 file={disk.path},if=none,id=drv-{disk.id},format=raw"
                                    + (",readonly=on" if disk.readonly else "")})
        self.qmp("device_add", driver="virtio-blk-pci", drive=f"drv-{disk.id}", id=disk.id, serial=disk.id)
        disk.attached = True

    def hot_remove(self, disk: Disk) -> None:
        self.qmp("device_del", id=disk.id)
        disk.attached = False
