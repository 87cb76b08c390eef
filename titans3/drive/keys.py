"""LMDB key encoding for object keys, and the listing walk over it (pure).

Theory of operation
-------------------
LMDB keys are at most 511 bytes; S3 keys reach 1,024 bytes, and listings must
come out in exact binary order of the S3 key.  With ``B`` the 8-byte bucket id
and ``L = 511 - 8 - 1 = 502``:

* a key ``k`` with ``len(k) <= L`` is stored as ``B + k`` (value: one packed
  version list);
* a longer key is stored inside a **group** record at ``B + k[:L] + b"\\x00"``
  (always exactly 511 bytes, so it can never collide with a plain key, which
  is at most 510).  The group value maps suffix ``k[L:]`` to that key's
  packed version list, kept sorted by suffix.

Why this sorts exactly: let ``P`` be an ``L``-byte prefix.  The only object
keys starting with ``P`` are ``P`` itself (plain record ``B+P``) and the long
keys of ``P``'s group.  In LMDB, ``B+P`` is immediately followed by
``B+P+\\x00`` (nothing of length <= 511 lies between them), and every other
LMDB key compares against ``B+P+\\x00`` exactly as the object keys it stands
for compare against the keys of the group, because they differ from ``P``
within its first ``L`` bytes.  So walking LMDB in order and expanding each
group in suffix order yields keys in binary order.

The walk (:func:`walk_listing`) needs only ``set_range``/``next``/``key``/
``value`` of a cursor, so it runs unchanged on an LMDB cursor and, in tests,
on a sorted list.  Prefix, ``start_after``, delimiter and limit are pushed
down: after emitting a common prefix ``cp`` the walk *seeks* to the first key
after every key starting with ``cp`` instead of stepping over them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import msgpack

BUCKET_ID_LEN = 8
LMDB_MAX_KEY = 511
L = LMDB_MAX_KEY - BUCKET_ID_LEN - 1  # 502: longest key stored as a plain record
GROUP_KEY_LEN = BUCKET_ID_LEN + L + 1
MAX_KEY = 1024  # S3's limit; the encoding itself has none


class Cursor(Protocol):
    """The part of ``lmdb.Cursor`` the walk uses."""

    def set_range(self, key: bytes) -> bool: ...

    def next(self) -> bool: ...

    def key(self) -> bytes: ...

    def value(self) -> bytes: ...


def check_bucket_id(bucket_id: bytes) -> None:
    if len(bucket_id) != BUCKET_ID_LEN:
        raise ValueError(f"bucket id must be {BUCKET_ID_LEN} bytes, got {len(bucket_id)}")


def encode_key(bucket_id: bytes, key: bytes) -> tuple[bytes, bytes | None]:
    """``(lmdb key, suffix)``: suffix is None for a plain record, else the
    entry of the group record that holds this key."""
    check_bucket_id(bucket_id)
    if len(key) > MAX_KEY:
        raise ValueError(f"key longer than {MAX_KEY} bytes")
    if len(key) <= L:
        return bucket_id + key, None
    return bucket_id + key[:L] + b"\x00", key[L:]


def is_group(lmdb_key: bytes) -> bool:
    return len(lmdb_key) == GROUP_KEY_LEN


# ------------------------------------------------------------------ groups
def unpack_group(raw: bytes | None) -> list[tuple[bytes, bytes]]:
    """A group value: ``[(suffix, packed version list)]`` sorted by suffix."""
    if not raw:
        return []
    return [(bytes(s), bytes(v)) for s, v in msgpack.unpackb(raw, raw=True)]


def pack_group(entries: list[tuple[bytes, bytes]]) -> bytes:
    return msgpack.packb([[s, v] for s, v in entries], use_bin_type=True)


def group_get(entries: list[tuple[bytes, bytes]], suffix: bytes) -> bytes | None:
    i = bisect_left(entries, suffix, key=lambda e: e[0])
    if i < len(entries) and entries[i][0] == suffix:
        return entries[i][1]
    return None


def group_put(entries: list[tuple[bytes, bytes]], suffix: bytes, value: bytes | None) -> None:
    """Insert/replace (or remove, with ``None``) ``suffix`` in place."""
    i = bisect_left(entries, suffix, key=lambda e: e[0])
    present = i < len(entries) and entries[i][0] == suffix
    if value is None:
        if present:
            del entries[i]
    elif present:
        entries[i] = (suffix, value)
    else:
        entries.insert(i, (suffix, value))


class Txn(Protocol):
    """The part of ``lmdb.Transaction`` the record helpers use."""

    def get(self, key: bytes, default: bytes | None = None, db: Any = None) -> bytes | None: ...

    def put(self, key: bytes, value: bytes, db: Any = None) -> bool: ...

    def delete(self, key: bytes, value: bytes = b"", db: Any = None) -> bool: ...


def read_record(txn: Txn, db: Any, bucket_id: bytes, key: bytes) -> bytes | None:
    """The packed version list stored for ``key`` (plain or grouped), or None."""
    lkey, suffix = encode_key(bucket_id, key)
    raw = txn.get(lkey, db=db)
    if raw is None or suffix is None:
        return raw
    return group_get(unpack_group(raw), suffix)


def update_record(
    txn: Txn, db: Any, bucket_id: bytes, key: bytes, fn: Callable[[bytes | None], bytes | None]
) -> None:
    """Replace ``key``'s packed version list with ``fn(current)``; None
    removes the key (and its group record once the group is empty)."""
    lkey, suffix = encode_key(bucket_id, key)
    raw = txn.get(lkey, db=db)
    if suffix is None:
        value = fn(raw)
        if value is not None:
            txn.put(lkey, value, db=db)
        elif raw is not None:
            txn.delete(lkey, db=db)
        return
    group = unpack_group(raw)
    group_put(group, suffix, fn(group_get(group, suffix)))
    if group:
        txn.put(lkey, pack_group(group), db=db)
    elif raw is not None:
        txn.delete(lkey, db=db)


# ------------------------------------------------------------------ order
def prefix_successor(p: bytes) -> bytes | None:
    """Smallest byte string greater than every string starting with ``p``
    (None if there is none: ``p`` is all 0xff)."""
    stripped = p.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def _iter_from(cur: Cursor, bucket_id: bytes, start: bytes) -> Iterator[tuple[bytes, bytes]]:
    """``(object key, packed versions)`` for every stored key >= ``start``."""
    if len(start) <= L:
        seek, min_suffix = bucket_id + start, b""
    else:
        seek, min_suffix = bucket_id + start[:L] + b"\x00", start[L:]
    if not cur.set_range(seek):
        return
    first = True
    while True:
        k = bytes(cur.key())
        if not k.startswith(bucket_id):
            return
        if is_group(k):
            p = k[BUCKET_ID_LEN:-1]
            entries = unpack_group(cur.value())
            lo = 0
            if first and k == seek and min_suffix:
                lo = bisect_left(entries, min_suffix, key=lambda e: e[0])
            for s, v in entries[lo:]:
                yield p + s, v
        else:
            yield k[BUCKET_ID_LEN:], bytes(cur.value())
        first = False
        if not cur.next():
            return


def walk_listing(
    cur: Cursor,
    bucket_id: bytes,
    *,
    prefix: bytes = b"",
    start_after: bytes | None = None,
    delimiter: bytes | None = None,
    limit: int = 1000,
    keep: Callable[[bytes], bool] | None = None,
) -> list[tuple[bytes, bytes | None]]:
    """Keys of ``bucket_id`` starting with ``prefix``, greater than
    ``start_after``, in binary order, at most ``limit`` entries.

    ``keep(packed versions)`` False drops a key, and it does not make a
    common prefix (drive/liveness.py): a prefix is emitted at its first kept
    key, or not at all.

    Returns ``(key, packed versions)`` pairs, or ``(common prefix, None)`` when
    a delimiter collapses keys.  A common prefix is emitted only if it sorts
    after ``start_after``; one that does not (``start_after`` lies inside it,
    as when a page ended on that prefix) is skipped with all its keys, which is
    what S3 clients expect when they pass a returned prefix as the marker.
    """
    check_bucket_id(bucket_id)
    if limit <= 0:
        return []
    if delimiter == b"":
        delimiter = None
    if start_after is None or start_after < prefix:
        start: bytes | None = prefix
    elif start_after.startswith(prefix):
        start = start_after + b"\x00"  # smallest key > start_after
    else:
        return []  # start_after is past every key with this prefix
    out: list[tuple[bytes, bytes | None]] = []
    while start is not None:
        restart: bytes | None = None
        for key, value in _iter_from(cur, bucket_id, start):
            if not key.startswith(prefix):
                return out
            if start_after is not None and key <= start_after:
                continue  # only a group entry below the seek point
            if keep is not None and not keep(value):
                continue  # the next key may still be kept (and make the prefix)
            if delimiter is not None:
                i = key.find(delimiter, len(prefix))
                if i >= 0:
                    cp = key[: i + len(delimiter)]
                    if start_after is None or cp > start_after:
                        out.append((cp, None))
                        if len(out) >= limit:
                            return out
                    restart = prefix_successor(cp)
                    if restart is None:
                        return out
                    break
            out.append((key, value))
            if len(out) >= limit:
                return out
        else:
            return out
        start = restart
    return out


def scan_range(
    cur: Cursor, *, prefix: bytes = b"", start_after: bytes | None = None, limit: int = 1000
) -> list[tuple[bytes, bytes]]:
    """Raw ``(key, value)`` pairs of a plain table: keys starting with
    ``prefix``, greater than ``start_after``, in order, at most ``limit``."""
    seek = prefix
    if start_after is not None and start_after >= prefix:
        if not start_after.startswith(prefix):
            return []
        seek = start_after + b"\x00"
    out: list[tuple[bytes, bytes]] = []
    if limit <= 0 or not cur.set_range(seek):
        return out
    while True:
        k = bytes(cur.key())
        if not k.startswith(prefix):
            break
        out.append((k, bytes(cur.value())))
        if len(out) >= limit or not cur.next():
            break
    return out
