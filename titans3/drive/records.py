"""Version records: the per-object metadata every holding drive keeps.

Theory of operation
-------------------
MinIO's ``xl.meta`` idea (DESIGN §5): each drive that holds a fragment of an
object also holds that object's *full* version list, so any ``k`` drives can
answer HEAD and rebuild everything.  A record is a small msgpack map with a
format version; unknown keys are preserved on round-trip so an older daemon
never drops what a newer one wrote.

A record is one of these kinds:

* a **data version** -- has ``size``/``etag``/``ec`` and either one data id
  (``data``) or a part table (``parts``), each data id naming the fragment
  file (or inline blob) on this drive;
* a **reference** (``extra["ref"]``) -- a data version whose bytes are
  another version's (a rename, ``titans3/objects/rename.py``): it names that
  *anchor* and owns no data id, so removing it frees nothing here;
* a **delete marker** (``dm``) -- no data;
* a **tombstone** (``tomb``) -- not stored: an operation that removes a
  version (or, with ``null``, every null version older than ``vid``); see
  :func:`merge_commit`.  Masking a version a stale drive still holds is the
  job of the quorum rule in ``titans3.objects.resolve``, not of tombstones.

Version ids are 32 lowercase hex characters that sort in time order
(:mod:`titans3.objects.versionid`); the drive only ever compares them.
``null`` marks the "null" version of an unversioned/suspended bucket; only
the newest null version is visible, older ones are purged once it is safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

FORMAT_VERSION = 1

# Renames (titans3/objects/rename.py) keep their state in ``extra``, so records
# written by a daemon that knows nothing of renames round-trip unchanged:
REF = "ref"  # on a reference version: [anchor key, anchor vid, source mtime_ns]
REFS = "refs"  # on an anchor: [[referring key, referring vid], ...]
HIDDEN = "hid"  # on an anchor: invisible to reads of its own key
STORAGE_CLASS = "sc"  # a version's storage class when not STANDARD (objects/transition.py)
TRANSITIONED = "tr"  # stamp of the encoding's last re-encode: the newest encoding wins
MOVING = "mv"  # a rename in progress: [destination key, destination vid, started ns]


KNOWN_FIELDS = frozenset({"f", "vid", "t", "null", "dm", "tomb", "size", "etag", "ec", "fi", "data",
                    "inline", "parts", "cks", "meta"})
_DEFAULT_EC = (1, 0, 1 << 20)


@dataclass(slots=True)
class Part:
    number: int
    size: int
    etag: str  # hex md5 of the part, no quotes
    data_id: str
    checksums: dict[str, str] = field(default_factory=dict)

    def pack(self) -> list[Any]:
        return [self.number, self.size, self.etag, self.data_id, self.checksums]

    @classmethod
    def unpack(cls, raw: list[Any]) -> Part:
        return cls(raw[0], raw[1], raw[2], raw[3], dict(raw[4]) if len(raw) > 4 else {})


@dataclass(slots=True)
class VersionRecord:
    vid: str
    mtime_ns: int = 0
    null: bool = False  # this is the bucket's "null" version
    dm: bool = False  # delete marker
    tomb: bool = False  # tombstone: version ``vid`` was removed
    size: int = 0
    etag: str = ""  # S3 ETag without quotes ("md5hex" or "md5hex-N")
    ec: tuple[int, int, int] = (1, 0, 1 << 20)  # k, m, segment size
    frag_index: int = 0  # which fragment of each stripe this drive holds
    data: str | None = None  # data id of a single-part object
    inline: bool = False  # fragment bytes live in LMDB, not in a file
    parts: list[Part] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)  # content-type, x-amz-meta-*, ...
    checksums: dict[str, str] = field(default_factory=dict)  # algo -> base64
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys, preserved

    # ---------------------------------------------------------------- derived
    def data_ids(self) -> list[str]:
        """Every data id whose fragment this record owns on its drive (a
        reference owns none: its data belongs to the anchor it names)."""
        if REF in self.extra:
            return []
        if self.parts:
            return [p.data_id for p in self.parts]
        return [self.data] if self.data else []

    # ------------------------------------------------------------- wire form
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = dict(self.extra)
        d.update(
            f=FORMAT_VERSION,
            vid=self.vid,
            t=self.mtime_ns,
        )
        if self.null:
            d["null"] = True
        if self.dm:
            d["dm"] = True
        if self.tomb:
            d["tomb"] = True
        if not (self.dm or self.tomb):
            d.update(
                size=self.size,
                etag=self.etag,
                ec=list(self.ec),
                fi=self.frag_index,
            )
            if self.data is not None:
                d["data"] = self.data
            if self.inline:
                d["inline"] = True
            if self.parts:
                d["parts"] = [p.pack() for p in self.parts]
            if self.checksums:
                d["cks"] = self.checksums
        if self.meta:
            d["meta"] = self.meta
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VersionRecord:
        # The hot path of HEAD, GET and listing (a 1,000-key page decodes one
        # record per key per drive): positional construction, one C-level set
        # difference for the unknown keys, no per-call set literal.
        g = d.get
        parts = g("parts")
        meta = g("meta")
        cks = g("cks")
        ec = g("ec")
        unknown = d.keys() - KNOWN_FIELDS
        return cls(
            d["vid"], g("t", 0), bool(g("null", False)), bool(g("dm", False)),
            bool(g("tomb", False)), g("size", 0), g("etag", ""),
            _DEFAULT_EC if ec is None else tuple(ec),  # type: ignore[arg-type]
            g("fi", 0), g("data"), bool(g("inline", False)),
            [Part.unpack(p) for p in parts] if parts else [],
            dict(meta) if meta else {},
            dict(cks) if cks else {},
            {k: d[k] for k in unknown} if unknown else {},
        )

    def pack(self) -> bytes:
        return msgpack.packb(self.to_dict(), use_bin_type=True)

    @classmethod
    def unpack(cls, raw: bytes) -> VersionRecord:
        return cls.from_dict(msgpack.unpackb(raw, raw=False))


def pack_versions(records: list[VersionRecord]) -> bytes:
    """Serialise one key's version list (newest first)."""
    return msgpack.packb([r.to_dict() for r in records], use_bin_type=True)


