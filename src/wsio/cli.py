"""The command line: ``python -m wsio serve`` (an echo server) and ``connect`` (a client).

::

    python -m wsio serve                      # echo on ws://127.0.0.1:8080/
    python -m wsio serve --host 0.0.0.0 --port 9000
    python -m wsio connect ws://127.0.0.1:8080/

``serve`` is blocking, one thread per connection: an :class:`~wsio.Upgrader` runs the
opening handshake on each accepted socket, then a :class:`~wsio.wsutil.Reader` streams
every message into a :class:`~wsio.wsutil.Writer` (no message is held whole) and a
:class:`~wsio.wsutil.ControlHandler` answers pings and the closing handshake. Every
connection is logged to stderr. Ctrl-C (or SIGTERM) stops accepting, sends Close 1001
(going away) on each open connection and exits 0.

``connect`` sends each line typed as a text message and prints every message received
(text as it is, binary as hex) on stdout; status lines go to stderr. End of input
(Ctrl-D) or Ctrl-C sends Close 1000 and waits for the server's answer.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import queue
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import TextIO

from wsio._engine.framing import Header
from wsio._engine.limits import DEFAULT_MAX_MESSAGE_SIZE
from wsio.conn import Conn
from wsio.dialer import Dialer
from wsio.exceptions import (
    ConnectionClosed,
    ConnectionEOFError,
    HandshakeError,
    ProtocolError,
    WebSocketError,
)
from wsio.frames import CloseCode, OpCode, State, is_control
from wsio.handshake import Upgrader
from wsio.wsutil import ControlHandler, Reader, Writer, write_message

__all__ = ["connect", "main", "serve"]

log = logging.getLogger("wsio.cli")

#: Seconds a new connection has to complete its opening handshake.
HANDSHAKE_TIMEOUT = 10.0
#: Seconds to wait for connections (serve) or the server's Close (connect) when ending.
CLOSE_TIMEOUT = 5.0


# -- serve -----------------------------------------------------------------------------


class _Echo:
    """One connection's echo loop: every message streamed back, control frames answered."""

    def __init__(self, conn: Conn, max_message_size: int) -> None:
        self.conn = conn
        self.state = State.SERVER_SIDE
        self.controls = ControlHandler(conn, self.state)
        self.reader = Reader(
            conn,
            self.state,
            on_intermediate=self.controls.handle,
            max_message_size=max_message_size,
        )
        self.writer = Writer(conn, self.state, OpCode.TEXT)
        self.messages = 0

    def run(self) -> None:
        """Echo until the closing handshake (ConnectionClosed) or an error, raised."""
        conn, state, reader, writer = self.conn, self.state, self.reader, self.writer
        try:
            while True:
                header = reader.next_frame()
                if is_control(header.opcode):
                    self.controls.handle(header, reader.read())  # ClosedError after a close
                    continue
                writer.reset(conn, state, header.opcode)
                shutil.copyfileobj(reader, writer)
                writer.flush()
                self.messages += 1
        except ProtocolError as err:
            # RFC 6455 §7.1.7: _Fail the WebSocket Connection_ sends the close code first.
            self.close(err.close_code)
            raise

    def close(self, code: int) -> None:
        """Send a Close frame with ``code`` unless one was sent already."""
        try:
            self.controls.send_close(code)
        except OSError:
            pass


