"""Path <-> key mapping of a mount (pure).

Theory of operation
-------------------
A mount shows the keys under ``prefix`` (``""`` or ending in ``/``) of one
bucket.  A path inside the mount is kept relative and without slashes at
either end (``""`` is the root, ``"a/b"`` a file or directory two levels
down).  One file is one object with the same key; a directory ``a/b`` is the
key prefix ``a/b/``, and an empty one is the marker object ``a/b/``.

Keys that cannot be a path are *hidden*, never mangled, so that nothing the
mount shows can be written back under a different key:

* a component that is empty (``a//b``), ``.`` or ``..``;
* a component longer than NAME_MAX (255 bytes) or containing NUL;
* a key whose bytes are not valid UTF-8 (S3 keys are UTF-8 strings);
* a file ``a`` when ``a/...`` keys exist too: the file wins (it sorts
  first in a listing, so readdir can decide without looking ahead), and the
  directory's keys are unreachable from the mount.

Names the kernel hands us go the other way: ``check_name`` refuses what
cannot become a key component (EINVAL) and what is too long (ENAMETOOLONG,
also for the whole key past S3's 1,024 bytes).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from titans3.fuse.errors import FsError

NAME_MAX = 255
KEY_MAX = 1024  # bytes of UTF-8, S3's limit


def valid_component(name: str) -> bool:
    """Can ``name`` be one path component (and one key component)?"""
    if name in ("", ".", "..") or "\x00" in name or "/" in name:
        return False
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: undecodable bytes in a key
        return False
    return len(raw) <= NAME_MAX


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def split(path: str) -> tuple[str, str]:
    """``"a/b/c"`` -> ``("a/b", "c")``; ``"c"`` -> ``("", "c")``."""
    head, _, tail = path.rpartition("/")
    return head, tail


def check_name(raw: bytes) -> str:
    """A name from the kernel as a key component, or FsError."""
    if len(raw) > NAME_MAX:
        raise FsError(errno.ENAMETOOLONG, f"name of {len(raw)} bytes")
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FsError(errno.EINVAL, "name is not UTF-8 (S3 keys are)") from None
    if not valid_component(name):
        raise FsError(errno.EINVAL, f"name {name!r} cannot be a key component")
    return name


@dataclass(frozen=True, slots=True)
class Namespace:
    """The keys of one mount: everything under ``prefix`` in one bucket."""

    bucket: str
    prefix: str = ""  # "" or "some/prefix/"

    @staticmethod
    def parse(spec: str) -> Namespace:
        """``BUCKET`` or ``BUCKET/PREFIX`` (leading/trailing slashes of PREFIX ignored)."""
        bucket, _, prefix = spec.partition("/")
        prefix = prefix.strip("/")
        if not bucket:
            raise ValueError(f"{spec!r}: expected BUCKET or BUCKET/PREFIX")
        for comp in prefix.split("/") if prefix else ():
            if not valid_component(comp):
                raise ValueError(f"{spec!r}: prefix component {comp!r} cannot be a path")
        return Namespace(bucket, prefix + "/" if prefix else "")

    def key(self, path: str) -> str:
        """The object key of file ``path`` (ENAMETOOLONG past 1,024 bytes)."""
        key = self.prefix + path
        if len(key.encode("utf-8")) > KEY_MAX:
            raise FsError(errno.ENAMETOOLONG, f"key of {len(key.encode())} bytes")
        return key

    def dir_prefix(self, path: str) -> str:
        """The key prefix of directory ``path``; also its marker object's key."""
        if not path:
            return self.prefix
        key = self.prefix + path + "/"
        if len(key.encode("utf-8")) > KEY_MAX:
            raise FsError(errno.ENAMETOOLONG, f"key of {len(key.encode())} bytes")
        return key

    def path_of(self, key: str) -> str | None:
        """The mount path of ``key`` (a file or a ``dir/`` marker), or None if hidden."""
        if not key.startswith(self.prefix):
            return None
        rest = key[len(self.prefix):]
        if rest.endswith("/"):
            rest = rest[:-1]
        if not rest:
            return None
        parts = rest.split("/")
        if not all(valid_component(p) for p in parts):
            return None
        return rest

    def child(self, dir_prefix: str, key: str) -> str | None:
        """The entry name a listing of ``dir_prefix`` (delimiter ``/``) shows for
        ``key`` (an object key or a common prefix ending in ``/``); None: hidden
        (including the directory's own marker)."""
        if not key.startswith(dir_prefix):
            return None
        rest = key[len(dir_prefix):]
        if rest.endswith("/"):
            rest = rest[:-1]
        if not valid_component(rest):
            return None
        return rest
