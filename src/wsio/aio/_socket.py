"""wsio.aio's own transport for a plain socket's connection on asyncio's selector loop.

asyncio's ``_SelectorSocketTransport`` is Python: made, started (two callbacks
scheduled), written through once and ended per connection, it was a quarter of the
user-space instructions of a WebSocket handshake on asyncio's loop (callgrind, the
callback server under bench test 4's load: 319,000 instructions a handshake with it,
247,000 with this one). :class:`SocketTransport` is the same transport (asyncio's
``Transport`` interface: writes buffered past what the socket takes, flow control with
high and low water marks, EOF, pause/resume, ``connection_lost`` once, soon after the
end) compiled, and started in the call that makes it. On asyncio's loop, wsio.aio's
servers give it to the plain-socket connections they accept, and its clients to the
plain TCP connections they open; TLS and uvloop keep the loop's transport.
"""

# mypy: disable-error-code="unreachable"
# (`if cython.compiled:` branches are C-only, as in wsio._engine.)
from __future__ import annotations

import logging
import os
import socket
import sys
import warnings
from asyncio import selector_events, trsock
from typing import Any

try:
    import cython
except ImportError:  # pure mode without Cython installed
    from wsio._engine import _cython as cython  # type: ignore[no-redef]

if cython.compiled:
    from cython.cimports.wsio.aio._sockio import (  # type: ignore[import-untyped]
        EAGAIN,
        EINTR,
        wsio_recv_into,
        wsio_send,
        wsio_send_list,
    )

__all__ = ["SocketTransport", "fits"]

logger = logging.getLogger("wsio.aio")

#: asyncio's default write-buffer limits (``set_write_buffer_limits``).
_HIGH_WATER = cython.declare(cython.Py_ssize_t, 64 * 1024)

# asyncio.Server tracks its connections' transports from 3.13 on (close_clients()).
_ATTACH_TAKES_TRANSPORT = cython.declare(cython.bint, sys.version_info >= (3, 13))


def fits(loop: Any) -> bool:
    """Whether :class:`SocketTransport` can serve on ``loop``: asyncio's own selector loop
    (the internals it registers with), not uvloop or another loop of its own."""
    return (
        isinstance(loop, selector_events.BaseSelectorEventLoop)
        and hasattr(loop, "_add_reader")
        and hasattr(loop, "_add_writer")
        and hasattr(loop, "_transports")
    )


