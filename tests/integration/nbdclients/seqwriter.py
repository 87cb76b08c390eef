"""Write 4 KiB blocks ``first..last`` in order with 16 requests in flight, logging times.

Each line is ``S block t`` (sent) or ``A block t`` (acknowledged) with
``t = time.monotonic()`` (the clock every process of the machine shares).
A block holds its number as 8 bytes, 512 times, plus the byte ``fill``.
Stops at ``last`` or when stdin closes.
"""

import struct
import sys
import time

import nbd

uri, first, last, log_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
h = nbd.NBD()
h.connect_uri(uri)
with open(log_path, "w", buffering=1) as log:
    inflight = {}
    b = first
    while b < last or inflight:
        while b < last and len(inflight) < 16:
            buf = nbd.Buffer.from_bytearray(bytearray(struct.pack(">Q", b) * 512))
            log.write(f"S {b} {time.monotonic()}\n")
            inflight[h.aio_pwrite(buf, b * 4096)] = (b, buf)
            b += 1
            time.sleep(0.0005)
        h.poll(-1)
        for cookie in [c for c in inflight if h.aio_command_completed(c)]:
            blk, _ = inflight.pop(cookie)
            log.write(f"A {blk} {time.monotonic()}\n")
    h.flush()
h.shutdown()
