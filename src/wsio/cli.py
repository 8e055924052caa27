"""The command line: ``python -m wsio serve`` (an echo server) and ``connect`` (a client).

::

    python -m wsio serve                      # echo on ws://127.0.0.1:8080/
    python -m wsio serve --host 0.0.0.0 --port 9000 --max-connections 5000
    python -m wsio connect ws://127.0.0.1:8080/

``serve`` is blocking, one daemon thread per connection, on a
:class:`~wsio.server.ThreadedServer`: running out of file descriptors or threads pauses
accepting (logged once), and past ``--max-connections`` a new connection is answered
503. An :class:`~wsio.Upgrader` runs the opening handshake in the connection's thread
under ``--handshake-timeout``; then a :class:`~wsio.wsutil.Reader` streams every
message into a :class:`~wsio.wsutil.Writer` (no message is held whole) and a
:class:`~wsio.wsutil.ControlHandler` answers pings and the closing handshake. A peer
silent for ``--ping-interval`` seconds is pinged and, if still silent after
``--ping-timeout``, closed with 1011; a peer that does not read what it is sent is
dropped after ``--write-timeout``. ``--origins`` admits only the listed ``Origin``
headers (403 for any other: cross-site WebSocket hijacking). Every connection is
logged to stderr. Ctrl-C (or SIGTERM) stops accepting, sends Close 1001 (going away) on
each open connection and exits 0 within ``CLOSE_TIMEOUT`` seconds.

``connect`` sends each line typed as a text message and prints every message received
(text as it is, binary as hex) on stdout; status lines go to stderr. End of input
(Ctrl-D) or Ctrl-C sends Close 1000 and waits for the server's answer.
"""

from __future__ import annotations

import argparse
import logging
import queue
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any, TextIO

from wsio._engine.framing import Header
from wsio._engine.limits import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_OPEN_TIMEOUT,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
)
from wsio.conn import Conn
from wsio.dialer import Dialer
from wsio.exceptions import (
    ConnectionClosed,
    ConnectionEOFError,
    HandshakeError,
    KeepaliveTimeoutError,
    ProtocolError,
    WebSocketError,
)
from wsio.frameio import LockedSink, Source
from wsio.frames import CloseCode, OpCode, State, is_control
from wsio.handshake import Upgrader
from wsio.server import DEFAULT_MAX_CONNECTIONS, ThreadedServer
from wsio.wsutil import ControlHandler, Keepalive, Reader, Writer, write_message

__all__ = ["connect", "main", "serve"]

log = logging.getLogger("wsio.cli")

#: Seconds a new connection has to complete its opening handshake.
HANDSHAKE_TIMEOUT = DEFAULT_OPEN_TIMEOUT
#: Seconds a write may block on a peer that does not read before it is dropped.
WRITE_TIMEOUT = 10.0
#: Seconds to wait for connections (serve) or the server's Close (connect) when ending.
CLOSE_TIMEOUT = 5.0


# -- serve -----------------------------------------------------------------------------


