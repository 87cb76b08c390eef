"""The cluster layer: forming a cluster, its membership document, ring changes.

It sits above the object layer (it builds the cluster's ``ObjectStore`` from
local and remote drives) and below the fronts (the admin API and the peer
listener call into it).  See docs/architecture.md, "Layers".
"""
