"""WebSocket connections for threads: :class:`connect`, :func:`serve`.

A :class:`Connection` sends from any number of threads at once (``send``: ``str`` →
text, bytes-like → binary, an iterable → one fragmented message), receives in one
thread at a time (``recv``, ``recv_streaming``, iteration until a normal close), pings
(``ping().wait()`` → latency), keeps itself alive (``ping_interval``, ``ping_timeout`` →
1011) whatever the application does, and closes with the full closing handshake
within ``close_timeout``::

    from wsio.sync import connect, serve

    def echo(ws):
        for message in ws:
            ws.send(message)

    with serve(echo, "127.0.0.1", 8765) as server:
        server.serve_forever()

    with connect("ws://127.0.0.1:8765") as ws:
        ws.send("hello")
        print(ws.recv())

The options, limits and defaults are :mod:`wsio.aio`'s (one definition:
``wsio._connection.Options``); the logger is ``logging.getLogger("wsio")``.
"""

from __future__ import annotations

from wsio._connection import Backoff, Options, Request, Response
from wsio.sync.client import connect
from wsio.sync.connection import Connection, Pinged
from wsio.sync.server import Server, serve

__all__ = [
    "Backoff",
    "Connection",
    "Options",
    "Pinged",
    "Request",
    "Response",
    "Server",
    "connect",
    "serve",
]
