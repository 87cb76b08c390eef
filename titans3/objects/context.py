"""What every part of the object layer shares: placement and quorum context.

Theory of operation
-------------------
The object layer is a few parts, each with its own state and the parts it
uses passed to its constructor (``store.py`` wires them).  What they all need
-- and what the cluster layer rewires while a cluster forms or the ring
changes -- lives here, in one :class:`StoreContext` that every part holds:

* the drives (positions in ``drives``) and the ring slot of each, the ring
  and, during a change, the previous ring (reads also ask its drives);
* the default erasure scheme, codecs per ``(k, m)``, the inline threshold;
* ``healing``: positions whose answers do not count in reads (blank
  replacements not yet refilled, ``titans3.disks.roster``);
* the bucket register and the version clock;
* hinted-handoff plans of writes between staging and commit
  (``objects/handoff.py``).

Parts never copy these: a field the cluster layer reassigns (``ring``,
``buckets``, ``scheme`` ...) is seen by every part at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from titans3.core import storageclass
from titans3.core.errors import InvalidStorageClass
from titans3.core.kms import KeyManager
from titans3.drive.protocol import Drive
from titans3.erasure.codec import Codec, ECScheme
from titans3.erasure.stripe import Layout, layout_for
from titans3.objects.admission import WriteAdmission, unlimited
from titans3.objects.buckets import BucketRecord, BucketTable
from titans3.objects.resolve import write_quorum
from titans3.objects.sse import Keys
from titans3.objects.versionid import HybridClock
from titans3.ring.builder import Ring

if TYPE_CHECKING:
    from titans3.objects.hinted import HintedDrive


class StoreContext:
    def __init__(
        self,
        drives: Sequence[Drive],
        ring: Ring,
        scheme: ECScheme,
        *,
        clock: HybridClock | None = None,
        inline_max: int = 128 << 10,
        host: str = "localhost",
        version: str = "",
        slots: Sequence[str] | None = None,
    ) -> None:
        self.drives = list(drives)
        # Ring members are slots; by default a drive's slot is its drive id.
        self.slots = list(slots) if slots is not None else [d.drive_id for d in self.drives]
        self._by_id = {s: i for i, s in enumerate(self.slots)}
        self._placed: dict[int, list[int]] = {}  # partition -> positions (placement())
        self._placed_ring: Ring | None = None
        self.healing: set[int] = set()
        self.ring = ring
        self.old_ring: Ring | None = None
        self.scheme = scheme
        self.clock = clock or HybridClock()
        self.inline_max = inline_max
        self.host = host
        self.version = version
        self.buckets = BucketTable(self.drives, self.clock)
        self._codecs: dict[tuple[int, int], Codec] = {}
        # Hinted-handoff plans of PUTs between staging and commit (objects/handoff.py).
        self.handoffs: dict[str, dict[int, HintedDrive]] = {}
        # The key manager for server-side encryption (objects/kms.py), set by the host.
        self.kms: KeyManager | None = None
        self.keys = Keys(lambda: self.kms)
        # Storage classes other than STANDARD -> (k, m) (core/storageclass.py), set by the host.
        self.storage_classes: dict[str, tuple[int, int]] = {}
        # The host's data-path memory budget for write streams (objects/admission.py), set by the host.
        self.admission: WriteAdmission = unlimited()

    # ------------------------------------------------------------ topology
    def placement(self, bucket_id: bytes, key: bytes) -> list[int]:
        """Positions in ``drives`` of the key's fragments, by fragment index.

        Cached per partition of the current ring (rings are immutable: a ring
        change assigns a new one, which drops the cache); a listing page asks
        this for every key, and mapping drive ids to positions was ~10 % of it."""
        ring = self.ring
        if ring is not self._placed_ring:
            self._placed, self._placed_ring = {}, ring
        part = ring.partition_of(bucket_id, key)
        row = self._placed.get(part)
        if row is None:
            row = self._placed[part] = [self._by_id[m.drive_id] for m in
                                        (ring.members[i] for i in ring.table[part])]
        return list(row)

    def old_extra(self, bucket_id: bytes, key: bytes, positions: list[int]) -> list[int]:
        """During a ring change: the old placement's drives the new one replaced."""
        if self.old_ring is None:
            return []
        old = [self._by_id[d] for d in self.old_ring.drives_for(bucket_id, key) if d in self._by_id]
        return [p for p in old if p not in positions]

    def add_drives(self, drives: Sequence[Drive], slots: Sequence[str]) -> None:
        """Append drives of hosts that joined (positions of the others stay)."""
        for d, s in zip(drives, slots, strict=True):
            if s not in self._by_id:
                self._placed_ring = None  # a ring naming this slot may be cached already
                self._by_id[s] = len(self.drives)
                self.drives.append(d)
                self.slots.append(s)

    def replace_drive(self, pos: int, drive: Drive) -> None:
        """Put ``drive`` at position ``pos`` (same slot, new disk)."""
        self.drives[pos] = drive
        self.buckets.replace_drive(pos, drive)

    # ------------------------------------------------------------ erasure coding
    def codec(self, k: int, m: int) -> Codec:
        c = self._codecs.get((k, m))
        if c is None:
            c = self._codecs[(k, m)] = Codec(ECScheme(k, m, self.scheme.segment_size))
        return c

    def scheme_for(self, brec: BucketRecord) -> ECScheme:
        if brec.ec:
            return ECScheme(brec.ec[0], brec.ec[1], self.scheme.segment_size)
        return self.scheme

    def scheme_of_class(self, brec: BucketRecord, storage_class: str | None) -> ECScheme:
        """The scheme a write of ``storage_class`` uses (None / STANDARD: the bucket's);
        an unmapped class is AWS's ``InvalidStorageClass``."""
        if storage_class is None or storage_class == storageclass.STANDARD:
            return self.scheme_for(brec)
        km = self.storage_classes.get(storage_class)
        if km is None:
            raise InvalidStorageClass(StorageClassRequested=storage_class)
        return ECScheme(km[0], km[1], self.scheme.segment_size)

    def layout(self, rec_ec: tuple[int, int, int], size: int) -> Layout:
        k, m, seg = rec_ec
        codec = self.codec(k, m)
        return layout_for(size, ECScheme(k, m, seg), codec.fragment_size)

    def list_quorum(self) -> int:
        """Drives that must answer a listing so every committed write is seen:
        enough to meet every write's quorum, the smallest of any storage class's."""
        w = min([write_quorum(self.scheme.k, self.scheme.m),
                 *(write_quorum(k, m) for k, m in self.storage_classes.values())])
        return len(self.drives) - w + 1
