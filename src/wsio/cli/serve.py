"""``wsio serve``: an echo server on :func:`wsio.sync.serve`'s server, with a page at ``/``.

Every message a client sends comes back to it, text as text and binary as binary,
compressed when the client offered permessage-deflate (unless ``--no-compression``). A
plain ``GET /`` (no Upgrade) is answered with a small HTML page whose script opens a
WebSocket to this server and shows what comes back, so a browser can try it; it goes
through the same request handling as an upgrade (head limits, handshake deadline,
``--max-connections``). Every connection is logged on stderr. Ctrl-C (or SIGTERM) stops
accepting, closes each connection with 1001 (going away) and exits 0.
"""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import socket
import ssl
import sys
from types import FrameType
from typing import Any, TextIO

from wsio._engine.handshake import Handshake
from wsio._engine.http import RequestParser
from wsio._engine.httphead import has_token
from wsio._engine.limits import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
)
from wsio.cli.common import (
    Failure,
    add_command,
    listen_error,
    port,
    positive_float,
    positive_int,
    setup_logging,
    size,
)
from wsio.cli.page import PAGE
from wsio.exceptions import ConnectionClosed, RejectConnectionError
from wsio.handshake import Upgrader
from wsio.server import DEFAULT_MAX_CONNECTIONS
from wsio.sync import Connection, Options, Server

__all__ = ["PageUpgrader", "add_parser", "run", "serve"]

log = logging.getLogger("wsio.cli")

#: Seconds the open connections get to say goodbye when the server stops.
CLOSE_TIMEOUT = 5.0
#: Seconds a write may make no progress (a peer that does not read) before the drop.
WRITE_TIMEOUT = 10.0

# RFC 8446 §5.1: a TLS record starts with its content type; a ClientHello travels in a
# handshake record, type 22.
_TLS_HANDSHAKE_RECORD = 0x16


class PagePlease(RejectConnectionError):
    """Not a refusal: the request was a plain ``GET /`` and got the page (status 200)."""


class PageUpgrader(Upgrader):
    """An Upgrader that answers a plain ``GET /`` with :data:`PAGE` and spots TLS clients.

    The page goes out where a refusal would (the request head was read and parsed with
    this Upgrader's limits and deadline); the connection then closes, as after a refusal.
    """

    def upgrade(self, conn: Any) -> Handshake:
        """:meth:`Upgrader.upgrade`, logging how a request that is not an upgrade ended."""
        peer = _peer(conn)
        if _starts_with_tls(conn, self.timeout):
            log.warning("%s: this looks like TLS (a wss:// client? serve with --tls)", peer)
            raise RejectConnectionError("TLS on a plain server", status=400)
        try:
            return super().upgrade(conn)
        except PagePlease:
            log.info("%s: GET / (the page)", peer)
            raise
        except RejectConnectionError as refusal:
            log.info("%s: refused with %d: %s", peer, refusal.status, refusal.reason)
            raise
        except Exception as error:
            log.info("%s: handshake failed: %s", peer, error)
            raise

    def answer(
        self, parser: RequestParser
    ) -> tuple[Handshake | None, RejectConnectionError | None, bytes]:
        """The page for a plain ``GET /``; anything else as :meth:`Upgrader.answer` says."""
        if parser.method == b"GET" and parser.target == b"/" and not _asks_upgrade(parser):
            return None, PagePlease("the page", status=200), _PAGE_RESPONSE
        return super().answer(parser)


def _asks_upgrade(parser: RequestParser) -> bool:
    """True if the request has an ``Upgrade`` header naming websocket (RFC 6455 §4.2.1)."""
    names = (b"upgrade",)
    return any(
        parser.find_name(i, names) == 0 and has_token(parser.value_bytes(i), "websocket")
        for i in range(len(parser))
    )


