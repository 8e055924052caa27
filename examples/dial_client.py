"""A command-line WebSocket client: connect, send each line of input, print each reply.

On :mod:`wsio.sync`: :class:`wsio.sync.connect` dials (TLS for ``wss://``, proxies,
``ws+unix://``), runs the opening handshake and gives a connection that answers pings,
keeps itself alive and runs the closing handshake when the ``with`` block ends; any
message the server sent together with its 101 response is kept, not lost::

    python examples/dial_client.py ws://127.0.0.1:8101/ hello world
    echo hi | python examples/dial_client.py wss://example.com/chat -p chat -H "Origin: x"
    python examples/dial_client.py ws+unix://%2Frun%2Fapp.sock/ --debug ping

``--debug`` prints the raw request and response heads (the DebugDialer idea). A server
that cannot be reached, refuses the handshake or a bad URL is one line on stderr and
exit status 1.
"""

from __future__ import annotations

import argparse
import ssl
import sys
from collections.abc import Callable, Iterable
from typing import Any

import wsio
from wsio.sync import connect


def chat(url: str, lines: Iterable[str], **options: Any) -> list[str]:
    """Send each line as a text message and collect the server's replies, then close."""
    replies: list[str] = []
    with connect(url, **options) as ws:
        if ws.subprotocol:
            print(f"# subprotocol={ws.subprotocol!r}", file=sys.stderr)
        for line in lines:
            ws.send(line)
            reply = ws.recv(decode=True)
            replies.append(reply)
    return replies


def options_of(args: argparse.Namespace) -> dict[str, Any]:
    """The connection's keywords for the command line's options."""
    headers = []
    for header in args.header:
        name, _, value = header.partition(":")
        headers.append((name.strip(), value.strip()))
    context = None
    if args.cafile:
        context = ssl.create_default_context(cafile=args.cafile)

    def show(direction: str) -> Callable[[bytes | memoryview], None]:
        def hook(raw: bytes | memoryview) -> None:
            # The bytes are only valid during the call: decode them now.
            text = bytes(raw).decode("latin-1").rstrip("\r\n")
            for line in text.split("\r\n"):
                print(f"{direction} {line}", file=sys.stderr)

        return hook

    options: dict[str, Any] = {
        "open_timeout": args.timeout,
        "subprotocols": args.subprotocol,
        "headers": headers,
        "proxy": args.proxy if args.proxy != "none" else None,
        "compression": None,
    }
    if context is not None:
        options["ssl"] = context
    if args.debug:
        options["on_request_bytes"] = show(">")
        options["on_response_bytes"] = show("<")
    return options


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, chat, print the replies; 1 (and one line on stderr) if
    the server cannot be reached, refuses, or the URL is bad."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("message", nargs="*", help="messages to send (default: stdin lines)")
    parser.add_argument("-p", "--subprotocol", action="append", default=[])
    parser.add_argument("-H", "--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--cafile", help="trust this CA bundle for wss://")
    parser.add_argument("--proxy", default=True, help="http://host:port, or 'none'")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--debug", action="store_true", help="print the raw handshake")
    args = parser.parse_intermixed_args(argv)
    lines = args.message or (line.rstrip("\n") for line in sys.stdin)
    try:
        replies = chat(args.url, lines, **options_of(args))
    except wsio.InvalidStatusError as error:
        print(f"refused: {error.status} {error.reason}: {error.body[:200]!r}", file=sys.stderr)
        return 1
    except (wsio.WebSocketError, OSError, ValueError) as error:
        # A bad URL (ValueError), a refused or unreachable server, TLS, a bad answer.
        print(f"{args.url}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    for reply in replies:
        print(reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