class _Server:
    """The listening socket and the connections open on it, for a clean shutdown."""

    def __init__(self, listener: socket.socket, max_message_size: int) -> None:
        self.listener = listener
        self.max_message_size = max_message_size
        self.upgrader = Upgrader(timeout=HANDSHAKE_TIMEOUT)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: dict[threading.Thread, socket.socket] = {}

    def serve_forever(self) -> None:
        """Accept connections, a thread each, until the listener is closed."""
        while not self.stopping.is_set():
            try:
                sock, address = self.listener.accept()
            except OSError:
                if self.stopping.is_set():
                    return
                raise
            peer = f"{address[0]}:{address[1]}"
            thread = threading.Thread(target=self._connection, args=(sock, peer), name=peer)
            with self._lock:
                self._open[thread] = sock
            thread.start()

    def shutdown(self) -> None:
        """Stop accepting; have every connection send Close 1001 and end; wait for them."""
        self.stopping.set()
        self.listener.close()
        with self._lock:
            open_now = list(self._open.items())
        for thread, sock in open_now:
            if thread.ident is None:  # Ctrl-C came between accept() and start()
                sock.close()
                continue
            # Ends the thread's blocked read with end of stream; the thread, the only
            # writer on its connection, then sends the Close frame itself.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD)
        for thread, _ in open_now:
            if thread.ident is not None:
                thread.join(CLOSE_TIMEOUT)

    def _connection(self, sock: socket.socket, peer: str) -> None:
        try:
            with sock:
                self._serve(sock, peer)
        except Exception:  # a bug must not go unseen, nor take the server down
            log.exception("%s: unexpected error", peer)
        finally:
            with self._lock:
                self._open.pop(threading.current_thread(), None)

    def _serve(self, sock: socket.socket, peer: str) -> None:
        try:
            conn, handshake = self.upgrader.upgrade_conn(sock)
        except (HandshakeError, OSError) as err:
            log.info("%s: handshake failed: %s", peer, err)
            return
        protocol = f" (subprotocol {handshake.subprotocol})" if handshake.subprotocol else ""
        log.info("%s: connected%s", peer, protocol)
        echo = _Echo(conn, self.max_message_size)
        try:
            echo.run()
        except ConnectionClosed as closed:
            log.info("%s: closed after %d messages: %s", peer, echo.messages, closed)
        except ProtocolError as err:
            log.info("%s: failed with close code %d: %s", peer, err.close_code, err)
        except (ConnectionEOFError, OSError) as err:
            if self.stopping.is_set():
                # RFC 6455 §7.4.1: 1001 "indicates that an endpoint is "going away",
                # such as a server going down".
                echo.close(CloseCode.GOING_AWAY)
                log.info("%s: closed with 1001 (shutting down)", peer)
            else:
                log.info("%s: dropped after %d messages: %r", peer, echo.messages, err)


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    out: TextIO | None = None,
) -> int:
    """Run the echo server until SIGINT or SIGTERM; return the exit status (0).

    Prints ``listening on HOST:PORT`` on ``out`` (stdout) once the port is open.
    """
    listener = socket.create_server((host, port))
    server = _Server(listener, max_message_size)
    bound_host, bound_port = listener.getsockname()[:2]
    # Installed even where SIGINT was inherited as ignored (a job started with `&`), and
    # before the address is printed: whoever reads it may signal at once.
    previous = {sig: signal.signal(sig, _keyboard_interrupt) for sig in _STOP_SIGNALS}
    try:
        print(f"listening on {bound_host}:{bound_port}", file=out or sys.stdout, flush=True)
        log.info("echo server on ws://%s:%d/ (Ctrl-C stops it)", bound_host, bound_port)
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("shutting down")
    finally:
        server.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


# -- connect ---------------------------------------------------------------------------


class _LockedSink:
    """The connection's ``sendall`` under a lock: the receiving thread answers pings
    while the main thread sends lines, and each frame must go out whole."""

    def __init__(self, conn: Conn) -> None:
        self._sendall = conn.sendall
        self._lock = threading.Lock()

    def sendall(self, data: bytes | bytearray | memoryview, /) -> None:
        with self._lock:
            self._sendall(data)


