"""Write every block, FLUSH, then write more without flushing, print ``written`` and hold on.

Run by Debian's python3 (libnbd binding).  Phase one writes three of every four
4 KiB blocks (``b % 4 != 3``: no extent is whole, so the FLUSH writes a log
segment) with tag ``base + b`` and FLUSHes;
``flushed`` is printed once the FLUSH is acknowledged.  Phase two, never
flushed: random single blocks get tag ``2 * base + i``, and two whole extents
(4 MiB each, blocks ``[e * 1024, (e + 1) * 1024)``) get ``3 * base + b`` -- so
the gateway's cleaner folds extents holding unflushed data while the test
waits to SIGKILL it.  Then ``written`` and a JSON line ``{block: [tag, ...]}``
of phase two's writes, and the connection stays open until killed (no
disconnect, so no clean detach folds anything).

A block written with tag ``t`` holds ``t`` as 8 big-endian bytes, 512 times.
"""

import json
import random
import struct
import sys

import nbd

uri, blocks, base, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
h = nbd.NBD()
h.connect_uri(uri)
RUN = 64
for first in range(0, blocks, 4):
    h.pwrite(b"".join(struct.pack(">Q", base + b) * 512 for b in range(first, min(blocks, first + 3))), first * 4096)
h.flush()
print("flushed", flush=True)
later: dict[int, list[int]] = {}
for i in range(blocks // 4):
    b = rng.randrange(blocks)
    tag = 2 * base + i
    h.pwrite(struct.pack(">Q", tag) * 512, b * 4096)
    later.setdefault(b, []).append(tag)
for e in rng.sample(range(blocks // 1024), 2):
    for first in range(e * 1024, (e + 1) * 1024, RUN):
        h.pwrite(b"".join(struct.pack(">Q", 3 * base + b) * 512 for b in range(first, first + RUN)), first * 4096)
        for b in range(first, first + RUN):
            later.setdefault(b, []).append(3 * base + b)
print("written", flush=True)
print(json.dumps(later), flush=True)
sys.stdin.read()