class SocketTransport:
    """A plain socket's ``asyncio.Transport`` on asyncio's selector loop, compiled.

    Made for a connected socket (``tcp``: a TCP one, given TCP_NODELAY):
    ``protocol.connection_made`` is called and reading starts before the constructor
    returns. ``protocol`` is an ``asyncio.BufferedProtocol``.
    """

    def __init__(
        self,
        loop: Any,
        sock: socket.socket,
        protocol: Any,
        peername: Any,
        server: Any = None,
        tcp: bool = True,
    ) -> None:
        self._loop = loop
        self._sock: Any = sock  # None once closed
        self._fd = sock.fileno()
        self._protocol = protocol
        self._server = server
        self._conn_lost = 0
        self._read_ready_cb = None
        self._buffer: list[Any] = []
        self._buffered = 0
        self._high = _HIGH_WATER
        self._low = _HIGH_WATER // 4
        self._closing = False
        self._eof = False
        self._reading_paused = False
        self._writing_paused = False
        try:
            sockname = sock.getsockname()
        except OSError:
            sockname = None
        self._extra = {"peername": peername, "sockname": sockname}
        if tcp:
            # asyncio sets it on every TCP transport: a frame is not held back waiting
            # for the peer's acknowledgement of the previous one (Nagle).
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass  # the peer is gone already: the first read says so
        if server is not None:
            if _ATTACH_TAKES_TRANSPORT:
                server._attach(self)
            else:
                server._attach()
        # What asyncio's transports register: the loop refuses add_reader/sock_recv
        # on a descriptor a transport owns.
        loop._transports[self._fd] = self
        try:
            protocol.connection_made(self)
        except Exception as exc:
            self._fatal_error(exc, "Fatal error: protocol.connection_made() call failed.")
            return
        if not self._closing and not self._reading_paused:
            loop._add_reader(self._fd, self._read_ready)

    # -- reading -------------------------------------------------------------------

    def _read_ready(self) -> None:
        # The socket is readable: one recv(2) into the protocol's buffer.
        callback = self._read_ready_cb
        if callback is not None:
            callback()  # a reader of the protocol's own took over (Stream._read_directly)
            return
        if self._conn_lost:
            return
        protocol = self._protocol
        got: cython.Py_ssize_t
        err: cython.int = 0
        try:
            buf = protocol.get_buffer(-1)
            if cython.compiled:
                got = wsio_recv_into(self._fd, buf, cython.address(err))
            else:
                try:
                    got = self._sock.recv_into(buf)
                except (BlockingIOError, InterruptedError):
                    return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on socket transport")
            return
        if got > 0:
            try:
                protocol.buffer_updated(got)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.buffer_updated() call failed.")
        elif got == 0:
            self._read_ready__on_eof()
        elif cython.compiled and err != EAGAIN and err != EINTR:
            self._fatal_error(
                OSError(err, os.strerror(err)), "Fatal read error on socket transport"
            )

    def _read_ready__on_eof(self) -> None:
        """The peer ended its stream: the protocol's ``eof_received`` decides."""
        try:
            keep_open = self._protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return
        if keep_open:
            self._loop._remove_reader(self._fd)
        else:
            self.close()

    def pause_reading(self) -> None:
        """Stop reading until :meth:`resume_reading` (the peer's bytes wait in the kernel)."""
        if self._closing or self._reading_paused:
            return
        self._reading_paused = True
        self._loop._remove_reader(self._fd)

    def resume_reading(self) -> None:
        """Read again after :meth:`pause_reading`."""
        if self._closing or not self._reading_paused:
            return
        self._reading_paused = False
        self._loop._add_reader(self._fd, self._read_ready)

    def is_reading(self) -> bool:
        """True while the transport reads (not paused, not closing)."""
        return not self._reading_paused and not self._closing

    # -- writing -------------------------------------------------------------------

    def write(self, data: Any) -> None:
        """Send ``data`` (bytes-like): at once as far as the socket takes it, the rest
        (copied) when it is writable again."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        size: cython.Py_ssize_t = len(data) if type(data) is not memoryview else data.nbytes
        if size == 0:
            return
        if self._conn_lost:
            if self._conn_lost >= 5:
                logger.warning("socket.send() raised exception.")
            self._conn_lost += 1
            return
        if self._buffer:
            self._write_buffered(data)
            return
        sent: cython.Py_ssize_t
        err: cython.int = 0
        if cython.compiled:
            sent = wsio_send(self._fd, data, cython.address(err))
            if sent == -2:
                if err != EAGAIN and err != EINTR:
                    self._fatal_error(
                        OSError(err, os.strerror(err)), "Fatal write error on socket transport"
                    )
                    return
                sent = 0
        else:
            try:
                sent = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on socket transport")
                return
        if sent == size:
            return
        self._loop._add_writer(self._fd, self._write_ready)
        self._write_buffered(memoryview(data).cast("B")[sent:] if sent else data)

    def writelines(self, list_of_data: Any) -> None:
        """:meth:`write` each buffer in turn."""
        for data in list_of_data:
            self.write(data)

    def _write_buffered(self, data: Any) -> cython.int:
        # Kept until the socket is writable: bytes of its own (the caller may reuse a
        # bytearray or a view's buffer once write returns); bytes, or the unsent tail
        # of a bytes object, cannot change and are kept as they are.
        if type(data) is bytes or (
            type(data) is memoryview
            and type(data.obj) is bytes
            and data.format == "B"
            and data.c_contiguous
        ):
            chunk = data
        else:
            chunk = bytes(data)
        self._buffer.append(chunk)
        self._buffered += len(chunk)
        self._maybe_pause_protocol()
        return 0

    def _write_ready(self) -> None:
        # The socket is writable again: send what waits, up to 16 buffers a call.
        if self._conn_lost:
            return
        buffer = self._buffer
        sent: cython.Py_ssize_t
        err: cython.int = 0
        exc: Any = None
        if cython.compiled:
            sent = wsio_send_list(self._fd, buffer, cython.address(err))
            if sent == -2:
                if err in (EAGAIN, EINTR):
                    return
                exc = OSError(err, os.strerror(err))
                sent = -1
        else:
            try:
                sent = self._sock.sendmsg(buffer[:16])
            except (BlockingIOError, InterruptedError):
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as error:
                exc = error
                sent = -1
        if sent < 0:
            self._loop._remove_writer(self._fd)
            buffer.clear()
            self._buffered = 0
            self._fatal_error(exc, "Fatal write error on socket transport")
            return
        self._buffered -= sent
        while sent:
            first = buffer[0]
            n: cython.Py_ssize_t = len(first)
            if sent >= n:
                del buffer[0]
                sent -= n
            else:
                buffer[0] = memoryview(first)[sent:]
                sent = 0
        self._maybe_resume_protocol()
        if not buffer:
            self._loop._remove_writer(self._fd)
            if self._closing:
                self._call_connection_lost(None)
            elif self._eof:
                self._sock.shutdown(socket.SHUT_WR)

    def can_write_eof(self) -> bool:
        """True: a socket can end its sending half."""
        return True

    def write_eof(self) -> None:
        """End the sending half once what is buffered is sent (``shutdown(SHUT_WR)``)."""
        if self._closing or self._eof:
            return
        self._eof = True
        if not self._buffer:
            self._sock.shutdown(socket.SHUT_WR)

    def get_write_buffer_size(self) -> int:
        """Bytes waiting for the socket."""
        return self._buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """``(low, high)``: the water marks of ``pause_writing``/``resume_writing``."""
        return (self._low, self._high)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the water marks as asyncio does (high 64 KiB, low a quarter of high)."""
        if high is None:
            high = _HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high = high
        self._low = low
        self._maybe_pause_protocol()

    def _maybe_pause_protocol(self) -> cython.int:
        if self._buffered > self._high and not self._writing_paused:
            self._tell_writing(True)
        return 0

    def _maybe_resume_protocol(self) -> cython.int:
        if self._writing_paused and self._buffered <= self._low:
            self._tell_writing(False)
        return 0

    def _tell_writing(self, paused: bool) -> None:
        # pause_writing/resume_writing; one that raises is the protocol's bug, reported.
        self._writing_paused = paused
        name = "pause_writing" if paused else "resume_writing"
        try:
            getattr(self._protocol, name)()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._report(f"protocol.{name}() failed", exc)

    def _report(self, message: str, exc: BaseException) -> None:
        # A bug in the protocol: the loop's exception handler hears of it, as from
        # asyncio's own transports.
        self._loop.call_exception_handler(
            {"message": message, "exception": exc, "transport": self, "protocol": self._protocol}
        )

    # -- ending ---------------------------------------------------------------------

    def is_closing(self) -> bool:
        """True once :meth:`close` or :meth:`abort` was called, or the connection ended."""
        return self._closing

    def close(self) -> None:
        """Stop reading; end the connection once what is buffered is sent."""
        if self._closing:
            return
        self._closing = True
        self._loop._remove_reader(self._fd)
        if not self._buffer:
            self._conn_lost += 1
            self._loop.call_soon(self._call_connection_lost, None)

    def abort(self) -> None:
        """End the connection now; what is buffered is dropped."""
        self._force_close(None)

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        """Report ``exc`` (a failed connection is not an error of the program: debug
        only) and end the connection."""
        if isinstance(exc, OSError):
            if self._loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self._report(message, exc)
        self._force_close(exc)

    def _force_close(self, exc: Any) -> cython.int:
        if self._conn_lost:
            return 0
        if self._buffer:
            self._buffer.clear()
            self._buffered = 0
            self._loop._remove_writer(self._fd)
        if not self._closing:
            self._closing = True
            self._loop._remove_reader(self._fd)
        self._conn_lost += 1
        self._loop.call_soon(self._call_connection_lost, exc)
        return 0

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._sock.close()
            self._sock = None
            # The protocol's reader too (Stream._read_directly): no link back to it.
            self._protocol = self._read_ready_cb = None
            server = self._server
            if server is not None:
                self._server = None
                if _ATTACH_TAKES_TRANSPORT:
                    server._detach(self)
                else:
                    server._detach()

    # -- the rest of asyncio's Transport ----------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``"peername"``, ``"sockname"`` or ``"socket"`` (asyncio's TransportSocket)."""
        if name == "socket":
            wrapped = self._extra.get("socket")
            if wrapped is None and self._sock is not None:
                # Made when asked for: most connections never are.
                wrapped = self._extra["socket"] = trsock.TransportSocket(self._sock)
            return wrapped
        return self._extra.get(name, default)

    def get_protocol(self) -> Any:
        """The protocol this transport calls."""
        return self._protocol

    def set_protocol(self, protocol: Any) -> None:
        """Call ``protocol`` from now on."""
        self._protocol = protocol

    def __del__(self) -> None:
        # As asyncio's transports: a connection dropped without being closed (its loop
        # ended first) is reported, and its socket closed.
        if self._sock is not None:
            warnings.warn(
                f"unclosed transport {self!r}", ResourceWarning, stacklevel=1, source=self
            )
            self._sock.close()

    def __repr__(self) -> str:
        state = "closing" if self._closing else "open"
        return f"<wsio.aio.SocketTransport fd={self._fd} {state} buffered={self._buffered}>"
