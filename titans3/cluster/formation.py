"""Forming the cluster at start-up: the handshake, then the membership document.

:func:`form` is what the daemon calls when it runs with ``--peers`` or has
joined a cluster before: it builds the :class:`~titans3.cluster.peers.Cluster`
(handshake, failure detector), rebuilds or starts the membership document
(:mod:`titans3.cluster.membership`) and replaces ``host.store`` with the
cluster's.  It sits above both modules so that neither imports the other
back.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from titans3.cluster import membership
from titans3.cluster.peers import Cluster

if TYPE_CHECKING:
    from titans3.cluster.host import HostServices as Host

log = logging.getLogger("titans3.cluster.peers")


async def form(host: Host, nursery: trio.Nursery) -> Cluster:
    """Handshake with every peer, then replace ``host.store`` with the cluster's
    store and start the failure detector in ``nursery``."""
    cluster = Cluster(host.config, host)
    doc = membership.load_doc(host.config.state_path)
    if doc is not None:  # a cluster that changed since --peers: the saved document rules
        host.store = await membership.resume(cluster, doc)
        members = cluster.members
    else:
        members = await cluster.handshake()
        host.store = cluster.build_store(members)
        doc = membership.initial_doc(cluster, host.store)
    cluster.membership = membership.Membership(cluster, doc)  # type: ignore[attr-defined]
    host.workers["cluster"] = cluster
    await nursery.start(cluster.run)
    nursery.start_soon(cluster.membership.run)  # type: ignore[attr-defined]
    log.info("cluster formed: %d hosts, %d drives, EC %d+%d, this host is %s at %s",
             len(members), len(host.store.drives), host.store.scheme.k, host.store.scheme.m,
             host.host_id, cluster.self_address)
    return cluster
