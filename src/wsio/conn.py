"""A connected socket that first serves the bytes read ahead of it.

An HTTP handshake reads in chunks, so the chunk that ends the head can carry the first
WebSocket frames too (a server may send a frame right behind its 101 response; a client
may pipeline frames behind its request; ``http.server`` buffers what it read in
``rfile``). Those bytes belong to the WebSocket stream. :class:`Conn` keeps them and
hands them out before it reads from the socket again, so nothing is lost (gobwas/ws
issues #19 and #214 were frames lost exactly there).

A :class:`Conn` has the socket methods the rest of wsio uses (``recv_into``,
``sendall``, ...), so it goes wherever a socket goes. Once the read-ahead is drained,
``recv_into``, ``recv``, ``send``, ``sendall`` and (for plain sockets) ``sendmsg`` are
the socket's own bound methods, stored on the instance: a call costs what the same call
on the socket costs.
"""

from __future__ import annotations

import socket as _socket
import ssl
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["Conn", "SocketLike"]


class SocketLike(Protocol):
    """What :class:`Conn` needs of the object it wraps: a connected, blocking socket.

    ``socket.socket`` and ``ssl.SSLSocket`` qualify; so does any wrapper with these
    methods (for example one that counts bytes, returned by a dialer's ``wrap_socket``).
    """

    def recv_into(self, buffer: Buffer, nbytes: int = ..., flags: int = ..., /) -> int: ...
    def recv(self, bufsize: int, flags: int = ..., /) -> bytes: ...
    def send(self, data: Buffer, flags: int = ..., /) -> int: ...
    def sendall(self, data: Buffer, flags: int = ..., /) -> None: ...
    def close(self) -> None: ...
    def shutdown(self, how: int, /) -> None: ...
    def fileno(self) -> int: ...
    def settimeout(self, value: float | None, /) -> None: ...
    def gettimeout(self) -> float | None: ...
    def getpeername(self) -> Any: ...
    def getsockname(self) -> Any: ...


