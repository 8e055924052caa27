"""The high-level echo server: one call reads a message, one call writes it back.

The twin of gobwas/ws's first README example. :mod:`http.server` accepts the request and
runs ``do_GET`` in a thread of its own; :func:`wsio.upgrade_http` answers the opening
handshake from inside it, and ``read_client_data`` / ``write_server_message`` echo
every message. ``read_client_data`` answers pings and the closing handshake itself and
sends the right close code (1002, 1007, 1009) before it raises on bad input.
The handler is a :class:`wsio.UpgradeRequestHandler` (wsio reads each request head,
within the Upgrader's limits and deadline) and the server a
:class:`wsio.server.ThreadingHTTPServer` (it survives running out of descriptors or
threads)::

    python examples/echo_high_level.py --port 8101
"""

from __future__ import annotations

import argparse
import logging

import wsio
from wsio import wsutil
from wsio.server import ThreadingHTTPServer

log = logging.getLogger("echo_high_level")


class EchoHandler(wsio.UpgradeRequestHandler):
    """Upgrades every GET to a WebSocket and echoes messages until the peer closes."""

    def do_GET(self) -> None:
        """Upgrade, then echo; http.server closes the connection when this returns."""
        try:
            conn, handshake = wsio.upgrade_http(self)
        except (wsio.HandshakeError, OSError) as err:
            log.info("%s: upgrade refused: %s", self.address_string(), err)
            return
        log.info("%s: connected %s", self.address_string(), handshake)
        try:
            while True:
                msg, op = wsutil.read_client_data(conn)
                wsutil.write_server_message(conn, op, msg)
        except wsio.ConnectionClosed as closed:
            log.info("%s: closed %s", self.address_string(), closed)
        except (wsio.ConnectionEOFError, wsio.ProtocolError, OSError) as err:
            # A ProtocolError's close code is already sent: drop the connection.
            log.info("%s: dropped: %r", self.address_string(), err)

    def log_message(self, format: str, *args: object) -> None:
        """Route http.server's own request log through :mod:`logging`."""
        log.debug(format, *args)


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted; print the address once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--verbose", "-v", action="store_true", help="log every connection")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    server = ThreadingHTTPServer((args.host, args.port), EchoHandler)
    host, port = server.socket.getsockname()[:2]
    print(f"listening on {host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
