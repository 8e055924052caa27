"""``wsio connect URL``: an interactive client on :func:`wsio.sync.connect`.

Each line read (typed, or from a pipe) is sent as a text message; every message received
is printed on stdout (text as it is, binary as ``[binary, N bytes] HEX``); status lines
go to stderr. Two commands: ``/ping`` (prints the round trip) and ``/close [CODE
[REASON]]``; a line starting with ``//`` is sent without its first ``/``.

At end of input (Ctrl-D, or the end of a pipe) the replies still owed are awaited first
(until as many messages came as lines went, or none came for ``--linger`` seconds), then
the connection is closed with 1000. The exit status is 0 after a normal close (1000,
1001, or a close this side asked for), 1 after any other code (1011, 1006: the
connection was lost) or a failed connection, 2 for a mistake in the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import ssl
import sys
import threading
from typing import Any, TextIO

from wsio.cli.common import UsageError, add_command, connect_error, positive_float, ws_url
from wsio.exceptions import ConnectionClosed, ConnectionClosedOK, WebSocketError
from wsio.server import threads_without_signals
from wsio.sync import Connection, connect as open_connection

__all__ = ["add_parser", "connect", "run"]

#: Seconds without a message, at end of input, after which no more replies are awaited.
LINGER = 2.0
#: Seconds the receiving thread has to notice the end of a closed connection.
RECEIVER_EXIT = 1.0
#: Seconds a /ping waits for its pong.
PING_TIMEOUT = 10.0

#: The longest the main thread waits for input before it looks at signal handlers.
_WAKE = 0.5

_COMMANDS = "/ping, /close [CODE [REASON]], or // to send a line starting with /"


class _Session:
    """One connection: a thread prints what arrives while the main thread sends lines."""

    def __init__(self, ws: Connection, out: TextIO, err: TextIO) -> None:
        self.ws = ws
        self.out, self.err = out, err
        self.sent = 0
        self.received = 0
        self.closed_here = False  # this side started the closing handshake
        self.ended: ConnectionClosed | None = None
        self.arrived = threading.Condition()
        #: Lines read, then None at end of input or when the connection is over.
        self.lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()

    def read_input(self, stdin: TextIO) -> None:
        """Queue each line of ``stdin``, then None (a daemon thread: stdin blocks)."""
        try:
            for line in stdin:
                self.lines.put(line)
        finally:
            self.lines.put(None)

    def next_line(self) -> str | None:
        """The next line of input; None at its end or the connection's (main thread)."""
        # A bounded wait: a Ctrl-C that lands just before the lock wait interrupts
        # nothing, and its KeyboardInterrupt is raised only when the main thread runs
        # Python again (as in wsio.server's accept loop).
        while True:
            with contextlib.suppress(queue.Empty):
                return self.lines.get(timeout=_WAKE)

    def receive(self) -> None:
        """Print every message until the connection closes (the receiving thread)."""
        ws, out = self.ws, self.out
        try:
            while True:
                message = ws.recv()
                if isinstance(message, str):
                    print(message, file=out, flush=True)
                else:
                    print(f"[binary, {len(message)} bytes] {message.hex()}", file=out, flush=True)
                with self.arrived:
                    self.received += 1
                    self.arrived.notify_all()
        except ConnectionClosed as closed:
            self.ended = closed
        except (WebSocketError, OSError) as error:  # never expected: say it, and stop
            print(f"receiving failed: {error!r}", file=self.err, flush=True)
        finally:
            with self.arrived:
                self.arrived.notify_all()
            self.lines.put(None)  # wakes the main thread up

    def handle(self, line: str) -> bool:
        """Send ``line`` or run its command; False once the connection is closing."""
        if line.startswith("/") and not line.startswith("//"):
            return self.command(line)
        self.ws.send(line[1:] if line.startswith("//") else line)
        self.sent += 1
        return True

    def command(self, line: str) -> bool:
        """Run ``/ping`` or ``/close``; False after ``/close``."""
        name, _, rest = line.partition(" ")
        if name == "/ping":
            try:
                latency = self.ws.ping().wait(PING_TIMEOUT)
            except TimeoutError:
                print(f"no pong within {PING_TIMEOUT:g} s", file=self.err, flush=True)
            else:
                print(f"pong after {latency * 1000:.3f} ms", file=self.err, flush=True)
            return True
        if name == "/close":
            code_text, _, reason = rest.strip().partition(" ")
            try:
                code = int(code_text) if code_text else 1000
                self.close(code, reason)
            except ValueError as error:  # not a number, or a code RFC 6455 forbids
                print(f"/close: {error}", file=self.err, flush=True)
                return True
            return False
        print(f"unknown command {name}: {_COMMANDS}", file=self.err, flush=True)
        return True

    def drain(self, linger: float) -> None:
        """Wait for the replies still owed: as many messages as lines sent, or ``linger``
        seconds with none arriving."""
        with self.arrived:
            while self.received < self.sent and self.ended is None:
                before = self.received
                self.arrived.wait(linger)
                if self.received == before and self.ended is None:
                    return

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Run the closing handshake from this side (ValueError for a code not allowed)."""
        if self.ended is None:
            self.closed_here = True
        self.ws.close(code, reason)


def connect(
    url: str,
    *,
    linger: float = LINGER,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    **options: Any,
) -> int:
    """Run the client on ``url`` (``options`` are :func:`wsio.sync.connect`'s); return the
    exit status: 0 after a normal close, 1 otherwise. Raises Failure if it cannot connect."""
    stdin, out, err = stdin or sys.stdin, out or sys.stdout, err or sys.stderr
    try:
        ws = open_connection(url, **options).open()
    except (WebSocketError, OSError) as error:
        raise connect_error(url, error) from None
    extras = []
    if ws.subprotocol:
        extras.append(f"subprotocol {ws.subprotocol}")
    if ws.protocol.extensions:
        extras.append("permessage-deflate")
    shown = f" ({', '.join(extras)})" if extras else ""
    print(f"connected to {url}{shown}", file=err, flush=True)
    session = _Session(ws, out, err)
    receiver = threading.Thread(target=session.receive, name="receive", daemon=True)
    # The input is read by a thread of its own, so that the main thread can stop
    # waiting for it when the server ends the connection. Both start with Ctrl-C
    # blocked: the kernel hands it to the main thread, whose wait it interrupts.
    reader = threading.Thread(target=session.read_input, args=(stdin,), name="input", daemon=True)
    with threads_without_signals():
        receiver.start()
        reader.start()
    try:
        while (line := session.next_line()) is not None and session.ended is None:
            if not session.handle(line.rstrip("\r\n")):
                break
        else:
            if session.ended is None:
                session.drain(linger)
    except KeyboardInterrupt:
        pass
    except ConnectionClosed:
        pass  # the receiving thread has the details
    try:
        session.close()
    except KeyboardInterrupt:  # a second Ctrl-C: stop waiting for the server
        ws.socket.close()
    receiver.join(RECEIVER_EXIT)  # it is about to see the end: let it say how
    return _report(session, err)


def _report(session: _Session, err: TextIO) -> int:
    ended = session.ended
    if ended is None:
        print("connection lost", file=err, flush=True)
        return 1
    print(f"closed: {ended}", file=err, flush=True)
    if isinstance(ended, ConnectionClosedOK) or (session.closed_here and ended.code != 1006):
        return 0
    return 1


def _ssl_context(cafile: str | None, insecure: bool) -> ssl.SSLContext | None:
    if cafile is None and not insecure:
        return None  # wsio's default: the system's CAs, host name checked
    try:
        context = ssl.create_default_context(cafile=cafile)
    except FileNotFoundError:
        raise UsageError(f"--cafile: no such file: {cafile}") from None
    except ssl.SSLError as error:
        raise UsageError(f"--cafile {cafile}: not a PEM certificate file ({error})") from None
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not a header (NAME:VALUE)")
    return name.strip(), value.strip()


# -- the command line ------------------------------------------------------------------


def add_parser(commands: Any) -> None:
    """Add ``connect`` and its options to ``commands`` (argparse's subparsers)."""
    parser = add_command(
        commands, "connect", "an interactive client: lines in, messages out", __doc__
    )
    parser.add_argument("url", type=ws_url, help="ws:// or wss:// URL")
    parser.add_argument(
        "--header",
        "-H",
        type=_header,
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="an extra request header (repeatable)",
    )
    parser.add_argument(
        "--subprotocol",
        action="append",
        default=[],
        metavar="NAME",
        help="offer this subprotocol (repeatable, in order of preference)",
    )
    parser.add_argument("--cafile", metavar="FILE", help="trust the CA certificates in FILE")
    parser.add_argument(
        "--insecure", "-k", action="store_true", help="wss:// without checking the certificate"
    )
    parser.add_argument(
        "--no-compression", action="store_true", help="do not offer permessage-deflate"
    )
    parser.add_argument(
        "--linger",
        type=positive_float,
        default=LINGER,
        metavar="SECONDS",
        help="at end of input, wait this long for each reply still owed (default %(default)s)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``connect`` with the parsed ``args``."""
    context = _ssl_context(args.cafile, args.insecure)
    options: dict[str, Any] = {
        "headers": args.header,
        "subprotocols": args.subprotocol,
        "compression": None if args.no_compression else "deflate",
    }
    if context is not None:
        options["ssl"] = context
    return connect(args.url, linger=args.linger or LINGER, **options)
