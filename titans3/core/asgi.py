"""Quart plumbing for the listeners that keep Quart (the peer API, the status page).

Theory of operation
-------------------
:class:`ClosingQuartTrio` is QuartTrio with one fix, for apps that read whole,
bounded bodies (the peer API's 1 MiB chunks, the status page):

* **clean connection ends** -- hypercorn finishes a response *inside* the
  app's final ``send`` (recycling the connection for keep-alive, or closing
  it after ``Connection: close``) and delivers ``http.disconnect`` on the way;
  quart-trio cancelled the request's nursery on that disconnect, interrupting
  hypercorn half-way, so such sockets stayed open.  A disconnect now cancels
  only while the response is unfinished (a client gone mid-download must
  still stop the stream).

The S3 endpoint has no web framework at all: ``titans3.s3.asgi`` (which
solves the same problem, plus backpressure, for streamed bodies).
"""

from __future__ import annotations

from typing import Any

import trio
from quart_trio import QuartTrio
from quart_trio.asgi import TrioASGIHTTPConnection


class _ClosingHTTPConnection(TrioASGIHTTPConnection):
    """quart-trio's connection, cancelling on disconnect only before the final send."""

    _final_sent = False

    async def handle_messages(  # type: ignore[override]
        self, nursery: trio.Nursery, request: Any, receive: Any
    ) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.request":
                request.body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    request.body.set_complete()
            elif message["type"] == "http.disconnect":
                break
        if not self._final_sent:
            nursery.cancel_scope.cancel()

    async def handle_request(  # type: ignore[override]
        self, nursery: trio.Nursery, request: Any, send: Any
    ) -> None:
        async def tracking_send(message: Any) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self._final_sent = True  # before: hypercorn closes/recycles inside this call
            await send(message)

        await super().handle_request(nursery, request, tracking_send)


class ClosingQuartTrio(QuartTrio):
    """QuartTrio whose connections end cleanly (see module doc)."""

    asgi_http_class = _ClosingHTTPConnection
