"""Access control on a 3-host TLS cluster: keys disabled or deleted on one host stop
working on every host within 2 s, a host that was down catches up when it
restarts, concurrent changes of one user through every host all land, and
``aws:SecureTransport`` is true over HTTPS with the cluster CA."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from .access import make_user
from .cluster import REGION, ROOT, TITANCTL, Credentials, clean_env
from .peerhosts import ClusterHost, plan, running
from .rawhttp import sign

HOSTS = 3
BUCKET = "shared"
PROPAGATION_LIMIT = 2.0  # seconds (issue 14)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("access-tls")
    hosts = ",".join(f"host{i + 1}=127.0.0.{i + 1}" for i in range(HOSTS))
    proc = subprocess.run([str(TITANCTL), "cluster", "init", "--out", str(base / "ca"), "--hosts", hosts],
                          capture_output=True, text=True, env=clean_env(), timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return base


@pytest.fixture(scope="module")
def hosts(certs: Path) -> Iterator[list[ClusterHost]]:
    addrs, ports, peers = plan(HOSTS)
    ca = certs / "ca"
    made = [
        ClusterHost(a, certs, i + 1, peers, p, drives=2, ca=ca / "ca.pem", extra=[
            "--tls-cert", str(ca / f"host{i + 1}.pem"), "--tls-key", str(ca / f"host{i + 1}-key.pem"),
            "--tls-ca", str(ca / "ca.pem"), "--audit-journal", "off"])
        for i, (a, p) in enumerate(zip(addrs, ports, strict=True))
    ]  # fmt: skip
    with running(made) as hs:
        root = client(hs[0], ROOT)
        root.create_bucket(Bucket=BUCKET)
        root.put_object(Bucket=BUCKET, Key="doc.txt", Body=b"shared document")
        root.close()
        yield hs


def client(host: ClusterHost, creds: Credentials):  # noqa: ANN201
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3", endpoint_url=host.endpoint, aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key, region_name=REGION, verify=str(host.ca),
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}, connect_timeout=5,
                      read_timeout=30),
    )  # fmt: skip


def tls(host: ClusterHost) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(host.ca))


def answer(host: ClusterHost, creds: Credentials) -> str:
    """What a GET of the shared document through ``host`` answers with these credentials."""
    url = f"{host.endpoint}/{BUCKET}/doc.txt"
    with httpx.Client(verify=tls(host), trust_env=False, timeout=10) as c:
        r = c.get(url, headers=sign("GET", url, creds))
    if r.status_code == 200:
        return "ok"
    return f"{r.status_code} " + (r.text.split("<Code>")[1].split("</Code>")[0] if "<Code>" in r.text else "")


def admin(host: ClusterHost, path: str, **query: str) -> dict:
    """One admin call signed in-process (so timing starts when the server answered)."""
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    url = f"{host.endpoint}/titans3/admin/v1/{path}" + (f"?{qs}" if qs else "")
    with httpx.Client(verify=tls(host), trust_env=False, timeout=30) as c:
        r = c.post(url, headers=sign("POST", url, ROOT))
    assert r.status_code == 200, r.text
    return r.json()


def wait_everywhere(hosts: list[ClusterHost], creds: Credentials, want_ok: bool, limit: float) -> list[float]:
    """Seconds until each host answers as wanted (polled every 50 ms); fails past ``limit``."""
    start = time.monotonic()

    def one(h: ClusterHost) -> float:
        while True:
            got = answer(h, creds)
            if (got == "ok") is want_ok:
                assert want_ok or got.startswith("403"), got
                return time.monotonic() - start
            if time.monotonic() - start > limit:
                raise AssertionError(f"{h.name} still answers {got!r} after {limit}s")
            time.sleep(0.05)

    with ThreadPoolExecutor(len(hosts)) as pool:
        return list(pool.map(one, hosts))


def user_on(hosts: list[ClusterHost], name: str) -> Credentials:
    creds, _ = make_user(hosts[0].endpoint, name, ca=hosts[0].ca, policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}]})
    wait_everywhere(hosts, creds, True, 10.0)  # a new key reaches every host too
    return creds


def test_disabled_and_deleted_keys_stop_working_on_every_host_within_2s(hosts: list[ClusterHost]) -> None:
    creds = user_on(hosts, "roamer")
    admin(hosts[0], "keys/disable", id=creds.access_key)
    disabled = wait_everywhere(hosts, creds, False, PROPAGATION_LIMIT)
    admin(hosts[1], "keys/enable", id=creds.access_key)  # changed through another host
    enabled = wait_everywhere(hosts, creds, True, PROPAGATION_LIMIT)
    admin(hosts[2], "keys/delete", id=creds.access_key)
    deleted = wait_everywhere(hosts, creds, False, PROPAGATION_LIMIT)
    print(f"propagation (s): disable {max(disabled):.2f}, enable {max(enabled):.2f}, delete {max(deleted):.2f}")
    assert all(answer(h, creds) == "403 InvalidAccessKeyId" for h in hosts)
    # A disabled user: every key of theirs, on every host.
    other = user_on(hosts, "wanderer")
    admin(hosts[0], "users/disable", name="wanderer")
    assert max(wait_everywhere(hosts, other, False, PROPAGATION_LIMIT)) <= PROPAGATION_LIMIT


def test_a_host_that_was_down_catches_up_when_it_restarts(hosts: list[ClusterHost]) -> None:
    old = user_on(hosts, "sleeper")
    down = hosts[2]
    down.stop()
    admin(hosts[0], "keys/disable", id=old.access_key)
    doc = admin(hosts[0], "keys/create", user="sleeper")
    new = Credentials(doc["key"]["id"], doc["key"]["secret"])
    down.start()  # waits until its S3 port answers
    assert answer(down, new) == "ok"  # the first request after the restart already knows
    assert answer(down, old) == "403 InvalidAccessKeyId"


def test_changes_of_one_user_through_every_host_at_once_all_land(hosts: list[ClusterHost]) -> None:
    """Every put-user-policy is a compare-and-set update of the same user record
    on a majority of the cluster's drives; racing through three hosts, none may be lost."""
    import boto3

    make_user(hosts[0].endpoint, "crowded", ca=hosts[0].ca)
    per_host = 5  # 15 policies: within IAM's 2,048 characters per user
    retried: list[str] = []

    def put_all(i: int) -> list[str]:
        iam = boto3.session.Session().client(
            "iam", endpoint_url=hosts[i].endpoint, aws_access_key_id=ROOT.access_key,
            aws_secret_access_key=ROOT.secret_key, region_name=REGION, verify=str(hosts[i].ca))  # fmt: skip
        names = []
        for n in range(per_host):
            name = f"h{i}p{n}"
            doc = {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/{name}/*"}]}
            for _ in range(5):  # 409 OperationAborted says "try again" (updates kept racing)
                try:
                    iam.put_user_policy(UserName="crowded", PolicyName=name, PolicyDocument=json.dumps(doc))
                    break
                except iam.exceptions.ClientError as e:
                    if e.response["Error"]["Code"] != "OperationAborted":
                        raise
                    retried.append(name)
            else:
                raise AssertionError(f"{name}: still OperationAborted after 5 tries")
            names.append(name)
        iam.close()
        return names

    with ThreadPoolExecutor(HOSTS) as pool:
        written = sorted(n for names in pool.map(put_all, range(HOSTS)) for n in names)
    print(f"put-user-policy through {HOSTS} hosts at once: {len(retried)} retries after a 409, {len(written)} policies")
    for h in hosts:  # each host's view, once its directory caught up
        iam = boto3.session.Session().client(
            "iam", endpoint_url=h.endpoint, aws_access_key_id=ROOT.access_key,
            aws_secret_access_key=ROOT.secret_key, region_name=REGION, verify=str(h.ca))  # fmt: skip
        deadline = time.monotonic() + PROPAGATION_LIMIT
        while True:
            listed = sorted(iam.list_user_policies(UserName="crowded")["PolicyNames"])
            if listed == written or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        iam.close()
        assert listed == written, (h.name, sorted(set(written) - set(listed)))


def test_secure_transport_is_true_over_https(hosts: list[ClusterHost]) -> None:
    root = client(hosts[0], ROOT)
    root.put_object(Bucket=BUCKET, Key="tls-only/b.txt", Body=b"b")
    root.delete_public_access_block(Bucket=BUCKET)
    root.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadOverTLS", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{BUCKET}/*", "Condition": {"Bool": {"aws:SecureTransport": "true"}}},
        {"Sid": "NotThisOneOverTLS", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{BUCKET}/tls-only/*", "Condition": {"Bool": {"aws:SecureTransport": "true"}}},
    ]}))  # fmt: skip
    for h in hosts:  # every host, through the cluster CA (the bucket record is shared)
        deadline = time.monotonic() + 5
        while True:
            with httpx.Client(verify=tls(h), trust_env=False, timeout=10) as c:
                public = c.get(f"{h.endpoint}/{BUCKET}/doc.txt")
                denied = c.get(f"{h.endpoint}/{BUCKET}/tls-only/b.txt")
            if public.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # bucket configuration is eventually consistent across hosts (1 s)
        assert (public.status_code, public.content) == (200, b"shared document"), h.name
        assert denied.status_code == 403 and b"<Code>AccessDenied</Code>" in denied.content, h.name
    root.delete_bucket_policy(Bucket=BUCKET)
    root.close()
