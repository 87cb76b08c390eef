"""The narrow object interface the filesystem core is written against.

Theory of operation
-------------------
One filesystem core serves two ways of mounting: inside the daemon, over the
object layer itself (:mod:`titans3.fuse.store_backend`), and from any Linux
host, over the S3 API (:mod:`titans3.fuse.s3_backend`).  Both implement
:class:`Backend`; the core never sees an S3 error, an HTTP status or an
``ObjectStore``.

Contract (every method async; failures are :mod:`titans3.fuse.errors`
``BackendError`` subclasses -- ``NotFound``, ``Unavailable`` (with the
reason), ``NoSpace``, ``NameTooLong``, ``Changed``, ``Denied``):

* ``head(key)`` -> :class:`Entry` with ``meta`` (user metadata, lower-case);
* ``read(key, first, last, etag=)`` -> async iterator of the bytes of the
  inclusive range; ``etag`` given: ``Changed`` if the object is no longer
  that version (S3 ``If-Match``);
* ``put(key, body, size, meta)`` -> ``Entry``: one streamed write; the
  object is durable (write quorum) when it returns.  ``body`` is a *factory*
  of async byte iterators, so a backend may retry a write from the start;
* ``upload_start(key, meta)`` -> upload id; ``upload_part(key, uid, n,
  body, size)`` and ``copy_part(key, uid, n, src_key, first, last,
  src_etag)`` -> part ETag; ``upload_complete(key, uid, [(n, etag)], meta=)``
  -> ``Entry`` (``meta``: the version's metadata instead of the upload's,
  where ``complete_sets_meta``; S3 has no such thing); ``upload_abort(key, uid)``;
* ``list(prefix, delimiter, start_after, limit)`` -> :class:`Page` in key
  order; ``Entry.meta`` is None where the listing does not carry metadata
  (S3) and the mount must HEAD for it;
* ``delete(key)`` (a missing key is not an error);
* ``copy(src, dst, meta)`` -> ``Entry`` (``meta`` replaces the source's);
* ``rename(src, dst)`` -> ``Entry``: ``atomic`` says whether the backend
  does it in one step (``False``: copy then delete);
* ``statfs()`` -> :class:`Capacity`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

Body = Callable[[], AsyncIterator[bytes]]


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    size: int
    etag: str
    mtime_ns: int
    meta: dict[str, str] | None = None  # None: not known (an S3 listing)


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[Entry]
    prefixes: list[str]
    truncated: bool
    next_after: str | None  # key or prefix to resume after


@dataclass(frozen=True, slots=True)
class Capacity:
    total: int  # bytes usable for data
    free: int


class Backend(Protocol):
    name: str  # for logs and the status page: "store" or the endpoint URL
    bucket: str
    atomic_rename: bool
    listing_has_meta: bool
    complete_sets_meta: bool

    async def head(self, key: str) -> Entry: ...

    def read(self, key: str, first: int, last: int, *, etag: str | None = None
             ) -> AsyncIterator[bytes]: ...

    async def put(self, key: str, body: Body, size: int, meta: Mapping[str, str]) -> Entry: ...

    async def upload_start(self, key: str, meta: Mapping[str, str]) -> str: ...

    async def upload_part(self, key: str, upload_id: str, number: int,
                          body: Body, size: int) -> str: ...

    async def copy_part(self, key: str, upload_id: str, number: int, src_key: str,
                        first: int, last: int, src_etag: str) -> str: ...

    async def upload_complete(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]],
                              meta: Mapping[str, str] | None = None) -> Entry: ...

    async def upload_abort(self, key: str, upload_id: str) -> None: ...

    async def list(self, prefix: str, *, delimiter: str = "/", start_after: str = "",
                   limit: int = 1000) -> Page: ...

    async def delete(self, key: str) -> None: ...

    async def copy(self, src: str, dst: str, meta: Mapping[str, str]) -> Entry: ...

    async def rename(self, src: str, dst: str) -> Entry: ...

    async def statfs(self) -> Capacity: ...

    async def aclose(self) -> None: ...


def body_of(data: bytes, size: int = 1 << 20) -> Body:
    """``data`` as a body factory."""

    async def gen() -> AsyncIterator[bytes]:
        view = memoryview(data)
        for i in range(0, len(data), size):
            yield bytes(view[i:i + size])
        if not data:
            return

    return gen


async def read_all(body: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in body])