def _page_response(page: str) -> bytes:
    body = page.encode("utf-8")
    head = (
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


_PAGE_RESPONSE = _page_response(PAGE)


def _starts_with_tls(conn: Any, timeout: float | None) -> bool:
    """Peek at the first byte of a plain socket: does a TLS record start there?

    The byte stays in the socket for the Upgrader. Waiting for it takes up to
    ``timeout``, and the Upgrader's own deadline starts afterwards: a client has at most
    twice the handshake timeout, the price of telling TLS from a malformed request.
    """
    if not isinstance(conn, socket.socket) or isinstance(conn, ssl.SSLSocket):
        return False
    previous = conn.gettimeout()
    conn.settimeout(timeout)
    try:
        first = conn.recv(1, socket.MSG_PEEK)
    except OSError:
        return False  # the Upgrader meets the same error and reports it
    finally:
        conn.settimeout(previous)
    return first == bytes((_TLS_HANDSHAKE_RECORD,))


def _peer(conn: Any) -> str:
    try:
        host, port_number = conn.getpeername()[:2]
    except (OSError, ValueError):
        return "?"
    return f"{host}:{port_number}"


class EchoServer(Server):
    """:class:`wsio.sync.Server` with :class:`PageUpgrader`."""

    upgrader_class = PageUpgrader


def echo(ws: Connection, write_timeout: float | None = WRITE_TIMEOUT) -> None:
    """Send every message back as it came; log the connection and how it ended.

    A write that makes no progress for ``write_timeout`` seconds (the connection's own
    option, set by :func:`serve`) drops the connection; the value here is for the log.
    """
    peer = _peer(ws.socket)
    details = ["compression: permessage-deflate" if ws.protocol.extensions else "no compression"]
    if ws.subprotocol:
        details.append(f"subprotocol {ws.subprotocol}")
    path = ws.request.path if ws.request is not None else "/"
    log.info("%s: connected to %s (%s)", peer, path, ", ".join(details))
    messages = 0
    try:
        while True:
            ws.send(ws.recv())
            messages += 1
    except ConnectionClosed as closed:
        if isinstance(closed.__cause__, BlockingIOError):  # the send timeout ran out
            log.info(
                "%s: dropped after %d messages: TimeoutError: the peer read nothing for %g s",
                peer,
                messages,
                write_timeout,
            )
            return
        log.info("%s: closed after %d messages: %s", peer, messages, closed)


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    tls: tuple[str, str] | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    origins: list[str | None] | None = None,
    write_timeout: float | None = WRITE_TIMEOUT,
    out: TextIO | None = None,
    **options: Any,
) -> int:
    """Run the echo server until SIGINT or SIGTERM; return the exit status (0).

    Prints ``listening on HOST:PORT`` on ``out`` (stdout) once the port is open.
    ``options`` are :class:`wsio.sync.Options` (limits, timeouts, compression); ``tls``
    is (certificate file, key file). Raises Failure when it cannot start.
    """
    context = _tls_context(*tls) if tls is not None else None
    try:
        config = Options(write_timeout=write_timeout, **options)
    except ValueError as error:
        raise Failure(str(error)) from None
    try:
        listener = socket.create_server((host, port), backlog=128)
    except OSError as error:
        raise listen_error(host, port, error) from None
    upgrader_options = {} if origins is None else {"origins": origins}
    try:
        server = EchoServer(
            functools.partial(echo, write_timeout=write_timeout),
            listener,
            config,
            upgrader_options,
            ssl=context,
            max_connections=max_connections,
        )
    except BaseException:
        listener.close()
        raise
    bound_host, bound_port = listener.getsockname()[:2]
    scheme = "wss" if context is not None else "ws"
    # Installed even where SIGINT was inherited as ignored (a job started with `&`), and
    # before the address is printed: whoever reads it may signal at once.
    previous = {sig: signal.signal(sig, _keyboard_interrupt) for sig in _STOP_SIGNALS}
    try:
        print(f"listening on {bound_host}:{bound_port}", file=out or sys.stdout, flush=True)
        log.info(
            "echo server on %s://%s:%d/, its page at %s://%s:%d/ (Ctrl-C stops it)",
            scheme,
            bound_host,
            bound_port,
            "https" if context is not None else "http",
            bound_host,
            bound_port,
        )
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("shutting down")
    finally:
        # A second signal while connections say goodbye must not cut that short.
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        server.shutdown(CLOSE_TIMEOUT)
        listener.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _tls_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except FileNotFoundError as error:
        raise Failure(f"--tls: no such file: {error.filename}") from None
    except (ssl.SSLError, OSError) as error:
        raise Failure(
            f"--tls {certfile} {keyfile}: not a certificate and its key ({error})"
        ) from None
    return context


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


