"""Writes random 4 KiB blocks until the server goes away, logging what it did.

Run by Debian's python3 (libnbd binding).  Every write is logged *before* it
is sent (``W block tag``), every acknowledged FLUSH as ``F`` and every
acknowledged FUA write as ``U block tag``, each line flushed to the log at
once: the test reads the log after SIGKILLing the daemon to know what must
have survived.  A block written with tag ``t`` holds ``t`` as 8 big-endian
bytes, 512 times.
"""

import random
import struct
import sys

import nbd

uri, log_path, seed, first_tag, blocks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(seed)
h = nbd.NBD()
h.connect_uri(uri)
with open(log_path, "a", buffering=1) as log:
    tag = first_tag
    try:
        while True:
            for _ in range(rng.choice([1, 8, 32])):
                tag += 1
                b = rng.randrange(blocks)
                fua = rng.random() < 0.05
                log.write(f"W {b} {tag}\n")
                h.pwrite(struct.pack(">Q", tag) * 512, b * 4096, nbd.CMD_FLAG_FUA if fua else 0)
                if fua:
                    log.write(f"U {b} {tag}\n")
            h.flush()
            log.write("F\n")
    except nbd.Error as e:
        log.write(f"E {e.string}\n")
