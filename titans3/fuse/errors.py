"""Errors of the filesystem core: every failure carries the errno the kernel gets.

The core never lets an object-layer or HTTP exception reach pyfuse3 (that
would answer EIO without a word in the log).  Backends raise the
:class:`BackendError` subclasses below; the core raises :class:`FsError`
with the errno POSIX names for the situation, and the pyfuse3 adapter turns
both into ``FUSEError``.  ``reason`` is what the log line says.
"""

from __future__ import annotations

import errno


class FsError(Exception):
    """A failure with the errno the caller of the system call sees."""

    def __init__(self, err: int, reason: str = "") -> None:
        super().__init__(reason or errno.errorcode.get(err, str(err)))
        self.errno = err
        self.reason = reason or errno.errorcode.get(err, str(err))


class BackendError(FsError):
    """Raised by an object backend; subclasses fix the errno."""

    default_errno = errno.EIO

    def __init__(self, reason: str = "") -> None:
        super().__init__(self.default_errno, reason)


class NotFound(BackendError):
    default_errno = errno.ENOENT


class Unavailable(BackendError):
    """The cluster or endpoint did not answer in time, or answered 5xx."""

    default_errno = errno.EIO


class NoSpace(BackendError):
    default_errno = errno.ENOSPC


class NameTooLong(BackendError):
    default_errno = errno.ENAMETOOLONG


class Changed(BackendError):
    """The object changed underneath an operation that needed its old bytes."""

    default_errno = errno.EIO


class Denied(BackendError):
    default_errno = errno.EACCES


class Unsupported(BackendError):
    default_errno = errno.ENOTSUP
