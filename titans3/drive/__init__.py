"""The drive layer: everything one disk stores (DESIGN §5).

Protocol and records (what the object layer sees):

* ``protocol``  -- the :class:`~titans3.drive.protocol.Drive` protocol.
* ``records``   -- per-object version records and the merge rule.

LocalDrive and its parts (one disk):

* ``local``     -- :class:`~titans3.drive.local.LocalDrive`: the protocol on a
  local directory; health state, commits, reads, tables.
* ``writer``    -- the trio FragmentWriter over ``direct.DirectWriter``.
* ``chunks``    -- fragment files in chunks/, staging/, quarantine/.
* ``index``     -- the LMDB environment and grouped durable commits.
* ``health``    -- the identity file and per-operation health probes.
* ``fragment``  -- the fragment file format (sans-I/O).
* ``keys``      -- LMDB key encoding for 1,024-byte S3 keys and the
  listing walk (sans-I/O).
* ``direct``    -- aligned O_DIRECT file I/O and buffer pools.
"""
