"""Errors of disk management, typed like every other error the admin API returns.

They carry an error code and HTTP status (core/errors.py's convention), so the
admin API renders them as S3 error XML and titanctl prints
``titanctl: DiskRefused: /dev/sdb has an ext4 filesystem; ...`` -- one line, no
traceback.
"""

from __future__ import annotations

from titans3.core.errors import S3Error


class DiskError(S3Error):
    code = "DiskError"
    status = 500
    default_message = "The disk operation failed."


class NoSuchDisk(DiskError):
    code = "NoSuchDisk"
    status = 404
    default_message = "No such disk or drive."


class DiskRefused(DiskError):
    """The disk holds data, is in use, or is not ours to take (409: the request
    was understood but conflicts with the disk's state)."""

    code = "DiskRefused"
    status = 409
    default_message = "The disk cannot be used."


class DiskModeOff(DiskError):
    code = "DiskManagementOff"
    status = 409
    default_message = "This node runs on directories (--data); disk commands need --disks."


class DiskOperationFailed(DiskError):
    """mkfs, mount or a drive open failed (the message carries the tool's words)."""

    code = "DiskOperationFailed"
    status = 500
