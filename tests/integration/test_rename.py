"""Rename through the real daemon: titanctl ``object rename`` (the admin API's
call of the object layer's ``rename_object``), data written and read with boto3.

The rename must move no data: the fragment files on the drives are the same
files before and after, and the object reads back byte for byte under its new
name only -- also after the daemon restarts.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from .cluster import Daemon, s3_client
from .test_titanctl import titanctl


def chunk_files(daemon: Daemon) -> set[tuple[str, int]]:
    out = set()
    for i in range(6):
        for p in Path(daemon.drive_dir(i), "chunks").rglob("*"):
            if p.is_file():
                out.add((str(p), p.stat().st_ino))
    return out


def test_renaming_a_large_object_moves_no_data_and_survives_a_restart(daemon: Daemon) -> None:
    s3 = s3_client(daemon)
    s3.create_bucket(Bucket="files")
    data = os.urandom(96 << 20)
    s3.put_object(Bucket="files", Key="dir/big.bin", Body=data, Metadata={"origin": "test"})
    before = chunk_files(daemon)
    assert before, "a 96 MiB object is stored in fragment files"

    r = titanctl("object", "rename", "files", "dir/big.bin", "moved/big.bin", "--json",
                 endpoint=daemon.endpoint)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["size"] == len(data)
    print(f"rename of {len(data) >> 20} MiB took {doc['seconds'] * 1e3:.1f} ms")

    assert chunk_files(daemon) == before  # the same files (paths and inodes): nothing copied
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="files", Key="dir/big.bin")
    assert e.value.response["Error"]["Code"] == "404"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="files").get("Contents", [])]
    assert keys == ["moved/big.bin"]
    head = s3.head_object(Bucket="files", Key="moved/big.bin")
    assert head["ContentLength"] == len(data) and head["Metadata"] == {"origin": "test"}
    got = s3.get_object(Bucket="files", Key="moved/big.bin", Range="bytes=1000-2000999")["Body"].read()
    assert got == data[1000:2001000]

    daemon.restart()
    s3 = s3_client(daemon)
    body = s3.get_object(Bucket="files", Key="moved/big.bin")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()

    # The old name is free again; deleting the new one frees the data.
    s3.put_object(Bucket="files", Key="dir/big.bin", Body=b"small")
    s3.delete_object(Bucket="files", Key="moved/big.bin")
    assert chunk_files(daemon).isdisjoint(before)
    assert s3.get_object(Bucket="files", Key="dir/big.bin")["Body"].read() == b"small"


def test_rename_errors_are_one_line_with_the_s3_code(daemon: Daemon) -> None:
    s3 = s3_client(daemon)
    s3.create_bucket(Bucket="files")
    s3.put_object(Bucket="files", Key="a", Body=b"a")
    s3.put_object(Bucket="files", Key="b", Body=b"b")
    r = titanctl("object", "rename", "files", "a", "b", "--no-replace", endpoint=daemon.endpoint)
    assert r.returncode == 1 and "PreconditionFailed" in r.stderr and len(r.stderr.splitlines()) == 1
    r = titanctl("object", "rename", "files", "nope", "c", endpoint=daemon.endpoint)
    assert r.returncode == 1 and "NoSuchKey" in r.stderr
    assert s3.get_object(Bucket="files", Key="b")["Body"].read() == b"b"
    r = titanctl("object", "rename", "files", "a", "b", endpoint=daemon.endpoint)
    assert r.returncode == 0, r.stderr
    assert "no data moved" in r.stdout
    assert s3.get_object(Bucket="files", Key="b")["Body"].read() == b"a"


def _listing(s3, bucket: str, **kw: object) -> tuple[list[str], list[str]]:
    """(common prefixes, keys) of every ListObjectsV2 page, as boto3's paginator gives them."""
    prefixes: list[str] = []
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, **kw):
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        keys += [o["Key"] for o in page.get("Contents", [])]
    return prefixes, keys


def test_list_objects_shows_no_prefix_of_a_directory_renamed_away(daemon: Daemon) -> None:
    s3 = s3_client(daemon)
    s3.create_bucket(Bucket="tree")
    for i in range(5):
        s3.put_object(Bucket="tree", Key=f"src/sub/f{i}", Body=b"x" * i)
    s3.put_object(Bucket="tree", Key="keep/a", Body=b"a")
    for i in range(5):
        r = titanctl("object", "rename", "tree", f"src/sub/f{i}", f"dst/sub/f{i}",
                     endpoint=daemon.endpoint)
        assert r.returncode == 0, r.stderr
    assert _listing(s3, "tree", Delimiter="/") == (["dst/", "keep/"], [])
    assert _listing(s3, "tree", Delimiter="/", Prefix="src/") == ([], [])
    assert _listing(s3, "tree", Delimiter="/", MaxKeys=1) == (["dst/", "keep/"], [])
    assert _listing(s3, "tree", Prefix="dst/", Delimiter="/") == (["dst/sub/"], [])
    assert _listing(s3, "tree")[1] == [f"dst/sub/f{i}" for i in range(5)] + ["keep/a"]
    v1 = s3.list_objects(Bucket="tree", Delimiter="/")  # V1 too
    assert [p["Prefix"] for p in v1["CommonPrefixes"]] == ["dst/", "keep/"]
    # A prefix whose keys have only delete markers (versioned bucket) is not listed either.
    s3.create_bucket(Bucket="vtree")
    s3.put_bucket_versioning(Bucket="vtree", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="vtree", Key="d/x", Body=b"1")
    s3.put_object(Bucket="vtree", Key="e/x", Body=b"1")
    s3.delete_object(Bucket="vtree", Key="d/x")
    assert _listing(s3, "vtree", Delimiter="/") == (["e/"], [])
    versions = s3.list_object_versions(Bucket="vtree", Delimiter="/")
    assert [p["Prefix"] for p in versions["CommonPrefixes"]] == ["d/", "e/"]  # history stays
