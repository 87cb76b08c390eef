"""The default erasure scheme of a multi-host cluster: host failure as the unit (pure).

Theory of operation
-------------------
A cluster's failure domain is the host: a reboot, an upgrade or a dead power
supply takes away every drive of one host at once.  The single-host rule
(:meth:`ECScheme.for_drive_count`: use every drive up to 12, ``m`` from the
width) knows nothing of hosts, so on its own it can pick a stripe that one host
down makes unreadable (2 hosts x 6 drives -> 8+4 with 6 fragments per host) or
unwritable.  A scheme *keeps a cluster available with one host down* when, with
the ring builder's placement (:mod:`titans3.ring.builder`: one drive per host per
round, so the host with the most drives gets ``rounds(width)`` fragments of a
stripe -- :func:`fragments_per_host`):

* **reads**: the host with the most fragments, ``f``, holds at most ``m``
  (``n - f >= k`` fragments remain);
* **writes** (3 or more hosts): ``f < n / 2``.  Hinted handoff
  (:mod:`titans3.objects.handoff`) only writes when a strict majority of the
  stripe's primaries is online (so two sides of a partition never both write),
  and at least ``k``; it then stages the down host's fragments on spare drives
  of other hosts, or doubles them up on live primaries, and acknowledges only
  with the same margin as ``W = k + 1`` distinct drives.  So the scheme never
  has to leave room for handoff drives: it has to leave a majority.  Two hosts
  can never meet this (one host down is half of every stripe); a 2-host
  cluster reads through a host outage, and writes need both hosts.

:func:`default_scheme` takes the widest width the single-host table allows
(at most 12 and the drive count) that passes, narrowing one fragment at a
time; ``m`` follows the width exactly as in the single-host table.  Symmetric
clusters get what the table gives today (3 x 2 -> 4+2, 6 x 1 -> 4+2, 3 x 4 ->
8+4); lopsided or 2-host ones get a narrower stripe (2 x 6 -> 2+2, hosts of
6, 1 and 1 drives -> 1+2).  One host is the old rule unchanged.

Why not "width <= drives minus the largest host" (leave a whole host's worth of
spare drives for handoff): for 3 hosts x 2 drives it gives 2+2, whose 4
fragments put 2 on some host; with that host down 2 of 4 primaries remain, not
a majority, so a third of all writes would still be refused -- and it costs
2x raw instead of 1.5x.  Spare drives are used first when they exist; doubling
covers the rest (docs/handoff.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from titans3.erasure.codec import DEFAULT_SEGMENT_SIZE, ECScheme

MAX_WIDTH = 12  # the single-host table's cap (titans3.erasure.codec)


def fragments_per_host(host_drives: Sequence[int], width: int) -> int:
    """Most fragments of one ``width``-wide stripe any host can get from the ring
    builder (one drive per host per round; the host with the most drives takes
    part in every round, and in the last, partial one in some partitions)."""
    if width > sum(host_drives):
        raise ValueError(f"a stripe of {width} needs {width} drives, have {sum(host_drives)}")
    left, rounds = width, 0
    while left > 0:
        left -= min(left, sum(1 for d in host_drives if d > rounds))
        rounds += 1
    return rounds


def scheme_of_width(width: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> ECScheme:
    """The single-host table's scheme for a stripe ``width`` fragments wide."""
    return ECScheme.for_drive_count(width, segment_size=segment_size)


def survives_host_down(scheme: ECScheme, host_drives: Sequence[int]) -> bool:
    """Reads (and, with 3+ hosts, writes) keep working with any one host down."""
    if len(host_drives) < 2 or scheme.n > sum(host_drives):
        return False
    f = fragments_per_host(host_drives, scheme.n)
    if f > scheme.m:
        return False
    return len(host_drives) == 2 or 2 * f < scheme.n


def default_scheme(host_drives: Sequence[int], segment_size: int = DEFAULT_SEGMENT_SIZE) -> ECScheme:
    """The cluster's scheme for hosts with these drive counts (module doc)."""
    drives = [d for d in host_drives if d > 0]
    total = sum(drives)
    if total < 1:
        raise ValueError("a cluster needs at least one drive")
    if len(drives) < 2:
        return ECScheme.for_drive_count(total, segment_size=segment_size)
    for width in range(min(total, MAX_WIDTH), 1, -1):
        scheme = scheme_of_width(width, segment_size)
        if survives_host_down(scheme, drives):
            return scheme
    # Unreachable with 2+ hosts (1+1 on two hosts always passes); kept total.
    return scheme_of_width(2, segment_size)
