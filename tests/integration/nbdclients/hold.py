"""Attach an export, write ``MiB`` bytes of a pattern at offset 0, FLUSH, print ``ready`` and hold on.

The connection stays open (the volume attached for writing) until this
process is killed or its stdin closes.
"""

import sys

import nbd

h = nbd.NBD()
h.connect_uri(sys.argv[1])
pattern = bytes([int(sys.argv[2]) % 256]) * (1 << 20)
h.pwrite(pattern, 0)
h.flush()
print("ready", flush=True)
sys.stdin.read()
