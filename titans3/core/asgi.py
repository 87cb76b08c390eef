"""ASGI plumbing shared by every TitanS3 listener (S3, peer, status page).

Theory of operation
-------------------
:class:`StreamingQuartTrio` is QuartTrio with two fixes (``ClosingQuartTrio``
has only the second, for apps that read whole, bounded bodies -- the peer API's
1 MiB chunks, the status page -- where backpressure would deadlock
``get_data()``):

* **backpressure** -- Quart's request body buffer appends whatever the server
  delivers; our receiver waits while more than ``BODY_HIGH_WATER`` bytes are
  unread, so hypercorn stops reading the socket and TCP pushes back on the
  client (a multi-GiB upload holds about a megabyte);
* **clean connection ends** -- hypercorn finishes a response *inside* the
  app's final ``send`` (recycling the connection for keep-alive, or closing
  it after ``Connection: close``) and delivers ``http.disconnect`` on the way;
  quart-trio cancelled the request's nursery on that disconnect, interrupting
  hypercorn half-way, so such sockets stayed open.  A disconnect now cancels
  only while the response is unfinished (a client gone mid-download must
  still stop the stream).
"""

from __future__ import annotations

from typing import Any

import trio
from quart_trio import QuartTrio
from quart_trio.asgi import TrioASGIHTTPConnection
from quart_trio.wrappers.request import TrioBody, TrioRequest

BODY_HIGH_WATER = 1024 * 1024


class _BoundedBody(TrioBody):
    """Quart's request body buffer plus a way for the receiver to wait for room."""

    def __init__(self, expected_content_length: int | None, max_content_length: int | None) -> None:
        super().__init__(expected_content_length, max_content_length)
        self._drained = trio.Event()

    async def __anext__(self) -> bytes:
        data = await super().__anext__()
        self._drained.set()
        return data

    async def wait_for_room(self, high_water: int) -> None:
        while (
            len(self._data) > high_water
            and not self._complete.is_set()
            and self._must_raise is None
        ):
            self._drained = trio.Event()
            await self._drained.wait()


class _BoundedRequest(TrioRequest):
    body_class = _BoundedBody


class _StreamingHTTPConnection(TrioASGIHTTPConnection):
    """quart-trio's connection with a receiver that respects ``BODY_HIGH_WATER``.

    It also fixes a quart-trio/hypercorn interplay: hypercorn finishes a
    response *inside* the app's final ``send`` -- recycling the connection for
    keep-alive, or closing the socket after ``Connection: close`` -- and
    delivers ``http.disconnect`` on the way.  quart-trio cancels the request's
    nursery on that disconnect, which interrupted hypercorn half-way: the
    socket of a ``Connection: close`` request stayed open until the client gave
    up.  A disconnect therefore cancels only while the response is unfinished
    (a client gone mid-download must still stop the stream).
    """

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
                elif (wait := getattr(request.body, "wait_for_room", None)) is not None:
                    await wait(BODY_HIGH_WATER)
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


# ------------------------------------------------------------------- app

class ClosingQuartTrio(QuartTrio):
    """The connection-end fix only: for apps that read whole (small) bodies."""

    asgi_http_class = _StreamingHTTPConnection


class StreamingQuartTrio(ClosingQuartTrio):
    """Both fixes: for apps that stream large bodies."""

    request_class = _BoundedRequest
