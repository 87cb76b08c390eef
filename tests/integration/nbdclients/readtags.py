"""Reads the tag of each 4 KiB block named on stdin (JSON list); prints {block: tag} as JSON.

A block of zeroes is tag 0; a block that is not one tag repeated is -1.
"""

import json
import struct
import sys

import nbd

h = nbd.NBD()
h.connect_uri(sys.argv[1])
out = {}
for b in json.load(sys.stdin):
    data = h.pread(4096, b * 4096)
    (tag,) = struct.unpack_from(">Q", data)
    out[b] = tag if data == struct.pack(">Q", tag) * 512 else -1
h.shutdown()
print(json.dumps(out))
