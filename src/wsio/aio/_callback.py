"""The callback level's hot path: the receive loop and the sends, compiled.

:class:`Stream` is the ``asyncio.BufferedProtocol`` half (its subclasses in
``wsio.aio.server``/``wsio.aio.client`` add the opening handshake): asyncio reads into
the core's buffer, :meth:`Stream.buffer_updated` walks the frames with the core's C path
(``next_piece``) and calls the listener once per frame with one reused :class:`Frame`.
:class:`Transport` is what the listener sends with: each frame is built by the core in
one buffer and written straight on the socket when the transport's write buffer is empty; the
answers to one read's frames are written together, with one writev, once it is parsed.
"""

# mypy: disable-error-code="unreachable"
# (`if cython.compiled:` branches are C-only, as in wsio._engine.)
from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from wsio._engine.limits import DEFAULT_CLOSE_TIMEOUT
from wsio._engine.protocol import WHOLE_FRAME_MAX, BinaryMessage, Protocol, TextMessage
from wsio.aio._socket import SocketTransport
from wsio.exceptions import LocalProtocolError, ProtocolError

try:
    import cython
except ImportError:  # pure mode without Cython installed
    from wsio._engine import _cython as cython  # type: ignore[no-redef]

if cython.compiled:
    from cython.cimports.wsio.aio._callback import (  # type: ignore[import-untyped]
        PyByteArray_AS_STRING,
        c_write,
    )
    from cython.cimports.wsio.aio._sockio import (  # type: ignore[import-untyped]
        EAGAIN,
        EINTR,
        wsio_recv_into,
        wsio_writev_list,
    )

__all__ = ["DEFAULT_WRITE_TIMEOUT", "Frame", "Stream", "Transport"]

#: Seconds the transport's write buffer may stay over its high-water mark before the
#: connection is dropped (the shared Options' ``write_timeout`` default).
DEFAULT_WRITE_TIMEOUT: float = DEFAULT_CLOSE_TIMEOUT

logger = logging.getLogger("wsio.aio")

# A read pass's answers wait for its end up to these: buffers queued by the core (two
# per long payload; with the short frames' buffer, within the C writev's 16) and bytes
# of short frames copied into its buffer. Past them they are written at once: a
# listener that sends much from one callback is not held back.
_BATCH_BUFFERS = cython.declare(cython.Py_ssize_t, 12)
_BATCH_BYTES = cython.declare(cython.Py_ssize_t, 65536)

# asyncio's own socket transport on its selector loop: its read path is Python (two
# frames and recv_into's argument parsing per read), so the compiled Stream reads for
# it (Stream._read_ready). Not uvloop's (compiled already), not TLS.
_SELECTOR_TRANSPORT: Any = getattr(asyncio.selector_events, "_SelectorSocketTransport", None)
# The selector loop's plain callback handle (its reader for a socket; see _read_directly).
_HANDLE: Any = asyncio.Handle


class Frame:
    """A received frame, handed to ``Listener.on_frame``; one object reused per call.

    ``opcode`` and ``fin`` are the frame's (0 on a continuation; 8 close, 9 ping, 10
    pong), so ``transport.send(frame.opcode, frame.payload, frame.fin)`` echoes it. Text
    is UTF-8 checked (a character may be split between the frames of one message); a
    compressed frame is inflated.

    With ``Listener.frame_pieces`` a frame over 1 MiB comes in pieces as it arrives:
    each piece is shown as if it were a frame of its own (``opcode`` the frame's on its
    first piece, 0 on the later ones; ``fin`` True only on the last piece of a final
    frame), so the same ``send`` echoes it; ``frame_end`` says a piece ends its frame
    (always True without ``frame_pieces``).
    """

    def __init__(self) -> None:
        self.opcode = 0
        self.fin = True
        self.frame_end = True
        self._core: Any = None
        self._len = 0
        self._data: Any = None

    @property
    def payload(self) -> Any:
        """The payload: a view into the read buffer, unmasked in place (a frame up to 1 MiB
        is read whole into it; a larger one is joined as it arrives, or shown piece by
        piece with ``Listener.frame_pieces``; a compressed one inflated). Valid until the
        callback returns: copy what you keep."""
        if self._data is not None:
            return self._data
        return self._core.piece_view()

    def bytes(self) -> bytes:
        """The payload as an owned copy."""
        return bytes(self.payload)

    def text(self) -> str:
        """The payload decoded as UTF-8 (an owned ``str``; a text message's whole payload
        is valid UTF-8, but a piece may end inside a character)."""
        return str(self.payload, "utf-8")

    def __len__(self) -> int:
        return len(self._data) if self._data is not None else self._len

    def __repr__(self) -> str:
        return f"<Frame opcode={self.opcode} fin={self.fin} length={len(self)}>"


