"""wsio on asyncio, the callback level: no coroutine per message.

:func:`create_server` and :func:`create_connection` are shaped like asyncio's; each
connection gets a :class:`Listener` (subclass it) whose callbacks receive a
:class:`Transport` to send with and, per frame, a reused :class:`Frame` whose payload is
a view into the read buffer, unmasked in place and valid until the callback returns.
Pings and the closing handshake are answered by the protocol core; UTF-8, fragment and
size rules are on. The receive loop and the sends are compiled (``wsio.aio._callback``).
"""

from __future__ import annotations

from wsio.aio._callback import Frame, Transport
from wsio.aio.client import create_connection
from wsio.aio.listener import Listener
from wsio.aio.server import create_server

__all__ = ["Frame", "Listener", "Transport", "create_connection", "create_server"]
