"""Durability workers: scrubber, heal queue, repair, drive refill, GC (DESIGN §7).

Theory of operation
-------------------
Each worker is one long-running trio task family with a ``statistics()``
method returning a frozen record (what the status page, ``/metrics``, the
admin API and ``titanctl repair status`` show).  Workers are host machinery:
they never import the object layer.  Everything object-shaped -- placement,
resolution, rebuilding a fragment -- is asked of a *services* object the
daemon hands in (:class:`titans3.objects.maintenance.Maintenance`), described
here by the protocols in :mod:`titans3.workers.services`.  Drives are used
through the Drive protocol only (plus ``sweep_staging``/``root`` where a local
drive has them).

Progress that must survive a restart (the scrubber's and a refill's cursor)
is checkpointed in the drive's own ``workers`` meta table, so it travels with
the disk: a replaced disk starts from zero, a restarted daemon resumes.  The
heal queue is a file in the host's state directory.
"""
