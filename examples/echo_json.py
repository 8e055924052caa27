"""A JSON request/response loop: each message is a stream that :mod:`json` reads.

The twin of gobwas/ws's "structured responses" README example: the Reader is handed to
``json.load`` as a file, the response is written to the Writer and flushed as one
message. Requests are objects ``{"id": ..., "method": ..., "params": ...}``; the methods
are ``echo`` (the params back) and ``sum`` (of a list of numbers). A request that is not
JSON or names no known method gets ``{"id": ..., "error": "..."}``.
The handler is a :class:`wsio.UpgradeRequestHandler` (wsio reads each request head,
within the Upgrader's limits and deadline) and the server a
:class:`wsio.server.ThreadingHTTPServer` (it survives running out of descriptors or
threads)::

    python examples/echo_json.py --port 8103
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

import wsio
from wsio import wsutil
from wsio.server import ThreadingHTTPServer

log = logging.getLogger("echo_json")


def respond(request: Any) -> dict[str, Any]:
    """The response object for one decoded request."""
    if not isinstance(request, dict):
        return {"id": None, "error": "a request is a JSON object"}
    response: dict[str, Any] = {"id": request.get("id")}
    method, params = request.get("method"), request.get("params")
    if method == "echo":
        response["result"] = params
    elif method == "sum" and isinstance(params, list):
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in params):
            response["result"] = sum(params)
        else:
            response["error"] = "sum takes a list of numbers"
    else:
        response["error"] = f"unknown method {method!r}"
    return response


def serve(conn: wsio.Conn, max_message_size: int) -> None:
    """Answer every request message on ``conn`` until the closing handshake."""
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
                controls.handle(header, reader.read())  # ClosedError after a close
                continue
            try:
                request = json.load(reader)
            except ValueError as err:  # not JSON (or, for a binary message, not UTF-8)
                reader.discard()
                response: dict[str, Any] = {"id": None, "error": f"bad request: {err}"}
            else:
                response = respond(request)
            writer.write(json.dumps(response).encode())
            writer.flush()
    except wsio.ProtocolError as err:
        # RFC 6455 §7.1.7: send the close code that answers the error, then drop.
        if not controls.close_sent:
            wsutil.write_close(conn, state, err.close_code)
        raise


class JSONHandler(wsio.UpgradeRequestHandler):
    """Upgrades every GET to a WebSocket and answers JSON requests."""

    max_message_size = wsio.DEFAULT_MAX_MESSAGE_SIZE

    def do_GET(self) -> None:
        """Upgrade, then serve; http.server closes the connection when this returns."""
        try:
            conn, handshake = wsio.upgrade_http(self)
        except (wsio.HandshakeError, OSError) as err:
            log.info("%s: upgrade refused: %s", self.address_string(), err)
            return
        log.info("%s: connected %s", self.address_string(), handshake)
        try:
            serve(conn, self.max_message_size)
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
    parser.add_argument("--port", type=int, default=8103)
    parser.add_argument(
        "--max-message-size",
        type=int,
        default=wsio.DEFAULT_MAX_MESSAGE_SIZE,
        help="close with 1009 above this many bytes (default %(default)s)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log every connection")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    JSONHandler.max_message_size = args.max_message_size
    server = ThreadingHTTPServer((args.host, args.port), JSONHandler)
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
