"""A network partition: the side that cannot make a write durable refuses it.

Six hosts on 127.0.0.1..6, one drive each, EC 4+2.  A PUT needs W = 5 drives,
or -- with hinted handoff (``objects/handoff.py``) -- at least k = 4 primaries
online and fragments placed so that losing any one drive still leaves k.
Peer traffic between host groups is cut with nftables (``partition.py``;
loopback only, rules removed on exit).

* 5 | 1: the five-host side keeps accepting writes; the isolated host answers
  503 instead of acknowledging a write it could store on one drive only.
* 4 | 2: the two-host side refuses; the four-host side (k primaries, doubled
  fragments keep a one-drive margin) accepts.
* Healed: every write acknowledged before or during the partitions reads back
  with the right bytes, and is listed, through every host -- including the
  hosts that were cut off when it was written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import closing

import pytest
from botocore.exceptions import ClientError

from . import partition
from .peerhosts import ClusterHost, plan, running, s3_client

pytestmark = pytest.mark.skipif(partition.unavailable() is not None,
                                reason=str(partition.unavailable()))

HOSTS = 6
BUCKET = "split"
SETTLE = 5.0  # s for heartbeats (1 s apart, 2 s timeout) to mark the far side down


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ClusterHost]]:
    base = tmp_path_factory.mktemp("partition")
    addrs, ports, peers = plan(HOSTS)
    made = [ClusterHost(a, base, i + 1, peers, p) for i, (a, p) in enumerate(zip(addrs, ports, strict=True))]
    with running(made) as hs:
        yield hs


def put(h: ClusterHost, key: str, body: bytes) -> int:
    """PUT through ``h``; the HTTP status (200 or the error's)."""
    with closing(s3_client(h, read_timeout=40)) as s3:
        try:
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            return 200
        except ClientError as e:
            return int(e.response["ResponseMetadata"]["HTTPStatusCode"])


def test_only_a_side_that_can_make_writes_durable_accepts_them(hosts: list[ClusterHost]) -> None:
    acked: dict[str, bytes] = {}

    def write(h: ClusterHost, key: str, size: int) -> int:
        body = os.urandom(size)
        t0 = time.monotonic()
        status = put(h, key, body)
        assert time.monotonic() - t0 < 45, f"PUT {key} through {h.name} took too long"
        if status == 200:
            acked[key] = body
        return status

    with closing(s3_client(hosts[0])) as s3:
        s3.create_bucket(Bucket=BUCKET)
    assert write(hosts[0], "before", 1 << 20) == 200

    majority, isolated = hosts[:5], hosts[5]
    with partition.partitioned(majority, [isolated]):
        time.sleep(SETTLE)
        assert write(isolated, "isolated-big", 1 << 20) == 503
        assert write(isolated, "isolated-small", 1000) == 503
        for i, h in enumerate(majority):
            assert write(h, f"majority-{i}", (1 << 20) + i if i % 2 else 3000) == 200, h.name
        with closing(s3_client(majority[2])) as s3:  # and reads on the majority side
            assert s3.get_object(Bucket=BUCKET, Key="before")["Body"].read() == acked["before"]

    four, two = hosts[:4], hosts[4:]
    with partition.partitioned(four, two):
        time.sleep(SETTLE)
        for h in two:
            assert write(h, f"split-{h.name}", 5000) == 503, h.name
            assert write(h, f"split-big-{h.name}", 1 << 20) == 503, h.name
        assert write(four[0], "four-small", 5000) == 200
        assert write(four[3], "four-big", (1 << 20) + 5) == 200

    # Healed: everything acknowledged is back everywhere.
    assert set(acked) == {"before", "four-small", "four-big", *(f"majority-{i}" for i in range(5))}
    deadline = time.monotonic() + 40
    for h in hosts:
        with closing(s3_client(h)) as s3:
            for key, body in sorted(acked.items()):
                while True:
                    try:
                        got = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
                        break
                    except ClientError:
                        # Right after healing a host may still hold its peers
                        # down until the next heartbeat.
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.5)
                assert got == body, (h.name, key)
    # Listings: the four-side writes sit on 4 primaries + hints until the hints
    # are replayed (every 2 s); a listing resolves such keys again with their
    # hints (handoff.relist), so the first listing that answers must show
    # every acknowledged key -- no waiting for replay.
    for h in hosts:
        with closing(s3_client(h)) as s3:
            while True:
                try:
                    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}
                    break
                except ClientError:  # peers still held down until the next heartbeat
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            assert set(acked) <= listed, (h.name, set(acked) - listed)
