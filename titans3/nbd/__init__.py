"""The NBD block gateway: volumes of the cluster, attached by anything that speaks NBD.

Layers inside the package (imports point down):

* ``wire``, ``events``, ``replies``, ``protocol`` -- the NBD protocol, sans-I/O;
* ``volumes`` -- volumes as extent objects plus a durable write log;
* ``server`` -- the trio adapter: listeners, connections, the daemon's face.

docs/nbd.md explains the write path and the durability rule.
"""
