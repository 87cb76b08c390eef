"""The appliance image booted the way a server boots it (UEFI/OVMF, qemu TCG).

One VM goes through a node's life in order -- the tests of this module share
it and each picks up where the previous left it (TCG boots cost minutes, so
a boot is never repeated just to get a clean slate, and no boot is spent on
one check alone):

1. first boot with six blank virtio disks and one ext4 disk: S3 answers with
   the credentials the console shows, the six are claimed, the ext4 disk is
   untouched; the status page (headless Chromium) takes the console's setup
   code and an admin password, then shows the drives and suggests the node's
   own address as its peer address;
2. a disk pulled (``device_del``) is marked failed, reads keep working, a
   blank disk pushed into the machine (``device_add``) takes the slot and is
   refilled; one more blank disk becomes a spare by itself;
3. an upgrade medium signed by a stranger's key is refused; the release N+1
   (image/mkupdate.sh: N's base with this checkout's package -- seconds, not
   a second image build) is installed from an inserted medium, and the power
   is cut (qemu SIGKILL) the moment it is installed, with objects written just
   before: the node powers on into N+1 with every object intact;
4. a release broken on purpose boots, fails its health check, and the node
   falls back to N+1 by itself.

Marker ``vm``: ./scripts/test.sh (CI) runs all four.  Times are printed as
the tests go; docs/appliance.md has the measured ones.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hwtests.appliance import (
    Build,
    Node,
    Update,
    broken_release,
    build,
    require_vm_tools,
    sha256,
    untrusted_medium,
    update,
)
from hwtests.vm import VM, log
from titans3 import __version__

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]

V1, V2, V3 = (f"{__version__}-vm{i}" for i in (1, 2, 3))
OBJECTS = {f"obj-{n}": os.urandom(n) for n in (0, 1000, 200_000, 3_000_000)}
LATE = {f"late-{n}": os.urandom(n) for n in (10, 500_000)}  # written right before a power cut
BUCKET = "appliance"
ADMIN_PASSWORD = "appliance admin password"


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_vm_tools()
    out = tmp_path_factory.mktemp("image")
    yield out
    shutil.rmtree(out, ignore_errors=True)  # ~3 GiB of images


@pytest.fixture(scope="session")
def image_n(image_dir: Path) -> Build:
    b = build(image_dir, V1)
    log(f"image {V1}: {b.raw.stat().st_size >> 20} MiB raw, built in {b.seconds:.0f}s")
    return b


@pytest.fixture(scope="module")
def node(image_n: Build, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    work = tmp_path_factory.mktemp("vm")
    vm = VM(work, image_n.raw)
    for i in range(6):
        vm.new_disk(f"d{i}")
    ext = vm.ext4_disk("ext4data")
    n = Node(vm)
    n.ext4_path = ext.path  # type: ignore[attr-defined]
    n.ext4_sum = sha256(ext.path)  # type: ignore[attr-defined]
    try:
        yield n
    finally:
        vm.kill()
        # Post-mortem for whoever reads a failure: the guest's journal, from its state partition.
        with contextlib.suppress(Exception):
            (vm.dir / "journal.txt").write_text(vm.journal())
            log(f"guest journal: {vm.dir / 'journal.txt'}")
        for p in work.rglob("*"):
            if p.suffix in (".raw", ".qcow2"):
                p.unlink()


def read_all(node: Node, objects: dict[str, bytes] = OBJECTS) -> None:
    s3 = node.s3()
    for key, body in objects.items():
        got = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert got == body, f"{key}: {len(got)} bytes back, wrote {len(body)}"


# ---------------------------------------------------------------- 1. first boot
def test_first_boot_claims_blank_disks_and_serves_s3(node: Node, tmp_path: Path) -> None:
    t0 = time.monotonic()
    fields = node.boot()
    log(f"first boot: ready after {time.monotonic() - t0:.0f}s")
    console = node.vm.console()
    # What the console shows a person: address, status page, S3 endpoint, setup code, credentials.
    assert re.fullmatch(r"[A-Z2-9]{4}(-[A-Z2-9]{4}){2}", fields["setup_code"]), fields
    assert f"Setup code:   {fields['setup_code']}" in console
    assert f"Status page:  http://{fields['address']}/" in console
    assert f"AWS_ACCESS_KEY_ID={node.access_key}" in console
    assert fields["hostname"].startswith("titans3-")

    s3 = node.s3()
    s3.create_bucket(Bucket=BUCKET)
    for key, body in OBJECTS.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    read_all(node)
    # Wrong credentials are refused (the node really checks what it showed).
    bad = Node(node.vm)
    bad.access_key, bad.secret_key = node.access_key, "x" * 40
    with pytest.raises(Exception, match="SignatureDoesNotMatch|403"):
        bad.s3().list_objects_v2(Bucket=BUCKET)

    disks = node.disks()
    slots = [d for d in disks if d["slot"]]
    assert len(slots) == 6 and all(d["state"] == "online" for d in slots), disks
    assert sorted(d["device"] for d in slots) == [f"/dev/vd{c}" for c in "bcdefg"], disks
    ignored = {d["device"]: d for d in disks if d["state"] == "ignored"}
    assert "ext4" in ignored["/dev/vdh"]["reason"], disks       # the disk with data
    assert "mounted" in ignored["/dev/vda"]["reason"], disks    # the boot disk
    assert sha256(node.ext4_path) == node.ext4_sum, "the ext4 disk was written to"  # type: ignore[attr-defined]

    # The status page leads through setup: the console's code, then the admin password;
    # then it shows the drives (headless Chromium, as a person would use it).
    from tests.integration.browser import Browser

    png = tmp_path / "status.png"
    with Browser(tmp_path / "chromium") as b:
        b.driver.set_page_load_timeout(300)
        b.driver.set_window_size(1280, 1600)
        b.open(node.web_url)
        assert b.has("#setup-code") and not b.has("#drives"), b.text()[:500]
        b.fill("#code", fields["setup_code"])
        b.click("#code-submit")
        assert b.has("#setup-password"), b.text()[:500]
        b.fill("#password", ADMIN_PASSWORD)
        b.fill("#repeat", ADMIN_PASSWORD)
        b.click("#password-submit")
        Browser.wait(lambda: b.has("#drives"), timeout=120, what="the drives table")
        Browser.wait(lambda: all(d["drive_id"][:12] in b.text("#drives") for d in slots), timeout=120,
                     what="every claimed drive on the page")
        # Reached through a forwarded port (Host: 127.0.0.1:P), the page still suggests
        # the address peers reach the node at: the one its console shows.
        assert b.el("#create-address").get_attribute("value") == f"{fields['address']}:9100"
        b.driver.save_screenshot(str(png))
    assert png.stat().st_size > 10_000
    keep = os.environ.get("TITANS3_SCREENSHOT_DIR")
    if keep:
        shutil.copy(png, Path(keep) / "appliance-status.png")
    log(f"status page screenshot: {png}")


# ---------------------------------------------------------------- 2. disks
def test_pulled_disk_fails_and_a_new_disk_in_its_place_is_refilled(node: Node) -> None:
    before = {d["drive_id"]: d for d in node.disks() if d["slot"]}
    victim = next(d for d in node.vm.disks if d.id == "d2")
    t0 = time.monotonic()
    node.vm.hot_remove(victim)
    disks = node.wait_disks("show one failed drive",
                            lambda ds: sum(d["state"] == "failed" for d in ds) == 1, timeout=600)
    failed = next(d for d in disks if d["state"] == "failed")
    assert failed["drive_id"] in before
    log(f"pulled disk marked failed after {time.monotonic() - t0:.0f}s")
    read_all(node)  # reads keep working on five disks

    new = node.vm.new_disk("d2new", attach=False)
    t0 = time.monotonic()
    node.vm.hot_add(new)
    slot = before[failed["drive_id"]]["slot"]

    def refilled(ds: list[dict[str, object]]) -> bool:
        row = next((d for d in ds if d["slot"] == slot), None)
        return row is not None and row["drive_id"] != failed["drive_id"] and row["state"] == "online"

    node.wait_disks(f"refilled {slot} on the new disk", refilled, timeout=900)
    log(f"new disk claimed and refilled after {time.monotonic() - t0:.0f}s")
    read_all(node)

    # With every slot served, one more blank disk becomes a spare by itself.
    extra = node.vm.new_disk("d7", attach=False)
    t0 = time.monotonic()
    node.vm.hot_add(extra)
    disks = node.wait_disks("hold the extra disk as a spare",
                            lambda ds: any(d["state"] == "spare" for d in ds), timeout=600)
    log(f"extra disk became a spare after {time.monotonic() - t0:.0f}s")
    assert sum(d["state"] == "online" for d in disks if d["slot"]) == 6, disks


# ---------------------------------------------------------------- 3-4. upgrades
@pytest.fixture(scope="module")
def releases(image_dir: Path, image_n: Build) -> tuple[Update, Path, Path]:
    good = update(image_dir, image_n, V2)
    log(f"release {V2} (from {V1}'s parts): made in {good.seconds:.0f}s")
    return good, broken_release(good, V3, image_dir), untrusted_medium(good, image_dir)


def test_power_cut_right_after_an_upgrade_installs_boots_the_new_version_with_every_object(
    node: Node, releases: tuple[Update, Path, Path]
) -> None:
    good, _, stranger = releases
    code = node.fields["setup_code"]
    s3 = node.s3()
    for key, body in LATE.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)

    # A medium of the same version signed by a key the image does not trust: refused,
    # and not remembered as tried (the trusted medium of that version installs next).
    bad = node.vm.attach_file("upd-stranger", stranger)
    mark = len(node.vm.console())
    node.vm.hot_add(bad)
    node.vm.wait_for(r"titans3-upgrade: refusing the medium: signature refused: signed by key \w+, "
                     r"which this node does not trust", 600, since=mark)
    node.vm.hot_remove(bad)

    medium = node.vm.attach_file("upd-good", good.upgrade)
    mark = len(node.vm.console())
    t0 = time.monotonic()
    node.vm.hot_add(medium)
    node.vm.wait_for(r"titans3-upgrade: installed " + re.escape(V2), 1200, since=mark)
    log(f"upgrade {V1} -> {V2} installed after {time.monotonic() - t0:.0f}s; cutting the power")
    node.vm.kill()  # the power fails before the node could reboot cleanly
    medium.attached = False  # and the stick is pulled while it is off
    t1 = time.monotonic()
    fields = node.boot()
    log(f"power on after the cut: {fields['version']} ready after {time.monotonic() - t1:.0f}s "
        f"({time.monotonic() - t0:.0f}s since the medium went in)")
    assert fields["version"] == V2
    assert code != "none" and fields["setup_code"] == "none"  # consumed by the page's setup
    console = node.vm.console()
    assert "Setup:        complete" in console
    assert "AWS_SECRET_ACCESS_KEY" not in console  # credentials are shown once
    read_all(node)
    read_all(node, LATE)
    disks = node.disks()
    assert sum(d["state"] == "online" for d in disks if d["slot"]) == 6, disks
    assert any(d["state"] == "spare" for d in disks), disks


def test_a_broken_release_fails_its_boot_check_and_the_node_falls_back(
    node: Node, releases: tuple[Update, Path, Path]
) -> None:
    _, broken, _ = releases
    bad = node.vm.attach_file("upd-bad", broken)
    mark = len(node.vm.console())
    t0 = time.monotonic()
    node.vm.hot_add(bad)
    node.vm.wait_for(r"TITANS3-FAILED version=" + re.escape(V3), 1800, since=mark)
    failed_boot = node.vm.boots
    node.ready(timeout=1800, since=len(node.vm.console()), version=re.escape(V2))
    log(f"broken {V3} rolled back to {V2} after {time.monotonic() - t0:.0f}s")
    assert node.vm.boots > failed_boot  # the node rebooted itself (a power cycle, for qemu)
    assert f"{V3} failed its boot check; running {V2}" in node.vm.console()
    read_all(node)
    read_all(node, LATE)
    node.vm.hot_remove(bad)
