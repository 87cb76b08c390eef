"""libnbd probe of one export (run by Debian's python3, which has the ``nbd`` binding).

Checks what a client can see on the wire: structured replies with OFFSET_HOLE
chunks for an unwritten range, FUA writes, FAST_ZERO, TRIM, CACHE, FLUSH,
``base:allocation`` extents, and the errors the protocol names for requests
past the end or not aligned.  Prints ``ok`` last when everything held.
"""

import errno
import sys

import nbd

uri = sys.argv[1]
h = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri(uri)
size = h.get_size()
assert h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
assert h.get_structured_replies_negotiated()

kinds = []


def chunk(buf, offset, status, err):
    kinds.append(status)
    return 0


buf = h.pread_structured(1 << 20, 0, chunk)
assert buf == bytes(1 << 20), "an unwritten range reads as zeroes"
assert kinds == [nbd.READ_HOLE], f"an unwritten range is one hole chunk, got {kinds}"

h.pwrite(b"A" * 4096, 8192, nbd.CMD_FLAG_FUA)
assert h.pread(4096, 8192) == b"A" * 4096
kinds.clear()
h.pread_structured(12288, 4096, chunk)
assert nbd.READ_DATA in kinds

h.zero(4096, 8192, nbd.CMD_FLAG_FAST_ZERO)
assert h.pread(4096, 8192) == bytes(4096)
h.pwrite(b"B" * 512, 512)  # below the preferred block size: read-modify-write on the server
assert h.pread(4096, 0) == bytes(512) + b"B" * 512 + bytes(3072)
h.trim(4 << 20, 4 << 20)
h.cache(1 << 20, 0)
h.flush()

extents = []


def status(metacontext, offset, entries, err):
    extents.extend(zip(entries[::2], entries[1::2], strict=True))
    return 0


h.block_status(size, 0, status)
assert extents and extents[0][1] == 0, f"the written extent is allocated: {extents}"
assert sum(n for n, _ in extents) >= size or extents[-1][1] & nbd.STATE_HOLE

for call, want in ((lambda: h.pread(4096, size), errno.EINVAL),
                   (lambda: h.pwrite(b"x" * 4096, size - 2048), errno.ENOSPC),
                   (lambda: h.pread(100, 0), errno.EINVAL)):
    try:
        call()
    except nbd.Error as e:
        assert e.errnum == want, (e.errnum, want, e.string)
    else:
        raise AssertionError("an out-of-range or misaligned request succeeded")

h.shutdown()
print("ok")
