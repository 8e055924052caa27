"""The lower-level echo server: a message is a stream, copied from a Reader to a Writer.

The twin of gobwas/ws's second README example. Each message is streamed back with
``shutil.copyfileobj(reader, writer)`` (Go's ``io.Copy``) without being held whole in
memory: the Writer sends what it has as a fragment whenever its buffer fills, and
``flush()`` sends the final frame. Control frames are answered by a
:class:`~wsio.wsutil.ControlHandler`, both between messages and (through
``on_intermediate``) in the middle of a fragmented one.
The handler is a :class:`wsio.UpgradeRequestHandler` (wsio reads each request head,
within the Upgrader's limits and deadline) and the server a
:class:`wsio.server.ThreadingHTTPServer` (it survives running out of descriptors or
threads)::

    python examples/echo_low_level.py --port 8102
"""

from __future__ import annotations

import argparse
import logging
import shutil

import wsio
from wsio import wsutil
from wsio.server import ThreadingHTTPServer

log = logging.getLogger("echo_low_level")


def echo(conn: wsio.Conn, max_message_size: int) -> None:
    """Echo every message on ``conn`` until the closing handshake or a protocol error."""
    state = wsio.State.SERVER_SIDE
    controls = wsutil.ControlHandler(conn, state)
    reader = wsutil.Reader(
        conn, state, on_intermediate=controls.handle, max_message_size=max_message_size
    )
    writer = wsutil.Writer(conn, state, wsio.OpCode.TEXT)
    try:
        while True:
            header = reader.next_frame()
            if wsio.is_control(header.opcode):
                # Raises ClosedError once a Close frame is answered.
                controls.handle(header, reader.read())
                continue
            # Reset the writer to write frames with the right opcode.
            writer.reset(conn, state, header.opcode)
            shutil.copyfileobj(reader, writer)
            writer.flush()
    except wsio.ProtocolError as err:
        # RFC 6455 §7.1.7: "_Fail the WebSocket Connection_": send the close code that
        # answers the error (unless the handler already did), then drop the connection.
        if not controls.close_sent:
            wsutil.write_close(conn, state, err.close_code)
        raise


class EchoHandler(wsio.UpgradeRequestHandler):
    """Upgrades every GET to a WebSocket and streams messages back."""

    max_message_size = wsio.DEFAULT_MAX_MESSAGE_SIZE

    def do_GET(self) -> None:
        """Upgrade, then echo; http.server closes the connection when this returns."""
        try:
            conn, handshake = wsio.upgrade_http(self)
        except (wsio.HandshakeError, OSError) as err:
            log.info("%s: upgrade refused: %s", self.address_string(), err)
            return
        log.info("%s: connected %s", self.address_string(), handshake)
        try:
            echo(conn, self.max_message_size)
        except wsio.ConnectionClosed as closed:
            log.info("%s: closed %s", self.address_string(), closed)
        except (wsio.WebSocketError, OSError) as err:
            log.info("%s: dropped: %r", self.address_string(), err)

    def log_message(self, format: str, *args: object) -> None:
        """Route http.server's own request log through :mod:`logging`."""
        log.debug(format, *args)


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted; print the address once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8102)
    parser.add_argument(
        "--max-message-size",
        type=int,
        default=wsio.DEFAULT_MAX_MESSAGE_SIZE,
        help="close with 1009 above this many bytes (default %(default)s)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log every connection")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    EchoHandler.max_message_size = args.max_message_size
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
