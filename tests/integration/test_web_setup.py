"""First boot without a shell: setup code, password, create a cluster, join a host.

Two fresh hosts (no ``--peers``, no cluster secret), each on its own loopback
address, set up through their pages in headless Chromium:

* host A is an appliance: its setup code file exists, so its page asks for
  the code first (a wrong code is refused), then the password, then "create a
  new cluster"; its page then shows a one-host cluster and makes a join token;
* host B is a dev node (no code file: loopback only): password, then "join"
  with A's address and the token; B's page then asks for the cluster's
  admin password (A's; B's own no longer works), lists both hosts, an object written through A
  reads through B, the token cannot be redeemed twice, and B restarts into
  the cluster (its secret was saved sealed).
"""

from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path

import boto3
import httpx
from botocore.config import Config

from titans3.cluster import jointoken
from titans3.drive import wire

from . import cluster
from .browser import Browser
from .cluster import ROOT
from .peerhosts import ClusterHost, plan, running

CODE = "K7QF-93MD-X2PA"
PASSWORD_A = "first cluster password"
PASSWORD_B = "only until it joins"


class FreshHost(ClusterHost):
    """A host as it comes up on first boot: no --peers, no cluster secret."""

    def argv(self) -> list[str]:
        argv = super().argv()
        for flag in ("--peers", "--cluster-secret"):
            i = argv.index(flag)
            argv = argv[:i] + argv[i + 2:]
        return argv


def s3(host: ClusterHost):
    return boto3.session.Session().client(
        "s3", endpoint_url=host.endpoint, aws_access_key_id=ROOT.access_key,
        aws_secret_access_key=ROOT.secret_key, region_name=cluster.REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}))


def hosts_rows(b: Browser) -> list[list[str]]:
    return [cells for _, cells in b.rows("#hosts")]


def test_two_fresh_hosts_become_a_cluster_through_their_pages(tmp_path: Path) -> None:
    addrs, ports, peers = plan(2)
    code_file = tmp_path / "setup-code"
    code_file.write_text(CODE + "\n")
    a = FreshHost(addrs[0], tmp_path, 1, peers, ports[0], drives=2,
                  env={"TITANS3_SETUP_CODE_FILE": str(code_file)})
    b = FreshHost(addrs[1], tmp_path, 2, peers, ports[1], drives=2,
                  env={"TITANS3_SETUP_CODE_FILE": str(tmp_path / "absent")})
    with running([a, b]), Browser(tmp_path / "chrome-a") as ba, Browser(tmp_path / "chrome-b") as bb:
        # --- host A: code, password, create
        url_a = f"http://{a.addr}:{a.web_port}/"
        ba.open(url_a)
        assert ba.has("#setup-code") and not ba.has("#drives")  # nothing but the prompt
        ba.fill("#code", "WRONG-CODE")
        ba.click("#code-submit")
        assert "not the setup code" in ba.text()
        ba.fill("#code", CODE.lower().replace("-", " "))  # as a person may type it
        ba.click("#code-submit")
        assert ba.has("#setup-password")
        ba.fill("#password", PASSWORD_A)
        ba.fill("#repeat", PASSWORD_A)
        ba.click("#password-submit")
        assert not code_file.exists()  # the code is single-use
        assert ba.has("#setup-cluster")
        assert ba.el("#create-address").get_attribute("value") == a.peer_address
        ba.click("#create-submit")
        assert "Cluster created" in ba.text()
        rows = hosts_rows(ba)
        assert len(rows) == 1 and rows[0][1] == a.peer_address and rows[0][2] == "online", rows
        ba.click("#token-submit")
        token = ba.text("#join-token-value")
        assert token.startswith("t3j1.") and ba.text("#token-address") == a.peer_address

        # --- host B: password, join with A's token
        url_b = f"http://{b.addr}:{b.web_port}/"
        bb.open(url_b)
        bb.fill("#password", PASSWORD_B)
        bb.fill("#repeat", PASSWORD_B)
        bb.click("#password-submit")
        bb.fill("#join-member", a.peer_address)
        bb.fill("#join-token", token)
        assert bb.el("#join-address").get_attribute("value") == b.peer_address
        bb.click("#join-submit")
        assert "Joined the cluster" in bb.text(), bb.text()[:800]
        # The cluster's admin password (A's) is the one B takes now; B's own
        # only protected its setup, and the session made with it has ended.
        assert bb.has("#login")
        bb.fill("#password", PASSWORD_B)
        bb.click("#login-submit")
        assert "Wrong password" in bb.text()
        bb.fill("#password", PASSWORD_A)
        bb.click("#login-submit")
        assert bb.has("#logout") and bb.has("#add-node")

        def both_online() -> bool:
            bb.open(url_b)
            rows = hosts_rows(bb)
            return len(rows) == 2 and all(r[2] == "online" for r in rows)

        Browser.wait(both_online, timeout=60, what="both hosts online on B's page")
        assert {r[1] for r in hosts_rows(bb)} == {a.peer_address, b.peer_address}

        # The token was spent: redeeming it again is refused by A.
        tok = jointoken.decode(token)
        req = jointoken.redeem_request(tok, joiner_address="127.0.0.9:1", joiner_host="x", now=time.time())
        again = httpx.post(f"http://{a.peer_address}/peer/v1/join/redeem", content=wire.pack(req), timeout=10)
        assert again.status_code == 403 and b"unknown, used or expired" in again.content

        # One cluster: an object written through A reads through B.
        with closing(s3(a)) as c:
            c.create_bucket(Bucket="setup-flow")
            c.put_object(Bucket="setup-flow", Key="hello", Body=b"one cluster")
        with closing(s3(b)) as c:
            assert c.get_object(Bucket="setup-flow", Key="hello")["Body"].read() == b"one cluster"

        # B restarts into the cluster without --peers or a secret on its command line.
        mark = b.log_mark()
        b.restart()
        Browser.wait(lambda: b.answers(), timeout=60, what="B back")
        with closing(s3(b)) as c:
            deadline = time.monotonic() + 30
            while True:
                try:
                    assert c.get_object(Bucket="setup-flow", Key="hello")["Body"].read() == b"one cluster"
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        assert "cluster formed: 2 hosts" in b.log_since(mark)
