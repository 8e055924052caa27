"""wsio on asyncio, the callback level: no coroutine per message.

:func:`create_server` and :func:`create_connection` are shaped like asyncio's; each
connection gets a :class:`Listener` (subclass it) whose callbacks receive a
:class:`Transport` to send with and, per frame, a reused :class:`Frame` whose payload is
a view into the read buffer, unmasked in place and valid until the callback returns.
Pings and the closing handshake are answered by the protocol core; UTF-8, fragment and
size rules are on. The receive loop and the sends are compiled (``wsio.aio._callback``).

The high level, on top of it: :func:`connect` and :func:`serve` give a
:class:`Connection` with the names and semantics of :class:`wsio.sync.Connection`
(``await ws.send(...)``, ``await ws.recv()``, ``async for message in ws``, ``await
ws.ping()`` for the latency, keepalive, ``max_queue`` and ``write_limit``);
:func:`broadcast` sends one message to many connections, encoded once.
"""

from __future__ import annotations

from wsio.aio._callback import Frame, Transport
from wsio.aio.client import create_connection
from wsio.aio.listener import Listener
from wsio.aio.server import create_server

__all__ = ["Frame", "Listener", "Transport", "create_connection", "create_server"]

# The high level: a Connection object per connection, with coroutines.
from wsio._connection import Backoff, Options, Request, Response
from wsio.aio.client import connect
from wsio.aio.connection import Connection, broadcast
from wsio.aio.server import Server, serve

__all__ += [
    "Backoff",
    "Connection",
    "Options",
    "Request",
    "Response",
    "Server",
    "broadcast",
    "connect",
    "serve",
]
