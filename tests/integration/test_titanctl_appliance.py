"""The page's actions as titanctl commands, and the page following them live.

* ``titanctl disk drain`` / ``disk replace`` on directory drives: the open page
  (not reloaded) shows the drained slot within seconds -- the live update --;
  a replacement directory that is not empty is refused with exit status 1;
  an empty one becomes the slot's new drive.
* ``titanctl cluster create`` on one fresh host, ``cluster token`` there,
  ``cluster join-token`` on another: ``cluster status`` lists both.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from . import cluster
from .browser import Browser
from .cluster import ROOT, TITANCTL, Daemon
from .peerhosts import plan, running
from .test_web_setup import FreshHost


def ctl(endpoint: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = cluster.clean_env({"TITANS3_ROOT_ACCESS_KEY": ROOT.access_key,
                             "TITANS3_ROOT_SECRET_KEY": ROOT.secret_key})
    out = subprocess.run([str(TITANCTL), "--endpoint", endpoint, *args], env=env, capture_output=True,
                         text=True, timeout=180, check=False)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def test_disk_drain_and_replace_on_directories_and_the_page_follows(
        daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    node = daemon_factory(drives=6, env={"TITANS3_SETUP_CODE_FILE": str(tmp_path / "none")})
    with Browser(tmp_path / "chromium") as b:
        b.open(node.web_endpoint + "/")  # loopback, no password yet: the status, read-only

        def row_state(i: int) -> str:
            return next((c[2].split()[0] for a, c in b.rows("#drives") if a.get("index") == str(i)), "")

        assert row_state(4) == "online"
        out = ctl(node.endpoint, "disk", "drain", "drive-4")
        assert "out of service" in out.stdout
        Browser.wait(lambda: row_state(4) == "failed", timeout=10, what="the live update")
        refused = ctl(node.endpoint, "disk", "replace", "drive-4", str(node.drive_dir(4)), check=False)
        assert refused.returncode == 1 and "is not empty" in refused.stderr
        assert refused.stderr.startswith("titanctl: DiskRefused:")
        shutil.rmtree(node.drive_dir(4))
        node.drive_dir(4).mkdir()
        out = ctl(node.endpoint, "disk", "replace", "drive-4", str(node.drive_dir(4)))
        assert "healing" in out.stdout
        Browser.wait(lambda: row_state(4) in ("healing", "online"), timeout=10, what="the new drive")
        listed = json.loads(ctl(node.endpoint, "disk", "list", "--json").stdout)
        assert listed["mode"] == "directories" and len(listed["disks"]) == 6


def test_titanctl_creates_a_cluster_and_joins_a_host_with_a_token(tmp_path: Path) -> None:
    addrs, ports, peers = plan(2)
    a, b = (FreshHost(addrs[i], tmp_path, i + 1, peers, ports[i], drives=2,
                      env={"TITANS3_SETUP_CODE_FILE": str(tmp_path / "none")}) for i in range(2))
    with running([a, b]):
        ctl(a.endpoint, "cluster", "create", "--address", a.peer_address)
        token = ctl(a.endpoint, "cluster", "token").stdout.split()[0]
        assert token.startswith("t3j1.")
        out = ctl(b.endpoint, "cluster", "join-token", token, "--address", b.peer_address)
        assert "joined" in out.stdout
        again = ctl(b.endpoint, "cluster", "join-token", token, "--address", b.peer_address, check=False)
        assert again.returncode == 1 and "already a cluster member" in again.stderr
        status = json.loads(ctl(b.endpoint, "cluster", "status", "--json").stdout)
        assert {h["address"] for h in status["hosts"]} == {a.peer_address, b.peer_address}
