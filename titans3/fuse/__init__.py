"""The cluster as a filesystem (pyfuse3): one core, two ways to mount.

Layout: pure modules -- ``paths`` (path <-> key), ``meta`` (s3fs-compatible
attributes), ``inodes`` (lookup counts), ``cookies`` and ``listing``
(readdir), ``extents`` (dirty ranges), ``readahead``, ``plan`` (commits) --
under the core ``fs`` / ``files`` / ``tree``, which speak only to the narrow
``backend.Backend`` interface.  Two backends: ``store_backend`` (inside the
daemon, the object layer itself) and ``s3_backend`` (any S3 endpoint).
``ops`` adapts the core to pyfuse3, ``mount`` runs it.  docs/fuse.md has the
semantics.
"""
