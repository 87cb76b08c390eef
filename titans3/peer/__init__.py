"""Peer API: serves this host's drives and cluster RPC to other hosts."""
