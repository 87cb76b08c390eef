"""The inode table: inode numbers, paths and exact kernel lookup counts (pure).

Theory of operation
-------------------
The kernel names files by inode number and holds a *lookup count* per inode:
every successful ``lookup``, ``create``, ``mkdir``, ``symlink``, ``mknod``
and every ``readdir`` entry it accepted adds one; ``forget(ino, n)`` takes n
away.  An inode may be dropped only when its count is zero *and* no file
handle is open on it; until then the number must keep meaning the same
file, even after the file was unlinked or renamed over.

Invariants:

* inode numbers are never reused (a 64-bit counter), so the generation is 0;
* ``_by_path`` maps every *linked* path to exactly one node; a node that lost
  its path (unlink, rename over it, a file replaced by a directory through
  S3) keeps its number with ``path=None`` until forgotten and closed;
* the root (inode 1) is never forgotten;
* a rename moves the node and every descendant's path; nodes are never
  copied, so open handles follow the file to its new name.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from titans3.fuse.errors import FsError
from titans3.fuse.meta import DIR, Attrs

ROOT_INODE = 1


@dataclass(slots=True, eq=False)
class Node:
    ino: int
    path: str | None  # None: unlinked, kept for the kernel's references
    kind: str
    lookups: int = 0
    opens: int = 0
    attrs: Attrs | None = None
    fresh_until: float = 0.0  # monotonic time the cached attrs expire
    committed_at: float = -1e9  # monotonic time this mount last committed the file
    page_etag: str = ""  # ETag of the version whose pages the kernel caches
    target: bytes | None = None  # symlink target, once read
    meta: dict[str, str] = field(default_factory=dict)  # the object's other metadata


class InodeTable:
    def __init__(self, root_attrs: Attrs) -> None:
        root = Node(ROOT_INODE, "", DIR, lookups=1, attrs=root_attrs, fresh_until=float("inf"))
        self._nodes: dict[int, Node] = {ROOT_INODE: root}
        self._by_path: dict[str, Node] = {"": root}
        self._next = ROOT_INODE + 1
        self.root = root

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, ino: int) -> Node:
        node = self._nodes.get(ino)
        if node is None:
            raise FsError(errno.ESTALE, f"inode {ino} is not known (already forgotten)")
        return node

    def at(self, path: str) -> Node | None:
        return self._by_path.get(path)

    def bind(self, path: str, kind: str) -> Node:
        """The node for ``path`` as a ``kind`` (a new number if the kind changed)."""
        node = self._by_path.get(path)
        if node is not None and node.kind == kind:
            return node
        if node is not None:
            self.detach(path)
        node = Node(self._next, path, kind)
        self._next += 1
        self._nodes[node.ino] = node
        self._by_path[path] = node
        return node

    def ref(self, node: Node, n: int = 1) -> None:
        node.lookups += n

    def forget(self, ino: int, n: int) -> None:
        node = self._nodes.get(ino)
        if node is None or ino == ROOT_INODE:
            return
        node.lookups = max(0, node.lookups - n)
        self._maybe_drop(node)

    def opened(self, node: Node) -> None:
        node.opens += 1

    def closed(self, node: Node) -> None:
        node.opens = max(0, node.opens - 1)
        self._maybe_drop(node)

    def detach(self, path: str) -> Node | None:
        """Unlink ``path`` (the node lives on while the kernel or a handle holds it)."""
        node = self._by_path.pop(path, None)
        if node is not None:
            node.path = None
            node.fresh_until = 0.0
            self._maybe_drop(node)
        return node

    def move(self, old: str, new: str) -> None:
        """Rename ``old`` (and everything under it) to ``new``; whatever was at
        ``new`` is detached first."""
        node = self._by_path.get(old)
        if node is None:
            return
        if new in self._by_path and self._by_path[new] is not node:
            self.detach(new)
        moves = [(old, node)]
        if node.kind == DIR:
            head = old + "/"
            moves += [(p, n) for p, n in self._by_path.items() if p.startswith(head)]
            # Descendants of the destination that survived (it was an empty dir: none).
            gone = [p for p in self._by_path if p.startswith(new + "/")]
            for p in gone:
                self.detach(p)
        for p, _ in moves:
            del self._by_path[p]
        for p, n in moves:
            n.path = new + p[len(old):]
            self._by_path[n.path] = n

    def linked(self) -> int:
        return len(self._by_path)

    def _maybe_drop(self, node: Node) -> None:
        if node.ino == ROOT_INODE or node.lookups > 0 or node.opens > 0:
            return
        self._nodes.pop(node.ino, None)
        if node.path is not None and self._by_path.get(node.path) is node:
            del self._by_path[node.path]
            node.path = None
