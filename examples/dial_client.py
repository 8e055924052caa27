"""A command-line WebSocket client: dial, send each line of input, print each reply.

The client side of gobwas/ws's README (``ws.Dial`` + ``wsutil.WriteClientMessage`` /
``wsutil.ReadServerData``). :func:`wsio.dial` connects, runs TLS for ``wss://`` and the
opening handshake; the returned connection already holds any frame the server sent
together with its 101 response, so nothing is lost before the first read::

    python examples/dial_client.py ws://127.0.0.1:8080/ hello world
    echo hi | python examples/dial_client.py wss://example.com/chat -p chat -H "Origin: x"
    python examples/dial_client.py ws+unix://%2Frun%2Fapp.sock/ --debug ping

``--debug`` prints the raw request and response heads (the DebugDialer idea).
"""

from __future__ import annotations

import argparse
import ssl
import sys
from collections.abc import Callable, Iterable

import wsio
from wsio import wsutil


def chat(dialer: wsio.Dialer, url: str, lines: Iterable[str]) -> list[str]:
    """Send each line as a text message and collect the server's replies, then close."""
    conn, handshake = dialer.dial(url)
    replies: list[str] = []
    with conn:
        if handshake.subprotocol or handshake.extensions:
            print(f"# {handshake.subprotocol=} {handshake.extensions=}", file=sys.stderr)
        for line in lines:
            wsutil.write_client_text(conn, line.encode())
            payload, _ = wsutil.read_server_data(conn)
            replies.append(payload.decode("utf-8", "replace"))
        # RFC 6455 §7.1.2: start the closing handshake, then wait for the server's Close.
        wsutil.write_close(conn, wsio.State.CLIENT_SIDE, wsio.CloseCode.NORMAL_CLOSURE)
        try:
            while True:
                wsutil.read_server_data(conn)
        except (wsio.ClosedError, wsio.ConnectionEOFError):
            pass
    return replies


def build_dialer(args: argparse.Namespace) -> wsio.Dialer:
    """A Dialer for the command line's options."""
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

    return wsio.Dialer(
        timeout=args.timeout,
        subprotocols=args.subprotocol,
        headers=headers,
        ssl=context,
        proxy=args.proxy if args.proxy != "none" else None,
        on_request_bytes=show(">") if args.debug else None,
        on_response_bytes=show("<") if args.debug else None,
    )


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, chat, print the replies; 1 if the handshake failed."""
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
        replies = chat(build_dialer(args), args.url, lines)
    except wsio.InvalidStatusError as error:
        print(f"refused: {error.status} {error.reason}: {error.body[:200]!r}", file=sys.stderr)
        return 1
    except wsio.HandshakeError as error:
        print(f"handshake failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    for reply in replies:
        print(reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
