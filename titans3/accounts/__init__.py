"""Cluster-wide access state: users and keys, the account, the audit log --
and the register every system record is kept on.

Theory of operation
-------------------
Everything here is a *system record* (DESIGN §4): stored in a small table on
every drive of the cluster, written to a majority with a version id, read as
the newest of a majority (:mod:`~titans3.accounts.register`; the status
page's admin password is kept on it too).  On top of it:

* :mod:`~titans3.accounts.directory` -- the account, its users, their access
  keys (secrets sealed under the cluster key) and identity policies, cached
  whole on every host and reloaded when another host's heartbeat shows a
  newer generation;
* :mod:`~titans3.accounts.audit` -- each host's hash-chained audit log,
  flushed to the cluster in blocks and shipped to journald
  (:mod:`~titans3.accounts.journal`).

The pure rules (policies, ACLs, the chain format) are in :mod:`titans3.iam`.
"""