class Transport:
    """A WebSocket connection as the listener sees it: sends, closes, backpressure.

    Every ``send*`` builds its frame with one header write and writes it on the socket
    at once (or queues it behind what the transport still holds); data frames sent from
    ``on_frame``/``on_message`` go out together once the read that called them is
    parsed (one write for all its answers). A payload may be changed or reused once
    the call returns (only ``bytes``, short payloads the core copied and views of the
    read buffer wait for the end of the read), so a received ``frame.payload`` may be
    sent back as it is.
    ``write_timeout`` (seconds, or None for no bound; settable, e.g. in ``on_connect``)
    bounds a peer that stops reading: when the transport's write buffer stays over its
    high-water mark that long (``pause_writing`` without ``resume_writing``), the
    connection is dropped and ``on_close`` gets 1006.
    """

    def __init__(
        self,
        core: Protocol,
        transport: Any,
        subprotocol: str | None,
        extensions: Any,
        close_timeout: float,
        write_timeout: float | None = DEFAULT_WRITE_TIMEOUT,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._core = core
        self.transport = transport
        self.is_client = core.is_client
        self.subprotocol = subprotocol
        self.extensions = extensions
        self.close_timeout = close_timeout
        self.write_timeout = write_timeout
        self._write_timer: asyncio.TimerHandle | None = None
        # True while Stream._process calls the listener: data frames sent then are
        # written together at the end of the read pass (one writev for the answers to
        # all the frames of one read, not one per frame).
        self._batch = False
        # Frames queued by _send_soon wait for a write that is due on the loop's next turn.
        self._soon = False
        self._closing = False
        self._held = False
        self._paused = False
        self._stream: Any = None  # the Stream reading for this transport (resume_reading)
        self._close_timer: asyncio.TimerHandle | None = None
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        # Writing on the socket ourselves is only right for a plain socket transport
        # (not TLS, where the bytes must go through the SSL object).
        self._fd = -1
        # Whether the transport's write buffer may hold bytes: only then is it asked (a Python
        # call per write otherwise). True at first: the handshake's response went
        # through it.
        self._asyncio_holds = True
        if type(transport) is SocketTransport:
            self._fd = transport._fd
        else:
            sock = transport.get_extra_info("socket")
            if sock is not None and transport.get_extra_info("sslcontext") is None:
                self._fd = sock.fileno()

    # -- sending -------------------------------------------------------------------

    def send(self, opcode: int, payload: Any, fin: bool = True) -> None:
        """Send a frame: ``opcode`` 1 (text; a ``str`` is encoded), 2 (binary), 0
        (continuation of a ``fin=False`` send), or a control opcode (8, 9, 10).

        Compression (when negotiated) follows the server's threshold; the payload is
        referenced only during the call. Raises InvalidStateError after a Close.
        """
        core = self._core
        if opcode <= 2:
            if self._queue_data(opcode, payload, fin, self._batch):
                return  # written with the read pass's other answers (Stream._process)
        elif opcode == 9:
            core.send_ping(payload)
        elif opcode == 10:
            core.send_pong(payload)
        elif opcode == 8:
            self.send_close(*_close_args(payload))
            return
        else:
            raise LocalProtocolError(f"no such opcode: {opcode}")
        self._flush()
        if self._held:
            self.release_close()  # the Close went out behind this frame: end the stream

    def _send_soon(self, opcode: int, payload: Any) -> None:
        """Send a whole data frame (opcode 1 or 2) that may go out with the next ones:
        the next send writes them together, or the loop's next turn at the latest.

        For wsio.aio.Connection, whose handler answers queued messages in one task step:
        one write for the answers to all the messages of one read, as the callback
        level's read pass does (_batch). The payload may be changed or reused once the
        call returns: what waits is the core's copy, or a ``bytes``, which cannot change.
        """
        if self._batch or self._held:
            self.send(opcode, payload)  # a read pass writes it; a held Close goes out
            return
        if self._queue_data(opcode, payload, True, True):
            if not self._soon:
                self._soon = True
                self._loop.call_soon(self._write_soon)
            return
        self._flush()

    def _write_soon(self) -> None:
        # The loop's next turn after _send_soon: what no send has written yet goes now.
        if self._soon:
            self._soon = False
            self._flush()

    def _queue_data(
        self, opcode: cython.int, payload: Any, fin: cython.bint, may_wait: cython.bint
    ) -> cython.bint:
        # Queue a data frame in the core (a str payload encoded); True if it may wait
        # there for a later write (may_wait, and within the batch's bounds), False if
        # the caller writes it now.
        core = self._core
        if opcode == 1 and isinstance(payload, str):
            payload = payload.encode()
        queued: cython.Py_ssize_t = len(core._out)
        core.send_data(opcode, payload, fin)
        return (
            may_wait
            and not self._held
            and self._deferrable(payload, queued)
            and len(core._out) <= _BATCH_BUFFERS
            and len(core._tail) <= _BATCH_BYTES
        )

    def _deferrable(self, payload: Any, queued: cython.Py_ssize_t) -> cython.bint:
        # Whether the frame just queued may wait for the end of the read pass without
        # breaking "a payload may be changed once the call returns": the core copied it
        # (a short one: no buffer was queued for it), or it cannot change before then
        # (bytes, or a view of the read buffer, which the core does not move while
        # output is queued: next_piece).
        if len(self._core._out) == queued or type(payload) is bytes:
            return True
        return type(payload) is memoryview and payload.obj is self._core._buf

    def send_ping(self, data: Any = b"") -> None:
        """Send a Ping (payload at most 125 bytes); its Pong comes to ``on_frame``."""
        self._core.send_ping(data)
        self._flush()

    def send_pong(self, data: Any = b"") -> None:
        """Send an unsolicited Pong (Pings are answered without being asked)."""
        self._core.send_pong(data)
        self._flush()

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (RFC 6455 §7.1.2): send a Close frame, then wait
        ``close_timeout`` seconds for the peer's before dropping the connection."""
        self.release_close()
        self._core.send_close(code, reason)
        self._flush()
        if self._close_timer is None and not self._closing:
            self._close_timer = self._loop.call_later(self.close_timeout, self._timed_out)

    def disconnect(self) -> None:
        """Close the TCP connection once what is queued is sent (no closing handshake);
        what is still queued after ``close_timeout`` (a peer that stopped reading) is
        dropped with the connection."""
        self._end()

    def abort(self) -> None:
        """Drop the connection now, discarding what is queued."""
        self._closing = True
        self.transport.abort()

    def pause_reading(self) -> None:
        """Stop reading: no callback gets another frame or message until
        :meth:`resume_reading`, not even one already read (it waits in the buffer)."""
        if not self._paused:
            self._paused = True
            if not self._closing:
                self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again: the frames already read are handed out first (soon, on the loop,
        not inside this call)."""
        if self._paused:
            self._paused = False
            if not self._closing:
                self.transport.resume_reading()
            if self._stream is not None:
                self._loop.call_soon(self._stream._resumed)

    def get_write_buffer_size(self) -> int:
        """Bytes the transport still holds for this connection (what ``pause_writing`` limits)."""
        if self._batch or self._soon:
            self._flush()  # what this read's answers (or _send_soon) queued counts too
        return int(self.transport.get_write_buffer_size())

    @property
    def closed(self) -> bool:
        """True once the connection is closing or closed: nothing more is sent."""
        return self._closing

    @property
    def close_code(self) -> int | None:
        """The peer's close code (1005 with none, 1006 if it left without a Close)."""
        return self._core.close_code

    def _timed_out(self) -> None:
        # RFC 6455 §7.1.1: a peer that never answers the Close frame is cut off.
        self._close_timer = None
        if not self._closing:
            logger.debug("closing handshake timed out; aborting")
            self.abort()

    def _write_paused(self) -> None:
        # The transport's buffer went over its high-water mark: the peer has this long to
        # read enough of it (one timer per paused connection, none otherwise).
        if self._write_timer is None and self.write_timeout is not None:
            self._write_timer = self._loop.call_later(self.write_timeout, self._write_stuck)

    def _write_resumed(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_stuck(self) -> None:
        # A peer that reads nothing would hold this connection's buffer and socket for
        # ever; no Close frame could reach it either: drop it, 1006 to on_close.
        self._write_timer = None
        logger.debug("the peer read nothing for %s s; aborting", self.write_timeout)
        self.abort()

    def _flush(self) -> cython.int:
        # The core built the frames in one buffer (short ones, header and payload
        # together), or, with long payloads or a pending Close, in a list of buffers.
        core = self._core
        self._soon = False  # every frame queued goes now: a _write_soon due finds none
        tail = core.single_output()
        if tail is None:
            return self._write_list(core.data_to_send())
        n: cython.Py_ssize_t = len(tail)
        if n == 0:
            return 0
        if self._closing:
            core.clear_output()
            return 0
        written: cython.Py_ssize_t = 0
        if self._fd >= 0 and self._asyncio_empty():
            if cython.compiled:
                written = c_write(self._fd, PyByteArray_AS_STRING(tail), n)
            else:
                try:
                    written = os.write(self._fd, tail)
                except OSError:
                    written = 0
            if written == n:
                core.clear_output()
                return 0
            if written < 0:
                written = 0  # EAGAIN, or an error asyncio's own write will report
        # asyncio keeps what it cannot send now: give it bytes of its own.
        self._hand_over(bytes(tail[written:]))
        core.clear_output()
        return 0

    def _write_list(self, bufs: list[Any]) -> cython.int:
        if not bufs or self._closing:
            return 0
        written: cython.Py_ssize_t = 0
        if self._fd >= 0 and self._asyncio_empty():
            if cython.compiled:
                written = wsio_writev_list(self._fd, bufs)
            if written == -2 or not cython.compiled:  # more buffers than the C path takes
                try:
                    written = os.writev(self._fd, bufs)
                except OSError:
                    written = 0
        # What is left is copied: a payload may be a view of the read buffer, or the
        # caller's bytearray.
        for buf in bufs:
            size: cython.Py_ssize_t = len(buf)
            if written >= size:
                written -= size
                continue
            if written:
                self._hand_over(bytes(memoryview(buf)[written:]))
                written = 0
            else:
                self._hand_over(buf if type(buf) is bytes else bytes(buf))
        return 0

    def _asyncio_empty(self) -> cython.bint:
        # Nothing waits in the transport's write buffer: this side may write on the socket.
        if self._asyncio_holds:
            if self.transport.get_write_buffer_size():
                return False
            self._asyncio_holds = False
        return True

    def _hand_over(self, data: bytes) -> None:
        """Queue ``data`` in the transport's write buffer (what cannot be written now, or a
        frame built for many connections): later writes go behind it."""
        self._asyncio_holds = True
        self.transport.write(data)

    def _after(self) -> cython.int:
        # After the core took input: send what it answered (Pongs, the Close), and end
        # the TCP connection when the closing handshake is over (RFC 6455 §7.1.1: the
        # server first; a client waits close_timeout for it).
        self._flush()
        if self._core.close_expected() and not self._closing:
            if self.is_client and self._core.error is None:
                if self._close_timer is None:
                    self._close_timer = self._loop.call_later(self.close_timeout, self._timed_out)
            else:
                self._end()
        return 0

    def release_close(self) -> None:
        """Let a held Close go out (see ``Listener.hold_close``); no-op otherwise."""
        if self._held:
            self._held = False
            if self._close_timer is not None:
                self._close_timer.cancel()
                self._close_timer = None
            self._after()

    def _hold(self) -> cython.int:
        # The stream ended (the peer's Close, or a violation) in a read that also
        # delivered messages, and the listener answers them from other tasks: keep the
        # answering Close queued until it says so, the next send, or close_timeout.
        self._held = True
        if self._close_timer is None:
            self._close_timer = self._loop.call_later(self.close_timeout, self.release_close)
        return 0

    def _end(self) -> cython.int:
        if not self._closing:
            self._flush()
            self._closing = True
            self.transport.close()
            # asyncio ends the TCP connection only once it has written all it holds: a
            # peer that never reads would keep it open for ever (RFC 6455 §7.1.1 lets
            # an endpoint drop a connection that does not close in time). A plain
            # socket's transport with nothing left to write has already scheduled
            # connection_lost: no timer for it (one per connection otherwise; TLS
            # still has its shutdown to wait for).
            if self._close_timer is not None:
                self._close_timer.cancel()
                self._close_timer = None
            if self._fd < 0 or self.transport.get_write_buffer_size():
                self._close_timer = self._loop.call_later(self.close_timeout, self.transport.abort)
        return 0

    def __repr__(self) -> str:
        side = "client" if self.is_client else "server"
        return f"<wsio.aio.Transport {side} {self._core.state.name}>"


def _close_args(payload: Any) -> tuple[int, str]:
    data = bytes(payload)
    if len(data) < 2:
        return 1005, ""
    return int.from_bytes(data[:2], "big"), str(data[2:], "utf-8")


class Stream:
    """The asyncio protocol of one connection once the handshake is over; its
    subclasses read the handshake first (``_hs`` is not None until then)."""

    def __init__(self, factory: Any, messages: bool) -> None:
        self._factory = factory
        self._messages = messages
        self._hs: Any = None
        self._connected = False
        self._acc: Any = None
        self.listener: Any = None
        self._core: Any = None
        self.ws: Any = None
        self._frame = Frame()
        self._first = True

    # The handshake, in the subclasses (plain Python: called once or twice per connection).
    def _hs_get_buffer(self, sizehint: int) -> Any:
        raise NotImplementedError

    def _hs_updated(self, nbytes: int) -> None:
        raise NotImplementedError

    def _connection_ended(self) -> None:
        pass

    # -- asyncio.BufferedProtocol -------------------------------------------------

    def get_buffer(self, sizehint: int) -> Any:
        """Where asyncio reads next: the handshake's head buffer, then the core's."""
        if self._hs is not None:
            return self._hs_get_buffer(sizehint)
        # The core sizes it: small while frames are small, a frame's size once a large
        # frame's header is in (the rest is read in place), small again after it.
        return self._core.get_buffer(-1)

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` were read: parse them and call the listener."""
        if self._hs is not None:
            self._hs_updated(nbytes)
            return
        self._core.add_bytes(nbytes)
        self._process()

    def eof_received(self) -> bool | None:
        """The peer ended its stream: the connection is over (1006 without a Close)."""
        if self._hs is None and self._connected:
            self._core.receive_eof()
        return None

    def pause_writing(self) -> None:
        """The transport's write buffer is over its high-water mark: start the transport's
        ``write_timeout``, tell the listener."""
        if self.listener is not None:
            self.ws._write_paused()
            self.listener.pause_writing()

    def resume_writing(self) -> None:
        """The transport's write buffer drained below its low-water mark: stop the timeout,
        tell the listener."""
        if self.listener is not None:
            self.ws._write_resumed()
            self.listener.resume_writing()

    def connection_lost(self, exc: BaseException | None) -> None:
        """The TCP connection is gone: stop the timers, then ``on_close`` once."""
        self._connection_ended()
        if not self._connected:
            return
        self._connected = False
        ws = self.ws
        ws._closing = True
        if ws._close_timer is not None:
            ws._close_timer.cancel()
            ws._close_timer = None
        ws._write_resumed()
        core = self._core
        core.receive_eof()
        code: int = 1006
        reason = ""
        if core.close_rcvd is not None:
            code, reason = core.close_rcvd.code, core.close_rcvd.reason
        elif core.error is not None and core.close_sent is not None:
            code, reason = core.close_sent.code, core.close_sent.reason
        try:
            self.listener.on_close(ws, code, reason)
        except Exception:
            logger.exception("Listener.on_close raised")
        finally:
            # Nothing calls this stream again. Its links back to the connection
            # (transport, listener) would close cycles with the application's own (a
            # listener keeps its transport), and objects in cycles wait for the garbage
            # collector: 15 per connection, collected only a few hundred handshakes
            # later, in cache-cold passes. Without them, reference counting frees the
            # connection as soon as the application lets go of it.
            ws._stream = None
            self.ws = None
            self.listener = None
            # asyncio's transport clears its protocol but not its reader (_read_directly).
            if getattr(ws.transport, "_read_ready_cb", None) is not None:
                ws.transport._read_ready_cb = None

    # -- the WebSocket phase -------------------------------------------------------

    def _start(self, core: Protocol, ws: Transport, listener: Any) -> None:
        # The handshake is done: from now on asyncio reads into the core's buffer.
        self._core = core
        # Frames up to WHOLE_FRAME_MAX reach the listener as views of the read buffer.
        core.whole_frame_max = WHOLE_FRAME_MAX
        self._frame._core = core
        self.ws = ws
        self.listener = listener
        self._messages = bool(listener.messages)
        self._hold_close = bool(getattr(listener, "hold_close", False))
        self._frame_pieces = bool(getattr(listener, "frame_pieces", False))
        self._hs = None
        self._connected = True
        # No bound method kept per connection (a listener's on_frame, this _resumed):
        # 64 bytes each on an idle connection; the calls look the methods up.
        ws._stream = self
        kind = type(ws.transport)
        if (
            cython.compiled
            and ws._fd >= 0
            and (kind is SocketTransport or kind is _SELECTOR_TRANSPORT)
        ):
            self._read_directly(ws.transport)
        listener.on_connect(ws)

    def _read_directly(self, tr: Any) -> None:
        # The selector calls _read_ready instead of the transport's read path. The
        # transport's own _read_ready calls its _read_ready_cb (an attribute each
        # transport already has): pointed here, it still lands here after
        # pause/resume_reading registers the transport's method again. Skipped where
        # asyncio's internals differ.
        if not (
            hasattr(tr, "_read_ready_cb")
            and hasattr(tr, "_conn_lost")
            and hasattr(tr, "_fatal_error")
            and hasattr(tr, "_read_ready__on_eof")
        ):
            return
        reader = self._read_ready
        tr._read_ready_cb = reader
        # The selector already holds the transport's read handle: pointing that handle
        # at the new reader spares a new Handle and an epoll_ctl per connection (a
        # tenth of a handshake's cost on asyncio), and a hop through the transport's
        # _read_ready per read. Where the handle is not asyncio's plain one, or reading
        # is paused, the transport's method stays registered (and calls the reader).
        try:
            handle = tr._loop._selector.get_key(self.ws._fd).data[0]
        except (AttributeError, KeyError, TypeError, IndexError):
            handle = None
        if type(handle) is _HANDLE and not handle.cancelled():
            handle._callback = reader

    def _read_ready(self) -> None:
        """The socket is readable (asyncio's selector loop): what its transport's
        ``_read_ready__get_buffer`` does, compiled: recv(2) into the core's buffer."""
        ws = self.ws
        if ws is None:
            return  # connection_lost has run (it unlinks the stream)
        tr = ws.transport
        if tr._conn_lost:
            return
        err: cython.int = 0
        try:
            got: cython.Py_ssize_t = wsio_recv_into(
                ws._fd, self._core.get_buffer(-1), cython.address(err)
            )
        except Exception as exc:
            tr._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
            return
        if got > 0:
            self._core.add_bytes(got)
            self._process()
        elif got == 0:
            tr._read_ready__on_eof()
        elif err != EAGAIN and err != EINTR:
            tr._fatal_error(OSError(err, os.strerror(err)), "Fatal read error on socket transport")

    def _resumed(self) -> None:
        # Transport.resume_reading: what was read before the pause is parsed now.
        if self._connected and not self.ws._paused:
            self._process()

    def _feed(self, data: Any) -> None:
        # Bytes read with the handshake's head (the first frames): into the core's buffer.
        pos: cython.Py_ssize_t = 0
        total: cython.Py_ssize_t = len(data)
        while pos < total and self._connected and not self.ws._closing:
            view = self._core.get_buffer()
            n: cython.Py_ssize_t = min(len(view), total - pos)
            view[:n] = data[pos : pos + n]
            pos += n
            self._core.add_bytes(n)
            self._process()

    def _process(self) -> cython.int:
        core = self._core
        frame = self._frame
        ws = self.ws
        op: cython.int
        ends: cython.bint
        pending_before: cython.bint = core.close_pending()
        delivered: cython.bint = False  # a message completed in this read
        # The answers to this read's frames go out in one write at the end (_after),
        # unless the listener answers from other tasks and a Close may be held (_hold).
        ws._batch = not self._hold_close
        try:
            # Once the listener paused reading, not another frame: a read of compressed
            # frames may inflate into any number of messages, and a pause is a bound
            # only if it stops them (the core keeps the unparsed bytes for _resumed).
            while core.reading and not ws._paused and core.next_piece():
                op = core.frame.opcode
                ends = core.piece_ends_frame
                if op >= 8:
                    # Pings answered, the closing handshake: the core's (RFC 6455 §5.5).
                    # What was answered before this frame goes out first, on its own.
                    ws._flush()
                    core.handle_piece()
                    core.take_events()
                    if self._messages:
                        continue
                    frame._data = None
                    frame._len = core.piece_length
                elif self._messages:
                    core.handle_piece()
                    events = core.take_events()
                    if events is not None:
                        self._deliver(events)
                        delivered = True
                    continue
                elif core.piece_inflates():
                    # Compressed: the core inflates (and checks text) into Chunk events;
                    # a frame's chunks are joined.
                    core.handle_piece()
                    if not self._collect_chunks(core.take_events(), ends):
                        continue
                elif (core.piece_position == 0 and ends) or self._frame_pieces:
                    # A whole frame in the read buffer, or a piece of one the listener
                    # takes piece by piece: the listener sees it there.
                    frame._data = None
                    frame._len = core.piece_length
                elif not self._collect_piece():
                    continue
                # A frame's later pieces read as its continuations (Frame).
                frame.opcode = op if self._first else 0
                self._first = ends
                frame.frame_end = ends
                frame.fin = ends and core.frame.fin
                if op < 8 and frame.fin:
                    delivered = True  # a message ends here: someone may answer it
                self.listener.on_frame(ws, frame)
                self._acc = None  # a joined frame is dropped once seen
        except Exception as exc:  # a violation, or the listener's (logged; 1011)
            if not isinstance(exc, ProtocolError) and not core.close_expected():
                logger.exception("a Listener callback raised; failing the connection")
            core.fail_with_error(exc)  # its Close is queued behind the answers so far
        ws._batch = False
        if (
            self._hold_close
            and core.close_pending()
            and not pending_before
            and (delivered or self.listener.owes_answer())
        ):
            # This read ended the stream (the peer's Close, or a violation) after
            # messages that it or an earlier read delivered, not yet answered. RFC 6455
            # §5.5.1 lets an endpoint send the data it owes before its Close; this
            # listener answers from other tasks, so the Close waits for them
            # (Listener.hold_close).
            ws._hold()
        else:
            ws._after()
        return 0

    def _collect_piece(self) -> cython.bint:
        # A frame too large to be read in one go arrives in pieces; the listener gets
        # it whole, joined in a buffer that grows with the bytes that arrived (never to
        # the length the peer declared: a header alone must not cost max_frame_size).
        core = self._core
        if core.piece_position == 0:
            self._acc = bytearray()
        self._acc += core.piece_view()
        if not core.piece_ends_frame:
            return False
        self._frame._data = memoryview(self._acc)
        return True

    def _collect_chunks(self, events: list[Any] | None, ends: cython.bint) -> cython.bint:
        for event in events or ():
            if self._acc is None:
                self._acc = bytearray(event.data)
            else:
                self._acc += event.data
        if not ends and (not self._frame_pieces or self._acc is None):
            return False
        self._frame._data = memoryview(self._acc) if self._acc is not None else b""
        return True

    def _deliver(self, events: list[Any]) -> cython.int:
        # Whole messages (message mode).
        for event in events:
            kind = type(event)
            if kind is TextMessage or kind is BinaryMessage:
                self.listener.on_message(self.ws, event.data)
        return 0
