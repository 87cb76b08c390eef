"""What the filesystem core offers the parts it holds: a protocol, not ``fs.py``.

:class:`~titans3.fuse.fs.FileSystem` holds a :class:`~titans3.fuse.dirlist.DirLister`,
a :class:`~titans3.fuse.renames.Renamer` and an
:class:`~titans3.fuse.attrwriter.AttrWriter` and hands each itself.  They are
typed with :class:`FsServices` -- the state and helpers they may use -- so they
import this module and not ``fs.py``, which imports them: no import cycle
(``tests/test_imports.py``), and a reader sees exactly which of the core's
internals readdir, rename and setattr touch.  ``FileSystem`` satisfies it structurally.

:class:`Snapshot` lives here because both sides use it: readdir leaves one,
lookups consult it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import trio

from titans3.fuse import meta as M
from titans3.fuse.backend import Backend, Entry
from titans3.fuse.files import OpenFile
from titans3.fuse.inodes import InodeTable, Node
from titans3.fuse.options import MountOptions
from titans3.fuse.paths import Namespace

T = TypeVar("T")


@dataclass(slots=True)
class Snapshot:
    """A complete listing of one directory, trusted until ``until`` (monotonic)."""

    names: dict[str, str]  # name -> kind
    until: float


class FsServices(Protocol):
    backend: Backend
    ns: Namespace
    opts: MountOptions
    started_ns: int
    inodes: InodeTable
    files: dict[int, OpenFile]  # ino -> the open file with local state
    _snapshots: dict[str, Snapshot]  # directory path -> its last complete listing
    _meta_due: dict[int, float]  # ino -> when its batched metadata is written
    nursery: trio.Nursery | None  # background work (batched metadata, prefetches)

    def _now(self) -> float: ...

    async def _call(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any,
                    timeout: float | None = None, **kwargs: Any) -> T:
        """``fn(*args)`` under the core's deadline; failures logged, ``FsError`` raised."""
        ...

    def _dir(self, ino: int) -> Node: ...

    def _new_fh(self) -> int: ...

    def _attrs_of(self, key: str, e: Entry) -> M.Attrs: ...

    def _learn(self, path: str, attrs: M.Attrs, meta: dict[str, str] | None = None) -> Node: ...

    def attrs(self, node: Node) -> M.Attrs: ...

    async def _head_or_none(self, key: str) -> Entry | None: ...

    async def _existing(self, path: str) -> Node | None: ...

    def _local_below(self, path: str) -> bool: ...

    def _snap_add(self, path: str, kind: str) -> None: ...

    def _snap_remove(self, path: str) -> None: ...

    async def flush_meta(self, ino: int) -> None: ...

    async def getattr(self, ino: int) -> M.Attrs: ...

    async def _open_file(self, node: Node) -> OpenFile: ...

    def _drop_file(self, node: Node, of: OpenFile) -> None: ...

    def _committed(self, node: Node, of: OpenFile) -> M.Attrs: ...
