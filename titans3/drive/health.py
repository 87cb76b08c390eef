"""Drive identity and health probes (blocking; call from worker threads).

Theory of operation
-------------------
``<root>/titans3-drive.json`` names the drive: a random id fixed at format
time, the cluster it belongs to and the on-disk format version.  It is written
once, atomically (temp file, fsync, rename, fsync of the root), and a drive
opened on an existing directory keeps its id.

A disk can vanish under a running process in ways that do not fail the next
syscall: a deleted root keeps working through open descriptors and LMDB's
mmap; a lazily unmounted filesystem keeps serving the old inode; and as root
we bypass permission bits, so ``chmod 000`` changes nothing.  Hence
:func:`probe`, run before every blocking drive operation: stat the identity
file and compare ``(st_dev, st_ino)`` with what we saw at open, and treat a
root with mode 000 as fenced by the operator.  Two stats cost ~2 us.
:func:`probe_full` (the periodic health check) also re-reads the identity and
proves the root is writable.

:func:`offline_error` decides which failures mean "the drive is gone" (any
I/O error, LMDB corruption or EIO) and which are ordinary errors on a
healthy drive (EMFILE/ENFILE/ENOMEM: the process, not the disk, ran out of
something).  :func:`full_error` picks out the full drive -- ENOSPC/EDQUOT
from the filesystem, and LMDB's ``DiskError`` (py-lmdb's name for ENOSPC,
*not* an I/O error) and ``MapFullError``: a full disk still serves reads, so
it must never be taken offline, and the client is told "storage full" (507)
rather than "drives offline" (503).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import lmdb

from titans3.drive.direct import fsync_dir

IDENTITY_FILE = "titans3-drive.json"
DRIVE_FORMAT_VERSION = 1

# Errors that say nothing about the disk: it is full (reads still work), or
# the *process* ran out of descriptors or memory (a flood of client
# connections must not take every drive offline with it).
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_NOT_THE_DRIVE = _FULL | {errno.EMFILE, errno.ENFILE, errno.ENOMEM}
_OFFLINE_LMDB = (lmdb.PanicError, lmdb.CorruptedError, lmdb.InvalidError)
_FULL_LMDB = (lmdb.DiskError, lmdb.MapFullError)


class IdentityError(ValueError):
    """The identity file is missing, unreadable or names another drive."""


@dataclass(frozen=True, slots=True)
class DriveIdentity:
    drive_id: str
    cluster_id: str
    format_version: int
    created: str

    @classmethod
    def load(cls, root: Path) -> DriveIdentity | None:
        """The identity of ``root``, or None if it has none."""
        try:
            raw = json.loads((root / IDENTITY_FILE).read_text())
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError) as e:
            raise IdentityError(f"{root / IDENTITY_FILE}: {e}") from e
        if raw.get("format_version") != DRIVE_FORMAT_VERSION or not raw.get("drive_id"):
            raise IdentityError(f"{root / IDENTITY_FILE}: unsupported identity {raw!r}")
        return cls(raw["drive_id"], raw.get("cluster_id", ""), raw["format_version"],
                   raw.get("created", ""))

    @classmethod
    def create(cls, root: Path, drive_id: str, cluster_id: str) -> DriveIdentity:
        """Write a new identity atomically (the root must not have one)."""
        ident = cls(drive_id, cluster_id, DRIVE_FORMAT_VERSION,
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / (IDENTITY_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(
                {"drive_id": ident.drive_id, "cluster_id": ident.cluster_id,
                 "format_version": ident.format_version, "created": ident.created},
                f, indent=1,
            )
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, root / IDENTITY_FILE)
        fsync_dir(root)
        return ident


def identity_key(root: Path) -> tuple[int, int]:
    st = os.stat(root / IDENTITY_FILE)
    return st.st_dev, st.st_ino


def probe(root: Path | str, key: tuple[int, int], identity: str | None = None) -> None:
    """Cheap check that ``root`` is still the drive we opened; raises OSError.

    ``identity``: ``root/IDENTITY_FILE`` as a string, precomputed by callers
    that probe on every commit (path objects cost more than the two stats)."""
    ident = identity if identity is not None else os.path.join(root, IDENTITY_FILE)
    st = os.stat(ident)
    if (st.st_dev, st.st_ino) != key:
        raise OSError(errno.ESTALE, "drive identity file was replaced", ident)
    if os.stat(root).st_mode & 0o777 == 0:
        raise PermissionError(errno.EACCES, "drive root has mode 000 (fenced)", str(root))


def probe_full(root: Path, drive_id: str) -> None:
    """Thorough check: identity readable and ours, root usable and writable."""
    ident = DriveIdentity.load(root)
    if ident is None:
        raise IdentityError(f"{root} has no {IDENTITY_FILE}")
    if ident.drive_id != drive_id:
        raise IdentityError(f"{root} now holds drive {ident.drive_id}, not {drive_id}")
    if os.stat(root).st_mode & 0o777 == 0:
        raise PermissionError(errno.EACCES, "drive root has mode 000 (fenced)", str(root))
    p = root / ".probe"
    try:
        p.write_bytes(b"ok")
    except OSError as e:
        if not full_error(e):
            raise  # a full disk is still a working disk: it serves reads
    finally:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def full_error(e: BaseException) -> bool:
    """True if ``e`` says the drive has no room (it stays ONLINE for reads)."""
    if isinstance(e, OSError):
        return e.errno in _FULL
    return isinstance(e, _FULL_LMDB)


_MEDIUM = frozenset({errno.EIO, errno.ENXIO, errno.ENODEV, errno.EREMOTEIO, errno.EBADMSG})


def medium_error(e: BaseException) -> bool:
    """True if ``e`` is the disk failing an operation (EIO and kin, LMDB corruption),
    not the drive being away (a vanished or fenced directory): what a failure
    threshold counts."""
    if isinstance(e, OSError):
        return e.errno in _MEDIUM
    if isinstance(e, lmdb.Error):
        return isinstance(e, _OFFLINE_LMDB) or _lmdb_errno(e) == errno.EIO
    return False


def offline_error(e: BaseException) -> bool:
    """True if ``e`` means the drive itself is unusable (mark it OFFLINE)."""
    if isinstance(e, OSError):
        return e.errno not in _NOT_THE_DRIVE
    if isinstance(e, lmdb.Error):
        return isinstance(e, _OFFLINE_LMDB) or _lmdb_errno(e) == errno.EIO
    return False


def _lmdb_errno(e: lmdb.Error) -> int | None:
    """The errno behind a generic ``lmdb.Error`` (py-lmdb has no class for EIO)."""
    code = getattr(e, "code", None)
    if isinstance(code, int):
        return code
    if any(isinstance(a, int) and a == errno.EIO for a in e.args):
        return errno.EIO
    return errno.EIO if "Input/output error" in str(e) else None
