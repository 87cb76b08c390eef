"""Hinted fragments: the hint format and the handoff drive's view (objects/handoff.py).

A fragment whose primary is down lives on a handoff drive under its own data
id (:func:`hinted_id`), and the record the primary should have goes into that
drive's ``hints`` table under :func:`hint_key`.  :class:`HintedDrive` is the
handoff drive as the writer and reader of one fragment index see it.
"""

from __future__ import annotations

from dataclasses import dataclass

import blake3
import msgpack

from titans3.drive.protocol import Drive, DriveState, FragmentWriter
from titans3.drive.records import VersionRecord

HINTS = "hints"


def key_hash(bucket_id: bytes, key: bytes) -> bytes:
    return blake3.blake3(bucket_id + b"\0" + key).digest(16)


def hint_key(bucket_id: bytes, key: bytes, vid: str, frag_index: int) -> bytes:
    """The hints-table key: the name's hash first, so one prefix finds a name's hints."""
    return key_hash(bucket_id, key) + vid.encode() + b"/%d" % frag_index


def hinted_id(data_id: str, frag_index: int) -> str:
    """Data id of a handed-off fragment (hex, distinct from every primary data id)."""
    return f"{data_id}f{frag_index:02x}"


def pack_hint(slot: str, bucket_id: bytes, key: bytes, rec: VersionRecord) -> bytes:
    return msgpack.packb({"slot": slot, "b": bucket_id, "k": key, "rec": rec.to_dict()})


@dataclass(frozen=True, slots=True)
class Hint:
    hkey: bytes
    slot: str  # the intended primary
    bucket_id: bytes
    key: bytes
    record: VersionRecord


def unpack_hint(hkey: bytes, raw: bytes) -> Hint:
    d = msgpack.unpackb(raw, raw=False)
    return Hint(hkey, d["slot"], d["b"], d["k"], VersionRecord.from_dict(d["rec"]))


@dataclass(slots=True)
class HintedRecord(VersionRecord):
    """A primary's record that is still held by a handoff drive (``via``, a position)."""

    via: int = -1


class HintedDrive:
    """The handoff drive as seen by the writer and reader of one fragment index:
    data ids are mapped to :func:`hinted_id`, everything else is the real drive."""

    def __init__(self, inner: Drive, frag_index: int, slot: str) -> None:
        self.inner = inner
        self.frag_index = frag_index
        self.slot = slot  # the primary this fragment is meant for
        self.drive_id = inner.drive_id

    @property
    def state(self) -> DriveState:
        return self.inner.state

    async def create_fragment(self, data_id: str, frag_index: int) -> FragmentWriter:
        return await self.inner.create_fragment(hinted_id(data_id, self.frag_index), frag_index)

    async def put_inline(self, data_id: str, data: bytes) -> None:
        await self.inner.put_inline(hinted_id(data_id, self.frag_index), data)

    async def read_fragment(self, data_id: str, offset: int, length: int) -> bytes:
        return await self.inner.read_fragment(hinted_id(data_id, self.frag_index), offset, length)

    async def fragment_size(self, data_id: str) -> int:
        return await self.inner.fragment_size(hinted_id(data_id, self.frag_index))

    async def commit_hint(self, bucket_id: bytes, key: bytes, rec: VersionRecord) -> None:
        """Durably store the hint (promoting the staged fragment); a tombstone
        removes the hint and its data instead (rollback of a failed write)."""
        hk = hint_key(bucket_id, key, rec.vid, self.frag_index)
        if rec.tomb:
            raw = await self.inner.get_meta(HINTS, hk)
            await self.inner.put_meta(HINTS, hk, None)
            if raw is not None:
                ids = unpack_hint(hk, raw).record.data_ids()
                await self.inner.delete_data([hinted_id(i, self.frag_index) for i in ids])
            return
        await self.inner.put_meta(
            HINTS, hk, pack_hint(self.slot, bucket_id, key, rec),
            promote=[hinted_id(i, self.frag_index) for i in rec.data_ids()],
        )