class _Client:
    """A connection whose messages a thread prints while the main thread sends lines."""

    def __init__(self, conn: Conn, out: TextIO, err: TextIO) -> None:
        self.conn = conn
        self.state = State.CLIENT_SIDE
        self.sink = _LockedSink(conn)
        self.controls = ControlHandler(self.sink, self.state)
        self.out, self.err = out, err
        self.closed: ConnectionClosed | None = None  # how the closing handshake ended
        self.done = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._receive, name="receive", daemon=True)
        #: Lines typed, then None at end of input or when the connection is over.
        self.lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()

    def read_input(self, stdin: TextIO) -> None:
        """Queue each line of ``stdin``, then None (a daemon thread: stdin blocks)."""
        try:
            for line in stdin:
                self.lines.put(line)
        finally:
            self.lines.put(None)

    def send(self, text: str) -> None:
        """Send one text message."""
        write_message(self.sink, self.state, OpCode.TEXT, text.encode())

    def close(self, code: int = CloseCode.NORMAL_CLOSURE) -> None:
        """Start the closing handshake (once); the receiving thread sees the answer."""
        with self._lock:
            try:
                self.controls.send_close(code)
            except OSError:
                pass

    def _on_control(self, header: Header, payload: bytes | bytearray | memoryview) -> None:
        # The lock: pongs and the answer to a Close come from the receiving thread while
        # the main thread sends messages. An answer to our own Close is not answered.
        with self._lock:
            self.controls.handle(header, payload)

    def _receive(self) -> None:
        reader = Reader(self.conn, self.state, on_intermediate=self._on_control)
        try:
            while True:
                header = reader.next_frame()
                if is_control(header.opcode):
                    self._on_control(header, reader.read())
                    continue
                payload = reader.readall()
                if header.opcode == OpCode.TEXT:
                    print(payload.decode(), file=self.out, flush=True)
                else:
                    print(
                        f"[binary, {len(payload)} bytes] {payload.hex()}", file=self.out, flush=True
                    )
        except ConnectionClosed as closed:
            self.closed = closed
        except ProtocolError as error:
            print(f"protocol error: {error}", file=self.err, flush=True)
            self.close(error.close_code)
        except (ConnectionEOFError, OSError) as error:
            print(f"connection lost: {error!r}", file=self.err, flush=True)
        finally:
            self.done.set()
            self.lines.put(None)  # wakes the main thread up


def connect(
    url: str,
    *,
    dialer: Dialer | None = None,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the interactive client on ``url``; return 0 after a clean close, else 1."""
    stdin, out, err = stdin or sys.stdin, out or sys.stdout, err or sys.stderr
    try:
        conn, handshake = (dialer or Dialer()).dial(url)
    except (HandshakeError, OSError) as error:
        print(f"cannot connect to {url}: {error}", file=err, flush=True)
        return 1
    protocol = f" (subprotocol {handshake.subprotocol})" if handshake.subprotocol else ""
    print(f"connected to {url}{protocol}", file=err, flush=True)
    client = _Client(conn, out, err)
    client.thread.start()
    # The input is read by a thread of its own, so that the main thread can stop
    # waiting for it when the server ends the connection (and still sees Ctrl-C).
    threading.Thread(target=client.read_input, args=(stdin,), name="input", daemon=True).start()
    try:
        while (line := client.lines.get()) is not None and not client.done.is_set():
            client.send(line.rstrip("\r\n"))
    except KeyboardInterrupt:
        pass
    except (WebSocketError, OSError) as error:
        print(f"cannot send: {error!r}", file=err, flush=True)
    try:
        client.close()
        client.done.wait(CLOSE_TIMEOUT)
    except KeyboardInterrupt:  # a second Ctrl-C: stop waiting for the server
        pass
    conn.close()
    if client.closed is None:
        return 1
    print(f"closed: {client.closed}", file=err, flush=True)
    return 0


# -- main ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m wsio``: parse the command line and run a subcommand."""
    parser = argparse.ArgumentParser(prog="python -m wsio", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_parser = commands.add_parser("serve", help="run an echo server")
    serve_parser.add_argument("--host", default="127.0.0.1", help="default %(default)s")
    serve_parser.add_argument("--port", type=int, default=8080, help="default %(default)s")
    serve_parser.add_argument(
        "--max-message-size",
        type=int,
        default=DEFAULT_MAX_MESSAGE_SIZE,
        help="close with 1009 above this many bytes (default %(default)s)",
    )
    serve_parser.add_argument("--quiet", "-q", action="store_true", help="no connection log")
    connect_parser = commands.add_parser("connect", help="an interactive client")
    connect_parser.add_argument("url", help="ws:// or wss:// URL")
    args = parser.parse_args(argv)
    if args.command == "serve":
        logging.basicConfig(
            level=logging.WARNING if args.quiet else logging.INFO,
            format="%(asctime)s %(message)s",
            stream=sys.stderr,
        )
        return serve(args.host, args.port, max_message_size=args.max_message_size)
    return connect(args.url)
