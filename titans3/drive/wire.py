"""Wire forms of Drive protocol values for the peer API (pure).

Theory of operation
-------------------
Drive calls cross hosts as msgpack maps (``use_bin_type``: keys and bucket ids
stay ``bytes``, text stays ``str``).  Version records travel as
:meth:`VersionRecord.to_dict` -- the same map a drive stores, unknown keys
included, so a newer peer's fields survive a hop through an older one.

Errors travel as ``{"error": <class name>, "message": ...}`` with an HTTP
status; :func:`raise_error` turns them back into the *same* typed exception on
the caller's side, named after the caller's view of the drive, so the object
layer cannot tell a remote drive's ``FragmentCorrupt`` from a local one.
"""

from __future__ import annotations

from typing import Any

import msgpack

from titans3.core.errors import (
    DriveError,
    DriveFull,
    DriveOffline,
    FragmentCorrupt,
    FragmentMissing,
)
from titans3.drive.protocol import DriveStat, DriveState, ListEntry
from titans3.drive.records import VersionRecord

CONTENT_TYPE = "application/x-msgpack"

# error class name -> (HTTP status, class); the order matters for isinstance.
_ERRORS: list[tuple[str, int, type[Exception]]] = [
    ("DriveOffline", 503, DriveOffline),
    ("FragmentMissing", 404, FragmentMissing),
    ("FragmentCorrupt", 422, FragmentCorrupt),
    ("DriveFull", 507, DriveFull),
    ("DriveError", 500, DriveError),
    ("ValueError", 400, ValueError),
]


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def unpack(raw: bytes) -> Any:
    return msgpack.unpackb(raw, raw=False)


def records_out(records: list[VersionRecord]) -> list[dict[str, Any]]:
    return [r.to_dict() for r in records]


def records_in(raw: list[dict[str, Any]]) -> list[VersionRecord]:
    return [VersionRecord.from_dict(d) for d in raw]


def entries_out(entries: list[ListEntry]) -> list[list[Any]]:
    return [[e.key, None if e.versions is None else records_out(e.versions), e.is_prefix] for e in entries]


def entries_in(raw: list[list[Any]]) -> list[ListEntry]:
    return [ListEntry(k, None if v is None else records_in(v), bool(p)) for k, v, p in raw]


def stat_out(st: DriveStat) -> dict[str, Any]:
    return {
        "drive_id": st.drive_id, "path": st.path, "state": st.state.value, "capacity": st.capacity,
        "used": st.used, "free": st.free, "errors": st.errors, "quarantined": st.fragments_quarantined,
        "full": st.full,
    }


def stat_in(d: dict[str, Any], *, path: str | None = None) -> DriveStat:
    return DriveStat(
        drive_id=d["drive_id"], path=path if path is not None else d["path"],
        state=DriveState(d["state"]), capacity=d["capacity"], used=d["used"], free=d["free"],
        errors=d["errors"], fragments_quarantined=d["quarantined"],
        full=bool(d.get("full", False)),  # absent from peers before 0.1.x: not full
    )


def error_doc(e: Exception) -> tuple[int, dict[str, str]]:
    """(status, error document) for an exception a drive call raised."""
    for name, status, cls in _ERRORS:
        if isinstance(e, cls):
            return status, {"error": name, "message": str(e)}
    raise TypeError(f"not a drive error: {e!r}")


def error_out(e: Exception) -> tuple[int, bytes]:
    """(status, body) for an exception a drive call raised."""
    status, doc = error_doc(e)
    return status, pack(doc)


def raise_error(status: int, body: bytes, drive_id: str) -> None:
    """Raise the typed exception an error response carries."""
    try:
        doc = unpack(body)
    except Exception:  # noqa: BLE001 -- not our error body: a proxy, a crash page
        doc = None
    raise_doc(status, doc, drive_id)


def raise_doc(status: int, doc: Any, drive_id: str) -> None:
    """Raise the typed exception an error document (or ``None``) stands for."""
    try:
        name, message = str(doc["error"]), str(doc.get("message", ""))
    except Exception:  # noqa: BLE001 -- not an error document
        raise DriveError(drive_id, f"peer answered HTTP {status}") from None
    if name == "DriveOffline":
        raise DriveOffline(drive_id, f"remote: {message}")
    if name == "FragmentMissing":
        raise FragmentMissing(drive_id, message)
    if name == "FragmentCorrupt":
        raise FragmentCorrupt(drive_id, message)
    if name == "DriveFull":
        raise DriveFull(drive_id, f"remote: {message}")
    if name == "ValueError":
        raise ValueError(message)
    raise DriveError(drive_id, f"remote: {message}")
