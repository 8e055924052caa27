"""A compressed echo server on wsutil streams: the second wsflate example of gobwas/ws.

Each message is decompressed by a :class:`wsflate.Reader` reading from a
``wsutil.Reader`` and compressed again by a :class:`wsflate.Writer` writing into a
``wsutil.Writer``, without holding the message whole; a :class:`wsflate.MessageState`
moves RSV1 between the frames and the streams. The Reader and Writer are made from the
parameters agreed with each client, so with context takeover (``--takeover``) they keep
their window across messages. Each connection is upgraded in its own thread, with a
deadline for the handshake, so a client that sends nothing holds up no one else; the
accept loop is :class:`wsio.server.ThreadedServer`::

    python examples/wsflate_stream.py --port 8109 [--takeover]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import socket
from typing import Any

import wsio
from wsio import wsflate, wsutil
from wsio.handshake import Upgrader
from wsio.server import ThreadedServer

log = logging.getLogger("wsflate_stream")


def echo(
    conn: wsio.Conn, params: wsflate.Parameters, max_message_size: int, level: int = 9
) -> None:
    """Echo every message on ``conn`` until the closing handshake or a protocol error."""
    state = wsio.State.SERVER_SIDE | wsio.State.EXTENDED
    controls = wsutil.ControlHandler(conn, state)
    # Declare the compression message state: it tells whether a received message is
    # compressed and sets RSV1 on the frames written (a receive and a send extension).
    msg = wsflate.MessageState()
    # wsutil checks the UTF-8 of an uncompressed text message as it reads; a compressed
    # one is checked after inflating, by the wsflate.Reader.
    rd = wsutil.Reader(
        conn,
        state,
        extensions=[msg],
        on_intermediate=controls.handle,
        max_message_size=max_message_size,
    )
    wr = wsutil.Writer(conn, state, wsio.OpCode.TEXT)
    wr.set_extensions(msg)
    # None as the source and destination: they are given by reset() for each message.
    fr = wsflate.Reader(None, parameters=params, state=msg, max_message_size=max_message_size)
    fw = wsflate.Writer(None, parameters=params, state=msg, level=level)
    try:
        while True:
            h = rd.next_frame()
            if wsio.is_control(h.opcode):
                controls.handle(h, rd.read())  # raises ClosedError after a Close
                continue
            # Reset the writer to echo the same opcode, and both flate streams for the
            # new message; echo it compressed only if it came compressed.
            wr.reset_op(h.opcode)
            compressed = msg.is_compressed()
            fr.reset(rd)
            fw.reset(wr, compress=compressed)
            shutil.copyfileobj(fr if compressed else rd, fw)
            # Flush what remains in the flate writer into the frame writer, then send the
            # final frame.
            fw.close()
            wr.flush()
    except wsio.ProtocolError as err:
        if not controls.close_sent:
            wsutil.write_close(conn, state, err.close_code)
        raise


def run_conn(
    sock: socket.socket, addr: Any, config: wsflate.Parameters, max_message_size: int, level: int
) -> None:
    """Upgrade one accepted socket, serve it and close it, whatever happens."""
    # An Extension keeps what one handshake agreed: one per connection.
    e = wsflate.Extension(parameters=config)
    u = Upgrader(negotiate=e.negotiate, timeout=10.0)  # for the whole handshake
    try:
        conn, _ = u.upgrade_conn(sock)
    except (wsio.HandshakeError, OSError) as err:
        log.info("%s: upgrade error: %s", addr, err)
        sock.close()
        return
    params = e.accepted()
    if params is None:
        log.info("%s: didn't negotiate compression", addr)
        conn.close()
        return
    try:
        echo(conn, params, max_message_size, level)
    except (wsio.WebSocketError, OSError) as err:
        log.info("closed: %r", err)
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted; print the address once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8109)
    parser.add_argument("--max-message-size", type=int, default=wsio.DEFAULT_MAX_MESSAGE_SIZE)
    parser.add_argument(
        "--takeover",
        action="store_true",
        help="keep the compression context across messages (more memory, better ratio)",
    )
    parser.add_argument(
        "--level", type=int, default=9, help="zlib level 0-9 (9, as in the seed's example)"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log every connection")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)

    config = wsflate.Parameters() if args.takeover else wsflate.DEFAULT_PARAMETERS
    with socket.create_server((args.host, args.port)) as ln:
        host, port = ln.getsockname()[:2]
        print(f"listening on {host}:{port}", flush=True)
        server = ThreadedServer(
            ln, lambda sock, addr: run_conn(sock, addr, config, args.max_message_size, args.level)
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            return


if __name__ == "__main__":
    main()
