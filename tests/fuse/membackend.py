"""An in-memory Backend for unit tests of the filesystem core (S3 listing rules)."""

from __future__ import annotations

import bisect
import hashlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence

from titans3.fuse.backend import Body, Capacity, Entry, Page
from titans3.fuse.errors import Changed, NotFound


class MemBackend:
    atomic_rename = False
    listing_has_meta = True
    complete_sets_meta = False
    name = "memory"

    def __init__(self, bucket: str = "b") -> None:
        self.bucket = bucket
        self.objects: dict[str, tuple[bytes, dict[str, str], str]] = {}
        self._keys: list[str] = []
        self.calls: list[str] = []
        self.uploads: dict[str, dict[int, bytes]] = {}

    def _set(self, key: str, data: bytes, meta: Mapping[str, str]) -> Entry:
        if key not in self.objects:
            bisect.insort(self._keys, key)
        etag = hashlib.md5(data).hexdigest()
        self.objects[key] = (data, dict(meta), etag)
        return Entry(key, len(data), etag, time.time_ns(), dict(meta))

    def entry(self, key: str) -> Entry:
        data, meta, etag = self.objects[key]
        return Entry(key, len(data), etag, 1, dict(meta))

    async def head(self, key: str) -> Entry:
        self.calls.append(f"HEAD {key}")
        if key not in self.objects:
            raise NotFound(key)
        return self.entry(key)

    async def read(self, key: str, first: int, last: int, *, etag: str | None = None
                   ) -> AsyncIterator[bytes]:
        self.calls.append(f"GET {key}")
        if key not in self.objects:
            raise NotFound(key)
        data, _, tag = self.objects[key]
        if etag is not None and etag != tag:
            raise Changed(key)
        yield data[first:last + 1]

    async def put(self, key: str, body: Body, size: int, meta: Mapping[str, str]) -> Entry:
        self.calls.append(f"PUT {key}")
        data = b"".join([c async for c in body()])
        assert len(data) == size
        return self._set(key, data, meta)

    async def upload_start(self, key: str, meta: Mapping[str, str]) -> str:
        uid = f"u{len(self.uploads)}"
        self.uploads[uid] = {}
        self._umeta = dict(meta)
        return uid

    async def upload_part(self, key: str, upload_id: str, number: int, body: Body,
                          size: int) -> str:
        self.calls.append(f"PART {key} {number}")
        self.uploads[upload_id][number] = b"".join([c async for c in body()])
        return str(number)

    async def copy_part(self, key: str, upload_id: str, number: int, src_key: str,
                        first: int, last: int, src_etag: str) -> str:
        self.calls.append(f"COPYPART {key} {number}")
        data, _, tag = self.objects[src_key]
        if tag != src_etag:
            raise Changed(src_key)
        self.uploads[upload_id][number] = data[first:last + 1]
        return str(number)

    async def upload_complete(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]],
                              meta: Mapping[str, str] | None = None) -> Entry:
        got = self.uploads.pop(upload_id)
        data = b"".join(got[n] for n, _ in parts)
        self.calls.append(f"COMPLETE {key}" + (" with meta" if meta is not None else ""))
        return self._set(key, data, self._umeta if meta is None else meta)

    async def upload_abort(self, key: str, upload_id: str) -> None:
        self.uploads.pop(upload_id, None)

    async def list(self, prefix: str, *, delimiter: str = "/", start_after: str = "",
                   limit: int = 1000) -> Page:
        self.calls.append(f"LIST {prefix}")
        i = bisect.bisect_right(self._keys, max(start_after, prefix[:-1] if prefix else ""))
        entries: list[Entry] = []
        prefixes: list[str] = []
        while i < len(self._keys) and len(entries) + len(prefixes) < limit:
            k = self._keys[i]
            if not k.startswith(prefix):
                if k > prefix:
                    break
                i += 1
                continue
            rest = k[len(prefix):]
            if delimiter and delimiter in rest:
                p = prefix + rest.split(delimiter, 1)[0] + delimiter
                if (not prefixes or prefixes[-1] != p) and p > start_after:
                    prefixes.append(p)
                i = bisect.bisect_left(self._keys, p + "\U0010ffff")
                continue
            entries.append(self.entry(k))
            i += 1
        more = i < len(self._keys) and self._keys[i].startswith(prefix)
        last = max([e.key for e in entries] + prefixes, default=None)
        return Page(entries, prefixes, more, last if more else None)

    async def delete(self, key: str) -> None:
        self.calls.append(f"DELETE {key}")
        if self.objects.pop(key, None) is not None:
            self._keys.remove(key)

    async def copy(self, src: str, dst: str, meta: Mapping[str, str]) -> Entry:
        self.calls.append(f"COPY {src} {dst}")
        if src not in self.objects:
            raise NotFound(src)
        return self._set(dst, self.objects[src][0], meta)

    async def rename(self, src: str, dst: str) -> Entry:
        e = await self.copy(src, dst, self.objects[src][1])
        await self.delete(src)
        return e

    async def statfs(self) -> Capacity:
        return Capacity(1 << 40, 1 << 39)

    async def aclose(self) -> None:
        return None
