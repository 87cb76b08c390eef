"""Data protection in a 3-host cluster.  Encryption: a key made on one host
(SSE-S3's internal key, a ``titanctl kms`` key) opens objects on every host, and a
disable on one host is seen by all.  Lifecycle in the same cluster (127.0.0.1-3, one drive each, EC 1+2 so that deletes keep their
quorum with a host down): every rule
fires once per object cluster-wide -- one delete marker per expired key -- even
when a host is SIGKILLed in the middle of the pass; the survivors take over the
dead host's buckets."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import closing

import pytest

from titans3.workers.lifecycle import rendezvous_owner

from .durability import wait_for
from .peerhosts import ClusterHost, plan, running, s3_client

HOSTS = 3
KEYS = 15
ENV = {"TITANS3_LIFECYCLE_DAY": "2", "TITANS3_LIFECYCLE_INTERVAL": "1",
       "TITANS3_LIFECYCLE_RATE": "10"}


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ClusterHost]]:
    base = tmp_path_factory.mktemp("lc-cluster")
    addrs, ports, peers = plan(HOSTS)
    made = [ClusterHost(a, base, i + 1, peers, p, drives=1, extra=["--ec", "1+2"], env=dict(ENV))
            for i, (a, p) in enumerate(zip(addrs, ports, strict=True))]
    with running(made) as up:
        yield up


def _lifecycle(h: ClusterHost) -> dict:
    from .test_titanctl import titanctl

    r = titanctl("lifecycle", "status", "--json", endpoint=h.endpoint)
    return json.loads(r.stdout)["lifecycle"] if r.returncode == 0 else {"error": r.stderr}


def _markers(s3, bucket: str) -> dict[str, int]:
    out: dict[str, int] = {}
    kw: dict[str, str] = {}
    while True:
        page = s3.list_object_versions(Bucket=bucket, **kw)
        for m in page.get("DeleteMarkers", []):
            out[m["Key"]] = out.get(m["Key"], 0) + 1
        if not page.get("IsTruncated"):
            return out
        kw = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}


def test_encrypted_objects_read_back_through_every_host(hosts: list[ClusterHost]) -> None:
    from botocore.exceptions import ClientError

    from .test_titanctl import titanctl

    r = titanctl("kms", "create", "--json", endpoint=hosts[1].endpoint)
    assert r.returncode == 0, r.stderr
    kid = json.loads(r.stdout)["key"]["key_id"]
    with closing(s3_client(hosts[0])) as s3:
        s3.create_bucket(Bucket="sse-cluster")
        s3.put_object(Bucket="sse-cluster", Key="s3", Body=b"a" * 100_000, ServerSideEncryption="AES256")
        s3.put_object(Bucket="sse-cluster", Key="kms", Body=b"b" * 1000,
                      ServerSideEncryption="aws:kms", SSEKMSKeyId=kid)
    for h in hosts:
        with closing(s3_client(h)) as s3:
            assert s3.get_object(Bucket="sse-cluster", Key="s3")["Body"].read() == b"a" * 100_000
            assert s3.get_object(Bucket="sse-cluster", Key="kms")["Body"].read() == b"b" * 1000
    assert titanctl("kms", "disable", kid, endpoint=hosts[2].endpoint).returncode == 0

    def refused_everywhere() -> bool:
        for h in hosts:
            with closing(s3_client(h)) as s3:
                try:
                    s3.get_object(Bucket="sse-cluster", Key="kms")
                    return False  # this host still holds the key as enabled (cache: <= 2 s)
                except ClientError as e:
                    if e.response["ResponseMetadata"]["HTTPStatusCode"] != 403:
                        return False
        return True

    wait_for("the disable to reach every host", refused_everywhere, timeout=10)
    assert titanctl("kms", "enable", kid, endpoint=hosts[0].endpoint).returncode == 0


def _buckets(hosts: list[ClusterHost], per_host: int = 2) -> list[str]:
    """Bucket names that give every host (the killed one too) its share to own."""
    peers = [h.peer_address for h in hosts]
    chosen: dict[str, list[str]] = {p: [] for p in peers}
    for i in range(1000):
        name = f"lc-cluster-{i}"
        owner = chosen[rendezvous_owner(name, peers)]
        if len(owner) < per_host:
            owner.append(name)
    return sorted(n for names in chosen.values() for n in names)


def test_every_object_expires_once_with_a_host_killed_mid_pass(hosts: list[ClusterHost]) -> None:
    BUCKETS = _buckets(hosts)  # noqa: N806
    with closing(s3_client(hosts[0])) as s3:
        for b in BUCKETS:
            s3.create_bucket(Bucket=b)
            s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
            for i in range(KEYS):
                s3.put_object(Bucket=b, Key=f"tmp/{i:03d}", Body=b"x")
            s3.put_object(Bucket=b, Key="keep", Body=b"k")
        for b in BUCKETS:
            s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": [
                {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"},
                 "Expiration": {"Days": 1}}]})
        # Let the passes start (rate 10/s: a host's share takes seconds), then crash one host.
        wait_for("the first expirations", lambda: any(_markers(s3, b) for b in BUCKETS), timeout=60)
    hosts[2].kill()
    killed_share = [b for b in BUCKETS if rendezvous_owner(b, [h.peer_address for h in hosts])
                    == hosts[2].peer_address]
    assert len(killed_share) == 2
    with closing(s3_client(hosts[0])) as s3:
        def all_expired() -> bool:
            return all(len(_markers(s3, b)) == KEYS for b in BUCKETS)

        try:
            wait_for("every tmp/ key to expire on the survivors", all_expired, timeout=120)
        except AssertionError:
            raise AssertionError(f"{[len(_markers(s3, b)) for b in BUCKETS]} "
                                 f"{[_lifecycle(h) for h in hosts[:2]]}") from None
        time.sleep(4)  # two more passes on each survivor: nothing may fire again
        for b in BUCKETS:
            counts = _markers(s3, b)
            assert counts == {f"tmp/{i:03d}": 1 for i in range(KEYS)}, (b, counts)
            assert s3.get_object(Bucket=b, Key="keep")["Body"].read() == b"k"
