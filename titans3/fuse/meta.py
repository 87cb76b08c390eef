"""File attributes in object metadata, the way s3fs-fuse stores them (pure).

Theory of operation
-------------------
Attributes ride in user metadata so that a tree written by s3fs-fuse looks
right in our mount and the other way round:

==================  =====================================================
``x-amz-meta-mode``  decimal ``st_mode`` *including* the file-type bits
                     (``33188`` = regular 0644, ``16877`` = dir 0755,
                     ``41471`` = symlink 0777)
``x-amz-meta-uid``   decimal uid;  ``x-amz-meta-gid``: decimal gid
``x-amz-meta-mtime`` seconds since the epoch (s3fs writes integers; a
                     fraction, if present, is honoured)
``x-amz-meta-xattr`` s3fs's encoding of extended attributes: a
                     percent-encoded JSON object ``{name: base64(value)}``
==================  =====================================================

A symlink is an object whose body is the target and whose mode has
``S_IFLNK``; a directory marker is the ``dir/`` object (content type
``application/x-directory``).  Objects written by other tools have no such
metadata: they get the mount's default owner and modes, and their
``Last-Modified`` as mtime.  A mode without type bits (some tools write
``420``) is taken as a regular file's permissions.
"""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

MODE = "x-amz-meta-mode"
UID = "x-amz-meta-uid"
GID = "x-amz-meta-gid"
MTIME = "x-amz-meta-mtime"
XATTR = "x-amz-meta-xattr"
OURS = frozenset({MODE, UID, GID, MTIME, XATTR})
DIR_CONTENT_TYPE = "application/x-directory"
MAX_XATTR_BYTES = 1536  # S3 allows 2 KiB of user metadata in all; keep room for the rest

FILE, DIR, LINK = "f", "d", "l"


@dataclass(frozen=True, slots=True)
class Defaults:
    """What an object without our metadata looks like."""

    uid: int = 0
    gid: int = 0
    file_mode: int = 0o644
    dir_mode: int = 0o755


@dataclass(frozen=True, slots=True)
class Attrs:
    kind: str  # FILE, DIR or LINK
    mode: int  # full st_mode
    uid: int
    gid: int
    mtime_ns: int
    size: int = 0
    etag: str = ""
    xattrs: dict[bytes, bytes] = field(default_factory=dict)


def _int(meta: Mapping[str, str], name: str) -> int | None:
    try:
        return int(meta[name])
    except (KeyError, ValueError):
        return None


def _mtime_ns(meta: Mapping[str, str]) -> int | None:
    raw = meta.get(MTIME)
    if raw is None:
        return None
    try:
        if "." in raw:
            sec, _, frac = raw.partition(".")
            return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])
        return int(raw) * 1_000_000_000
    except ValueError:
        return None


def kind_of(key: str, meta: Mapping[str, str]) -> str:
    if key.endswith("/"):
        return DIR
    mode = _int(meta, MODE)
    if mode is not None and stat.S_ISLNK(mode):
        return LINK
    if mode is not None and stat.S_ISDIR(mode):
        return DIR  # s3fs's legacy "dir" object without a slash
    return FILE


def decode(key: str, meta: Mapping[str, str] | None, *, size: int, mtime_ns: int, etag: str,
           defaults: Defaults) -> Attrs:
    """Attributes of an object (``meta`` None: a listing without metadata)."""
    meta = meta or {}
    kind = kind_of(key, meta)
    mode = _int(meta, MODE)
    type_bits = {FILE: stat.S_IFREG, DIR: stat.S_IFDIR, LINK: stat.S_IFLNK}[kind]
    if mode is None:
        perm = {FILE: defaults.file_mode, DIR: defaults.dir_mode, LINK: 0o777}[kind]
    else:
        perm = stat.S_IMODE(mode)
    uid = _int(meta, UID)
    gid = _int(meta, GID)
    return Attrs(
        kind=kind, mode=type_bits | perm,
        uid=defaults.uid if uid is None else uid, gid=defaults.gid if gid is None else gid,
        mtime_ns=_mtime_ns(meta) or mtime_ns, size=size, etag=etag,
        xattrs=decode_xattrs(meta.get(XATTR)),
    )


def implicit_dir(defaults: Defaults, mtime_ns: int = 0) -> Attrs:
    """A directory that exists only because keys under it do."""
    return Attrs(DIR, stat.S_IFDIR | defaults.dir_mode, defaults.uid, defaults.gid, mtime_ns)


def encode(attrs: Attrs) -> dict[str, str]:
    """The user metadata that stores ``attrs`` (s3fs names and formats)."""
    sec, nsec = divmod(attrs.mtime_ns, 1_000_000_000)
    out = {
        MODE: str(attrs.mode), UID: str(attrs.uid), GID: str(attrs.gid),
        MTIME: str(sec) if not nsec else f"{sec}.{nsec:09d}",
    }
    if attrs.kind == DIR:
        out["content-type"] = DIR_CONTENT_TYPE
    if attrs.xattrs:
        out[XATTR] = encode_xattrs(attrs.xattrs)
    return out


def merge(meta: Mapping[str, str], attrs: Attrs) -> dict[str, str]:
    """``meta`` with our attribute fields replaced by ``attrs`` (other tools' metadata kept)."""
    out = {k: v for k, v in meta.items() if k not in (MODE, UID, GID, MTIME, XATTR)}
    out.update(encode(attrs))
    return out


def encode_xattrs(xattrs: Mapping[bytes, bytes]) -> str:
    doc = {k.decode("utf-8", "surrogateescape"): base64.b64encode(v).decode() for k, v in
           sorted(xattrs.items())}
    return quote(json.dumps(doc, separators=(",", ":")), safe="")


def decode_xattrs(raw: str | None) -> dict[bytes, bytes]:
    if not raw:
        return {}
    try:
        doc = json.loads(unquote(raw))
        return {k.encode("utf-8", "surrogateescape"): base64.b64decode(v) for k, v in doc.items()}
    except (ValueError, TypeError, AttributeError):
        return {}  # another tool's format: ignore rather than fail every getattr