class _Echo:
    """One connection's echo loop: every message streamed back, control frames answered."""

    def __init__(self, conn: Conn, source: Source, max_message_size: int) -> None:
        self.conn = conn
        self.state = State.SERVER_SIDE
        self.controls = ControlHandler(conn, self.state)
        self.reader = Reader(
            source,
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


class _EchoServer:
    """What each connection of ``serve`` does, on a :class:`ThreadedServer`."""

    def __init__(
        self,
        listener: socket.socket,
        *,
        max_message_size: int,
        max_connections: int,
        handshake_timeout: float,
        write_timeout: float,
        ping_interval: float,
        ping_timeout: float,
        origins: Sequence[str | None] | None,
    ) -> None:
        self.max_message_size = max_message_size
        self.write_timeout = write_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.upgrader = Upgrader(timeout=handshake_timeout, origins=origins)
        self.server = ThreadedServer(
            listener, self.connection, max_connections=max_connections, logger=log
        )

    def connection(self, sock: socket.socket, address: Any) -> None:
        """Upgrade ``sock``, then echo on it until it ends; log how it ended."""
        peer = f"{address[0]}:{address[1]}"
        try:
            conn, handshake = self.upgrader.upgrade_conn(sock)
        except (HandshakeError, OSError) as err:
            log.info("%s: handshake failed: %s", peer, err)
            return
        protocol = f" (subprotocol {handshake.subprotocol})" if handshake.subprotocol else ""
        log.info("%s: connected%s", peer, protocol)
        # The socket timeout bounds every write (a peer that does not read is dropped)
        # and wakes every read that long, for the keepalive to check the silence.
        conn.settimeout(min(self.write_timeout, self.ping_interval, self.ping_timeout))
        state = State.SERVER_SIDE

        def ping() -> None:
            write_message(conn, state, OpCode.PING, b"")

        source = Keepalive(conn, ping, interval=self.ping_interval, timeout=self.ping_timeout)
        echo = _Echo(conn, source, self.max_message_size)
        try:
            echo.run()
        except ConnectionClosed as closed:
            log.info("%s: closed after %d messages: %s", peer, echo.messages, closed)
        except ProtocolError as err:
            log.info("%s: failed with close code %d: %s", peer, err.close_code, err)
        except KeepaliveTimeoutError as err:
            # RFC 6455 §7.4.1: 1011, the server "encountered an unexpected condition".
            echo.close(CloseCode.INTERNAL_ERROR)
            log.info("%s: closed with 1011: %s", peer, err)
        except (ConnectionEOFError, OSError) as err:
            if self.server.stopping.is_set():
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
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
    write_timeout: float = WRITE_TIMEOUT,
    ping_interval: float = DEFAULT_PING_INTERVAL,
    ping_timeout: float = DEFAULT_PING_TIMEOUT,
    origins: Sequence[str | None] | None = None,
    out: TextIO | None = None,
) -> int:
    """Run the echo server until SIGINT or SIGTERM; return the exit status (0).

    Prints ``listening on HOST:PORT`` on ``out`` (stdout) once the port is open.
    ``origins`` is :class:`~wsio.Upgrader`'s: None checks no Origin header.
    """
    listener = socket.create_server((host, port), backlog=128)
    echo_server = _EchoServer(
        listener,
        max_message_size=max_message_size,
        max_connections=max_connections,
        handshake_timeout=handshake_timeout,
        write_timeout=write_timeout,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        origins=origins,
    )
    server = echo_server.server
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
        # A second signal while connections say goodbye must not cut that short.
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        server.shutdown(CLOSE_TIMEOUT)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


# -- connect ---------------------------------------------------------------------------


class _Client:
    """A connection whose messages a thread prints while the main thread sends lines."""

    def __init__(self, conn: Conn, out: TextIO, err: TextIO) -> None:
        self.conn = conn
        self.state = State.CLIENT_SIDE
        # The receiving thread answers pings while the main thread sends lines: both
        # write through one LockedSink, so every frame goes out whole.
        self.sink = LockedSink(conn)
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
    serve_parser.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help="answer 503 to new connections while this many are open (default %(default)s)",
    )
    serve_parser.add_argument(
        "--handshake-timeout",
        type=float,
        default=HANDSHAKE_TIMEOUT,
        help="seconds a client has for the opening handshake (default %(default)s)",
    )
    serve_parser.add_argument(
        "--write-timeout",
        type=float,
        default=WRITE_TIMEOUT,
        help="drop a client that does not read what it is sent for this many seconds "
        "(default %(default)s)",
    )
    serve_parser.add_argument(
        "--ping-interval",
        type=float,
        default=DEFAULT_PING_INTERVAL,
        help="ping a client silent for this many seconds (default %(default)s)",
    )
    serve_parser.add_argument(
        "--ping-timeout",
        type=float,
        default=DEFAULT_PING_TIMEOUT,
        help="close with 1011 a client still silent this long after a ping (default %(default)s)",
    )
    serve_parser.add_argument(
        "--origins",
        nargs="+",
        metavar="ORIGIN",
        help="accept only these Origin headers, e.g. https://app.example.com (the word "
        "'none' admits clients that send no Origin, as non-browser clients do); others get "
        "403. Default: no check, so any web page a browser opens can connect",
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
        for name in ("handshake_timeout", "write_timeout", "ping_interval", "ping_timeout"):
            if getattr(args, name) <= 0:
                parser.error(f"--{name.replace('_', '-')} must be positive")
        if args.max_connections < 1:
            parser.error("--max-connections must be positive")
        return serve(
            args.host,
            args.port,
            max_message_size=args.max_message_size,
            max_connections=args.max_connections,
            handshake_timeout=args.handshake_timeout,
            write_timeout=args.write_timeout,
            ping_interval=args.ping_interval,
            ping_timeout=args.ping_timeout,
            origins=None
            if args.origins is None
            else [None if origin == "none" else origin for origin in args.origins],
        )
    return connect(args.url)