def unpack_versions(raw: bytes) -> list[VersionRecord]:
    return [VersionRecord.from_dict(d) for d in msgpack.unpackb(raw, raw=False)]


def merge_commit(existing: list[VersionRecord], new: VersionRecord) -> tuple[list[VersionRecord], list[str]]:
    """Apply ``new`` to one drive's version list for a key.

    Returns ``(records newest-first, data ids no longer referenced)``.  Pure, so
    LocalDrive (inside its LMDB transaction) and tests share one rule:

    * a data record or delete marker is inserted; one with the same vid is
      replaced (an idempotent re-commit, or repair rewriting a fragment);
    * a tombstone (``tomb``) is an *operation*, never stored:
      - ``tomb`` with ``null=False`` removes version ``vid``;
      - ``tomb`` with ``null=True`` removes every *null* version older than
        ``vid`` -- sent after a new null version reached its write quorum, so
        the previous null version's data is freed only once its successor is
        safe (a failed or interrupted PUT never destroys the old version).
        Versions that other keys' versions reference (``extra["refs"]``,
        rename anchors) are spared: they go only by their own vid.
    """
    freed: list[str] = []
    out: list[VersionRecord] = []
    for r in existing:
        if new.tomb:
            # A null purge never takes a version other versions still read
            # through (an anchor with references); freeing one names its vid.
            gone = (r.null and r.vid < new.vid and not r.extra.get(REFS)) if new.null \
                else r.vid == new.vid
            if gone:
                freed.extend(r.data_ids())
                continue
        elif r.vid == new.vid:
            keep = set(new.data_ids())
            freed.extend(d for d in r.data_ids() if d not in keep)
            continue
        out.append(r)
    if not new.tomb:
        out.append(new)
    out.sort(key=lambda r: r.vid, reverse=True)
    return out, freed


def has_older_null(records: list[VersionRecord], vid: str) -> bool:
    """True if ``records`` hold a null version older than ``vid`` that a null
    purge would remove."""
    return any(r.null and not r.tomb and r.vid < vid and not r.extra.get(REFS) for r in records)
