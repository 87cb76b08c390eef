"""Placement: the partition ring (pure, no I/O)."""
