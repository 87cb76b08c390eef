"""The store's multipart checksum contract: the upload's algorithm binds its parts,
and Complete's hook decides the object's checksum (titans3.objects.multipart)."""

from __future__ import annotations

import zlib

import pytest
import trio

from titans3.core.errors import InvalidRequest

from .test_store import body, make_store

PART = b"p" * (5 << 20)


class Crc32:
    """A minimal running checksum (what the S3 front passes as compute_checksum)."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: memoryview) -> None:
        self.value = zlib.crc32(data, self.value)

    def b64digest(self) -> str:
        import base64

        return base64.b64encode(self.value.to_bytes(4, "big")).decode()


def test_parts_must_carry_the_upload_algorithm_unless_the_caller_computes_it() -> None:
    async def main() -> None:
        store, _ = make_store()
        await store.create_bucket("bkt")
        uid = await store.create_multipart("bkt", "k", checksum_algorithm="CRC32",
                                           checksum_type="COMPOSITE")  # fmt: skip
        with pytest.raises(InvalidRequest, match="expected checksum Type: crc32, actual checksum Type: null"):
            await store.upload_part("bkt", "k", uid, 1, body(PART), size=len(PART))
        with pytest.raises(InvalidRequest, match="actual checksum Type: sha256"):
            await store.upload_part("bkt", "k", uid, 1, body(PART), size=len(PART),
                                    checksums=lambda: {"SHA256": "x"})  # fmt: skip
        assert await store.list_parts("bkt", "k", uid) == []  # refused parts left nothing
        part = await store.upload_part("bkt", "k", uid, 1, body(PART), size=len(PART),
                                       compute_checksum=lambda algo, kind: Crc32())  # fmt: skip
        assert part.checksums == {"CRC32": _crc(PART)}

        seen: list[tuple[str | None, str | None, list[int]]] = []

        def hook(algo, kind, parts):  # noqa: ANN001, ANN202
            seen.append((algo, kind, [p.number for p in parts]))
            assert parts[0].checksums == part.checksums
            return {"CRC32": "AAAAAA==-1"}

        result = await store.complete_multipart("bkt", "k", uid, [(1, part.etag)], checksums=hook)
        assert seen == [("CRC32", "COMPOSITE", [1])]
        assert result.checksums == {"CRC32": "AAAAAA==-1"}
        assert (await store.head_object("bkt", "k")).checksums == {"CRC32": "AAAAAA==-1"}

    trio.run(main)


def test_a_refusing_complete_hook_commits_nothing() -> None:
    async def main() -> None:
        store, _ = make_store()
        await store.create_bucket("bkt")
        uid = await store.create_multipart("bkt", "k")
        part = await store.upload_part("bkt", "k", uid, 1, body(b"tail"), size=4)

        def refuse(algo, kind, parts):  # noqa: ANN001, ANN202
            assert (algo, kind) == (None, None)
            raise InvalidRequest("no")

        with pytest.raises(InvalidRequest):
            await store.complete_multipart("bkt", "k", uid, [(1, part.etag)], checksums=refuse)
        assert [p.number for p in await store.list_parts("bkt", "k", uid)] == [1]  # upload intact

    trio.run(main)


def _crc(data: bytes) -> str:
    c = Crc32()
    c.update(memoryview(data))
    return c.b64digest()
