"""The page's actions without a shell, in headless Chromium (directory drives).

A directory stands in for each disk.  Pulling a disk is removing its
directory: the health loop marks the drive offline and the page shows which
slot failed.  A new blank disk in its place is an empty directory; "Replace"
claims it, the refill worker fills it (progress on the page) and the slot is
online again with the fragments back.  "Drain" takes a serving drive out; a
replacement directory that still holds files is refused (nothing is wiped).
The support bundle downloads through the browser and holds the logs, the
config without secrets and exactly what ``titanctl info --json`` prints --
and nowhere the root secret; ``titanctl support bundle`` gives the same.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from . import cluster
from .browser import Browser
from .cluster import ROOT, TITANCTL, Daemon, s3_client

PASSWORD = "replace the disk, not the node"
BUCKET = "actions"


@pytest.fixture
def node(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> Daemon:
    return daemon_factory(drives=6, env={"TITANS3_SETUP_CODE_FILE": str(tmp_path / "none")})


@pytest.fixture
def browser(node: Daemon, tmp_path: Path):
    with Browser(tmp_path / "chromium") as b:
        b.open(node.web_endpoint + "/")
        b.fill("#password", PASSWORD)
        b.fill("#repeat", PASSWORD)
        b.click("#password-submit")
        yield b


def rows(b: Browser) -> dict[int, list[str]]:
    return {int(attrs["index"]): cells for attrs, cells in b.rows("#drives")}


def state(b: Browser, i: int) -> str:
    return rows(b)[i][2].split()[0]


def wait_state(b: Browser, url: str, i: int, want: str, timeout: float = 60) -> None:
    def check() -> bool:
        b.open(url)
        return state(b, i) == want
    Browser.wait(check, timeout=timeout, what=f"drive {i} {want}")


def put_objects(node: Daemon, n: int) -> dict[str, bytes]:
    # Every third object is large enough for fragment files (> 128 KiB per
    # fragment at 4+2); the others are inline in the drives' indexes.
    objs = {f"obj-{i:03d}": (f"{i:x}".encode() * 400_000)[: (600_000 if i % 3 == 0 else 20_000) + 997 * i]
            for i in range(n)}
    with closing(s3_client(node)) as s3:
        s3.create_bucket(Bucket=BUCKET)
        for k, v in objs.items():
            s3.put_object(Bucket=BUCKET, Key=k, Body=v)
    return objs


def read_all(node: Daemon, objs: dict[str, bytes]) -> None:
    with closing(s3_client(node)) as s3:
        for k, v in objs.items():
            assert s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() == v, k


def test_a_failed_slot_is_replaced_and_refilled_from_the_page(node: Daemon, browser: Browser) -> None:
    url = node.web_endpoint + "/"
    objs = put_objects(node, 40)
    before = len(node.fragment_files(3))
    assert before > 0
    shutil.rmtree(node.drive_dir(3))  # the disk is pulled
    wait_state(browser, url, 3, "offline", timeout=30)
    assert browser.has('button.replace[data-index="3"]')  # the page shows which slot failed
    assert not browser.has('button.replace[data-index="2"]')
    read_all(node, objs)  # reads go on from parity
    node.drive_dir(3).mkdir()  # a new blank disk in its place
    browser.click('button.replace[data-index="3"]')
    assert "healing: refill started" in browser.text()
    assert state(browser, 3) == "healing"  # reads ignore it until the refill is done
    wait_state(browser, url, 3, "online", timeout=90)
    counters = next(cells[6] for attrs, cells in browser.rows("#workers") if attrs.get("worker") == "refill")
    assert "objects_repaired=" in counters and "bytes_rebuilt=" in counters, counters
    assert len(node.fragment_files(3)) >= before  # the slot holds its fragments again
    read_all(node, objs)


def test_drain_then_a_replacement_that_is_not_blank_is_refused(node: Daemon, browser: Browser) -> None:
    url = node.web_endpoint + "/"
    objs = put_objects(node, 10)
    browser.click('button.drain[data-index="2"]')
    assert "out of service" in browser.text()
    assert state(browser, 2) == "failed"
    read_all(node, objs)
    browser.click('button.replace[data-index="2"]')  # the old drive's files are still there
    assert "is not empty" in browser.text()
    assert (node.drive_dir(2) / "titans3-drive.json").exists()  # nothing was wiped
    shutil.rmtree(node.drive_dir(2))
    node.drive_dir(2).mkdir()
    browser.click('button.replace[data-index="2"]')
    wait_state(browser, url, 2, "online", timeout=90)
    read_all(node, objs)


def _members(path: Path) -> dict[str, str]:
    with tarfile.open(path) as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
                for m in tar.getmembers() if m.isfile()}


def titanctl(node: Daemon, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = cluster.clean_env({"TITANS3_ROOT_ACCESS_KEY": ROOT.access_key,
                             "TITANS3_ROOT_SECRET_KEY": ROOT.secret_key})
    return subprocess.run([str(TITANCTL), "--endpoint", node.endpoint, *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=True)


def test_the_support_bundle_downloads_without_secrets(node: Daemon, browser: Browser, tmp_path: Path) -> None:
    put_objects(node, 3)
    browser.el("#bundle-submit").click()
    path = Browser.wait(lambda: next((p for p in browser.downloads.glob("*.tar.gz")), None),
                        what="the downloaded bundle")
    files = _members(path)
    assert {"info.json", "config.json", "log.txt", "cluster.json", "workers.json", "versions.txt",
            "status.json", "metrics.txt", "README.txt"} <= set(files)
    info = json.loads(files["info.json"])
    ctl = json.loads(titanctl(node, "info", "--json").stdout)
    assert info.keys() == ctl.keys() and info["ec"] == ctl["ec"] and info["host"] == ctl["host"]
    assert [d["drive_id"] for d in info["drives"]] == [d["drive_id"] for d in ctl["drives"]]
    config = json.loads(files["config.json"])
    assert config["root_secret_key"] == "(set)" and config["data"] == str(node.data_dir)
    assert "TitanS3" in files["log.txt"] and "ready" in files["log.txt"]
    for name, text in files.items():
        assert ROOT.secret_key not in text, name
    # The same bundle from titanctl.
    out = tmp_path / "ctl-bundle.tar.gz"
    titanctl(node, "support", "bundle", "-o", str(out))
    ctl_files = _members(out)
    assert json.loads(ctl_files["info.json"]).keys() == info.keys()
    assert all(ROOT.secret_key not in t for t in ctl_files.values())
