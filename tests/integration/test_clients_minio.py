"""The MinIO Python SDK against the real daemon: fput_object, fget_object, list_objects.

``minio.Minio(endpoint, secure=False)`` with its defaults: SigV4, path style
for an IP endpoint, multipart uploads in 5 MiB+ parts for large files (the SDK
picks the part size), and an ``.part.minio`` temporary file on download.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .cluster import HOST, Daemon, MiB
from .rawhttp import sha256_file, write_random_file


@pytest.fixture(scope="module")
def mc(module_daemon: Daemon):  # noqa: ANN201
    from minio import Minio

    client = Minio(f"{HOST}:{module_daemon.s3_port}", access_key=module_daemon.credentials.access_key,
                   secret_key=module_daemon.credentials.secret_key, secure=False,
                   region="us-east-1")  # fmt: skip
    client.make_bucket("minio-sdk")
    return client


@pytest.mark.parametrize("size", [0, 1, 64 * 1024 + 3, 12 * MiB + 11],
                         ids=["empty", "one-byte", "small", "multipart"])  # fmt: skip
def test_fput_then_fget_round_trips(mc, tmp_path: Path, size: int) -> None:  # noqa: ANN001
    src = tmp_path / "src.bin"
    digest = write_random_file(src, size)
    result = mc.fput_object("minio-sdk", f"round/{size}.bin", str(src),
                            content_type="application/x-test", metadata={"origin": "minio-sdk"})  # fmt: skip
    if size > 5 * MiB:  # the SDK uploads files over its 5 MiB part size in parts
        assert result.etag.endswith("-3")
    out = tmp_path / "out.bin"
    mc.fget_object("minio-sdk", f"round/{size}.bin", str(out))
    assert sha256_file(out) == digest
    stat = mc.stat_object("minio-sdk", f"round/{size}.bin")
    assert stat.size == size and stat.content_type == "application/x-test"
    assert stat.metadata.get("x-amz-meta-origin") == "minio-sdk"


def test_list_objects_prefixes_and_recursion(mc, tmp_path: Path) -> None:  # noqa: ANN001
    import io
    from concurrent.futures import ThreadPoolExecutor

    names = [f"list/{d}/obj-{i:04d}" for d in ("a", "b") for i in range(120)] + ["list/tóp + x"]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: mc.put_object("minio-sdk", n, io.BytesIO(n.encode()), len(n.encode())), names))
    top = {(o.object_name, o.is_dir) for o in mc.list_objects("minio-sdk", prefix="list/")}
    assert top == {("list/a/", True), ("list/b/", True), ("list/tóp + x", False)}
    # Both listing versions, with the SDK's default encoding-type=url.  (Paging
    # past 1,000 keys is exercised by the AWS CLI and boto3 tests; this SDK
    # cannot ask for smaller pages.)
    for v1 in (False, True):
        listed = [o.object_name for o in mc.list_objects("minio-sdk", prefix="list/", recursive=True,
                                                          use_api_v1=v1)]  # fmt: skip
        assert listed == sorted(names)
    sizes = {o.object_name: o.size for o in mc.list_objects("minio-sdk", prefix="list/a/", recursive=True)}
    assert sizes["list/a/obj-0000"] == len("list/a/obj-0000")
    assert os.path.basename(next(iter(sizes))) == "obj-0000"
