"""Peer listener.

Theory of operation
-------------------
Hosts talk to each other on this port (DESIGN §1, §8).  Every peer request
must carry the cluster-secret HMAC; a request without valid credentials gets
403 and touches nothing.  A single host has no cluster secret, so nothing can
authenticate and every request is refused -- the port is held so that the
address is reserved and an operator's firewall rules can be written now.  The
drive and cluster calls arrive with the multi-host work (issue 4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quart import Response
from quart_trio import QuartTrio

if TYPE_CHECKING:
    from titans3.daemon import Host


def create_peer_app(host: Host) -> QuartTrio:
    app = QuartTrio("titans3-peer")

    @app.route("/", defaults={"path": ""}, methods=["GET", "PUT", "POST", "DELETE", "HEAD"])
    @app.route("/<path:path>", methods=["GET", "PUT", "POST", "DELETE", "HEAD"])
    async def refuse(path: str) -> Response:
        return Response("peer request not authenticated\n", status=403, content_type="text/plain")

    return app