class Conn:
    """A socket whose first reads return ``read_ahead``, then whatever the socket reads.

    ``read_ahead`` is kept as a view, not copied: don't resize or change it afterwards.
    ``pending`` says how many of its bytes are still unread. A selector watching
    ``fileno()`` does not see them, so event loops check ``pending`` (or call
    :meth:`take_read_ahead`) before waiting for the socket to become readable.
    """

    socket: SocketLike
    """The wrapped socket. Reading from it directly skips the ``pending`` bytes."""

    def __init__(self, sock: SocketLike, read_ahead: Buffer = b"") -> None:
        self.socket = sock
        self._ahead: memoryview | None = None
        self._pos = 0
        # Instance attributes shadow the methods below (which are non-data descriptors),
        # so the hot calls go straight to the socket's C methods with no Python frame.
        slots = self.__dict__
        slots["send"] = sock.send
        slots["sendall"] = sock.sendall
        # SSLSocket.sendmsg raises NotImplementedError; keep the emulation below for it.
        if not isinstance(sock, ssl.SSLSocket) and hasattr(sock, "sendmsg"):
            slots["sendmsg"] = sock.sendmsg
        view = memoryview(read_ahead).cast("B")
        if len(view):
            self._ahead = view
        else:
            view.release()
            self._bind_socket_reads()

    def _bind_socket_reads(self) -> None:
        # The read-ahead is drained: from now on reads are the socket's own methods.
        sock = self.socket
        self.__dict__["recv_into"] = sock.recv_into
        self.__dict__["recv"] = sock.recv
        ahead, self._ahead, self._pos = self._ahead, None, 0
        if ahead is not None:
            ahead.release()

    @property
    def pending(self) -> int:
        """How many read-ahead bytes the next reads will return before the socket's."""
        ahead = self._ahead
        return 0 if ahead is None else len(ahead) - self._pos

    def take_read_ahead(self) -> memoryview:
        """Remove and return the unread read-ahead bytes (possibly empty); the caller keeps them.

        For an event loop taking the connection over: feed these to the protocol first.
        """
        ahead = self._ahead
        if ahead is None:
            return memoryview(b"")
        rest = ahead[self._pos :]
        self._bind_socket_reads()
        return rest

    def recv_into(self, buffer: Buffer, nbytes: int = 0, flags: int = 0) -> int:
        """Read up to ``nbytes`` (default: the buffer's size) into ``buffer``; socket semantics.

        Read-ahead bytes come first and are returned alone, without waiting on the socket.
        ``socket.MSG_PEEK`` leaves them unread; other flags apply to socket reads only.
        """
        ahead = self._ahead
        if ahead is None:
            return self.socket.recv_into(buffer, nbytes, flags)
        with memoryview(buffer) as raw, raw.cast("B") as dst:
            size = len(dst)
            if nbytes < 0 or nbytes > size:
                raise ValueError("buffer too small for requested bytes")
            want = nbytes or size
            pos = self._pos
            take = min(want, len(ahead) - pos)
            dst[:take] = ahead[pos : pos + take]
        if not flags & _socket.MSG_PEEK:
            self._advance(take)
        return take

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Read and return up to ``bufsize`` bytes; socket semantics (``b""`` at end of stream).

        Read-ahead bytes come first and are returned alone, without waiting on the socket.
        """
        ahead = self._ahead
        if ahead is None:
            return self.socket.recv(bufsize, flags)
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        pos = self._pos
        take = min(bufsize, len(ahead) - pos)
        data = bytes(ahead[pos : pos + take])
        if not flags & _socket.MSG_PEEK:
            self._advance(take)
        return data

    def _advance(self, count: int) -> None:
        self._pos += count
        ahead = self._ahead
        if ahead is not None and self._pos >= len(ahead):
            self._bind_socket_reads()

    def send(self, data: Buffer, flags: int = 0) -> int:
        """Send some of ``data``; return how many bytes were sent (the socket's method)."""
        return self.socket.send(data, flags)

    def sendall(self, data: Buffer, flags: int = 0) -> None:
        """Send all of ``data`` (the socket's method)."""
        self.socket.sendall(data, flags)

    def sendmsg(self, buffers: Iterable[Buffer], *args: Any) -> int:
        """Send ``buffers`` as one message; return how many bytes were sent (may be fewer).

        Plain sockets use ``socket.sendmsg`` (scatter-gather, no copy). TLS sockets have
        none: the buffers are joined and sent with ``send``, which TLS copies anyway.
        """
        if args:
            raise ValueError("sendmsg on this socket takes buffers only (no ancdata or flags)")
        return self.socket.send(b"".join(buffers))

    def close(self) -> None:
        """Close the socket and drop the read-ahead bytes."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.release()
        self.socket.close()

    def shutdown(self, how: int) -> None:
        """Shut down one or both halves of the connection (``socket.SHUT_WR``, ...)."""
        self.socket.shutdown(how)

    def fileno(self) -> int:
        """The socket's file descriptor (-1 once closed)."""
        return self.socket.fileno()

    def settimeout(self, value: float | None) -> None:
        """Set the socket's timeout in seconds (None: blocking). Read-ahead never waits."""
        self.socket.settimeout(value)

    def gettimeout(self) -> float | None:
        """The socket's timeout in seconds, or None when it blocks."""
        return self.socket.gettimeout()

    def setsockopt(self, level: int, optname: int, value: int | Buffer) -> None:
        """Set a socket option (``socket.setsockopt``), e.g. ``TCP_NODELAY``."""
        setsockopt = getattr(self.socket, "setsockopt", None)
        if setsockopt is None:
            raise OSError(f"{type(self.socket).__name__} has no socket options")
        setsockopt(level, optname, value)

    def getsockopt(self, level: int, optname: int, buflen: int = 0) -> int | bytes:
        """Read a socket option (``socket.getsockopt``)."""
        getsockopt = getattr(self.socket, "getsockopt", None)
        if getsockopt is None:
            raise OSError(f"{type(self.socket).__name__} has no socket options")
        result: int | bytes = (
            getsockopt(level, optname, buflen) if buflen else getsockopt(level, optname)
        )
        return result

    def getpeername(self) -> Any:
        """The remote address, as the socket reports it."""
        return self.socket.getpeername()

    def getsockname(self) -> Any:
        """The local address, as the socket reports it."""
        return self.socket.getsockname()

    def __enter__(self) -> Conn:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Conn pending={self.pending} socket={self.socket!r}>"