# -- the command line ------------------------------------------------------------------


def add_parser(commands: Any) -> None:
    """Add ``serve`` and its options to ``commands`` (argparse's subparsers)."""
    parser = add_command(
        commands, "serve", "run an echo server (and a page to try it in a browser)", __doc__
    )
    parser.add_argument("--host", default="127.0.0.1", help="default %(default)s")
    parser.add_argument("--port", type=port, default=8080, help="default %(default)s (0: any)")
    parser.add_argument(
        "--tls",
        nargs=2,
        metavar=("CERT", "KEY"),
        help="serve wss:// with this certificate chain and private key (PEM files)",
    )
    parser.add_argument(
        "--no-compression",
        action="store_true",
        help="decline permessage-deflate (accepted by default when a client offers it)",
    )
    parser.add_argument(
        "--origins",
        nargs="+",
        metavar="ORIGIN",
        help="accept only these Origin headers, e.g. https://app.example.com (the word "
        "'none' admits clients that send no Origin, as non-browser clients do); others get "
        "403 (list this server's own http://HOST:PORT for its page to connect). Default: "
        "no check, so any web page a browser opens can connect",
    )
    limits = parser.add_argument_group("limits ('none' turns one off)")
    limits.add_argument(
        "--max-message-size",
        type=size,
        default=DEFAULT_MAX_MESSAGE_SIZE,
        metavar="BYTES",
        help="close with 1009 a message above this size (default %(default)s; 64K, 16M...)",
    )
    limits.add_argument(
        "--max-frame-size",
        type=size,
        default=DEFAULT_MAX_FRAME_SIZE,
        metavar="BYTES",
        help="close with 1009 a frame above this size (default %(default)s)",
    )
    limits.add_argument(
        "--max-connections",
        type=positive_int,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help="answer 503 to new connections while this many are open (default %(default)s)",
    )
    limits.add_argument(
        "--handshake-timeout",
        type=positive_float,
        default=DEFAULT_HANDSHAKE_TIMEOUT,
        metavar="SECONDS",
        help="time a client has for its request (default %(default)s)",
    )
    limits.add_argument(
        "--write-timeout",
        type=positive_float,
        default=WRITE_TIMEOUT,
        metavar="SECONDS",
        help="drop a client that reads nothing of what it is sent for this long "
        "(default %(default)s)",
    )
    limits.add_argument(
        "--ping-interval",
        type=positive_float,
        default=DEFAULT_PING_INTERVAL,
        metavar="SECONDS",
        help="ping each client this often (default %(default)s)",
    )
    limits.add_argument(
        "--ping-timeout",
        type=positive_float,
        default=DEFAULT_PING_TIMEOUT,
        metavar="SECONDS",
        help="close with 1011 a client whose pong is this late (default %(default)s)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="log only warnings")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``serve`` with the parsed ``args``."""
    setup_logging(args.quiet)
    return serve(
        args.host,
        args.port,
        tls=tuple(args.tls) if args.tls else None,
        max_connections=args.max_connections,
        write_timeout=args.write_timeout,
        origins=None
        if args.origins is None
        else [None if origin == "none" else origin for origin in args.origins],
        compression=None if args.no_compression else "deflate",
        max_message_size=args.max_message_size,
        max_frame_size=args.max_frame_size,
        handshake_timeout=args.handshake_timeout,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
    )
