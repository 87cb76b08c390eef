"""The disk admin API: JSON for the root key, typed refusals as S3 errors,
and a clear answer on a node that runs on directories."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from titans3.disks.errors import DiskRefused

from .memstore import MemAdmin
from .s3harness import USER, USER_SECRET, call, make_app, run


@dataclass(frozen=True)
class Stats:
    slots: int = 6


class FakeDisks:
    auto = True

    def statistics(self) -> Stats:
        return Stats()

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def list_disks(self) -> list[dict[str, Any]]:
        return [{"device": "/dev/loop3", "drive_id": "ab" * 16, "slot": "h/drive-0", "state": "online"}]

    async def claim(self, device: str, *, force: bool) -> dict[str, Any]:
        self.calls.append(("claim", (device, force)))
        if not force:
            raise DiskRefused(f"{device} has an ext4 filesystem; `titanctl disk claim --force {device}` erases it")
        return {"device": device, "message": "ok"}

    async def replace(self, old: str, new: str, *, force: bool) -> dict[str, Any]:
        self.calls.append(("replace", (old, new, force)))
        return {"message": "replaced"}


class DiskAdmin(MemAdmin):
    def __init__(self) -> None:
        self.disks = FakeDisks()


def test_disk_list_on_a_directory_node_shows_its_drives():
    async def main():
        app, _ = make_app()
        return await call(app, "GET", "/titans3/admin/v1/disks")

    r = run(main)
    assert r.status == 200
    doc = json.loads(r.body)
    assert doc["mode"] == "directories"
    assert [(d["drive_id"], d["state"], d["path"]) for d in doc["disks"]] == [("d1", "online", "/srv/d1")]


def test_disk_changes_on_a_directory_node_are_refused_with_the_reason():
    async def main():
        app, _ = make_app()
        return await call(app, "POST", "/titans3/admin/v1/disks/claim", "device=%2Fdev%2Fsdb")

    r = run(main)
    assert (r.status, r.code) == (409, "DiskManagementOff")
    assert "--disks" in r.xml().findtext("Message")


def test_disk_calls_reach_the_manager_with_their_arguments():
    admin = DiskAdmin()

    async def main():
        app, _ = make_app(admin=admin)
        listed = await call(app, "GET", "/titans3/admin/v1/disks")
        forced = await call(app, "POST", "/titans3/admin/v1/disks/claim", "device=%2Fdev%2Fsdb&force=1")
        swapped = await call(app, "POST", "/titans3/admin/v1/disks/replace", "new=%2Fdev%2Fsdc&old=ab12")
        return listed, forced, swapped

    listed, forced, swapped = run(main)
    assert json.loads(listed.body)["mode"] == "auto"
    assert json.loads(listed.body)["statistics"] == {"slots": 6}
    assert json.loads(forced.body) == {"device": "/dev/sdb", "message": "ok"}
    assert swapped.status == 200
    assert admin.disks.calls == [("claim", ("/dev/sdb", True)), ("replace", ("ab12", "/dev/sdc", False))]


def test_a_refused_claim_is_one_s3_error_that_says_what_to_do():
    async def main():
        app, _ = make_app(admin=DiskAdmin())
        return await call(app, "POST", "/titans3/admin/v1/disks/claim", "device=%2Fdev%2Fsdb")

    r = run(main)
    assert (r.status, r.code) == (409, "DiskRefused")
    assert r.xml().findtext("Message") == (
        "/dev/sdb has an ext4 filesystem; `titanctl disk claim --force /dev/sdb` erases it")


def test_disk_calls_need_their_arguments_and_the_root_key():
    async def main():
        app, _ = make_app(admin=DiskAdmin())
        missing = await call(app, "POST", "/titans3/admin/v1/disks/drain")
        user = await call(app, "GET", "/titans3/admin/v1/disks", key=USER, secret=USER_SECRET)
        return missing, user

    missing, user = run(main)
    assert (missing.status, missing.code) == (400, "InvalidArgument")
    assert (user.status, user.code) == (403, "AccessDenied")
