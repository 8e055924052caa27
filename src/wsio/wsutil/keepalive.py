"""Keepalive for blocking connections: ping a silent peer, give up on one that stays silent."""

from __future__ import annotations

import time
from collections.abc import Callable

from wsio.conn import SocketLike
from wsio.exceptions import KeepaliveTimeoutError

__all__ = ["Keepalive"]


class Keepalive:
    """A source (``recv_into``) that pings the peer when reads wait too long.

    Read the connection through it (``Reader(Keepalive(conn, ...), ...)``). The socket
    must have a timeout (``conn.settimeout(t)``): each time a read waits that long,
    the wait is checked. After ``interval`` seconds without a byte it calls ``ping()``
    (which sends a Ping frame); if ``timeout`` more seconds pass without a byte it
    raises :class:`KeepaliveTimeoutError`, and the caller closes with 1011. Any byte
    counts as an answer, a Pong or not. The checks happen when a read wakes, so keep
    the socket timeout at or below ``interval`` and ``timeout``. Reads that return
    in time cost one call more than on the socket.

    RFC 6455 §5.5.2: "A Ping frame MAY serve either as a keepalive or as a means to
    verify that the remote endpoint is still responsive."
    """

    def __init__(
        self, conn: SocketLike, ping: Callable[[], object], *, interval: float, timeout: float
    ) -> None:
        if conn.gettimeout() is None:
            raise ValueError("Keepalive needs a socket timeout: call conn.settimeout() first")
        if interval <= 0 or timeout <= 0:
            raise ValueError("interval and timeout must be positive")
        self.conn = conn
        self.ping = ping
        self.interval = interval
        self.timeout = timeout

    def recv_into(self, buffer: bytearray | memoryview, nbytes: int = 0, /) -> int:
        """``conn.recv_into``, pinging while the peer is silent (see the class)."""
        try:
            return self.conn.recv_into(buffer, nbytes)
        except TimeoutError:
            return self._wait(buffer, nbytes)

    def _wait(self, buffer: bytearray | memoryview, nbytes: int) -> int:
        # One silence, from the first read that timed out until a byte comes.
        timeout = self.conn.gettimeout() or 0.0
        silent_since = time.monotonic() - timeout
        pinged_at: float | None = None
        while True:
            now = time.monotonic()
            if pinged_at is None:
                if now - silent_since >= self.interval:
                    self.ping()
                    pinged_at = now
            elif now - pinged_at >= self.timeout:
                raise KeepaliveTimeoutError(
                    f"no answer to a keepalive ping within {self.timeout:g} s"
                )
            try:
                return self.conn.recv_into(buffer, nbytes)
            except TimeoutError:
                continue
