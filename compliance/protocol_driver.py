"""The smallest blocking driver of wsio.protocol: the proof that the core is complete.

The handshake is wsio's (Upgrader, dial); after it, plain sockets and nothing but
:mod:`wsio.protocol`: bytes read straight into the protocol's buffer, events echoed,
``data_to_send()`` written, the socket closed when ``close_expected()``::

    python -m compliance.protocol_driver serve --host 127.0.0.1 --port 9002
    python -m compliance.protocol_driver client ws://127.0.0.1:9001 wsio-protocol
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
from urllib.parse import quote

import wsio
from wsio import wsflate
from wsio.protocol import (
    BinaryMessage,
    ClientProtocol,
    PerMessageDeflate,
    Protocol,
    ServerProtocol,
    TextMessage,
)


def drive(conn: wsio.Conn, proto: Protocol) -> None:
    """Echo every message until the protocol says the connection is done; close it."""
    try:
        while not proto.close_expected():
            n = conn.recv_into(proto.get_buffer())
            if n:
                proto.buffer_updated(n)
            else:
                proto.receive_eof()
            # Messages that came before a Close (or a violation) are still echoed: the
            # protocol sends its Close after them.
            for event in proto.events_received():
                if isinstance(event, TextMessage):
                    proto.send_text(event.data)
                elif isinstance(event, BinaryMessage):
                    proto.send_binary(event.data)
            for buffer in proto.data_to_send():
                conn.sendall(buffer)
        if isinstance(proto, ClientProtocol):
            # RFC 6455 §7.1.1: the client waits for the server to close TCP first.
            conn.settimeout(5.0)
            while conn.recv(65536):
                pass
    except OSError:
        pass
    finally:
        conn.close()


def serve(host: str, port: int, deflate: bool) -> None:
    """Accept connections on host:port, a thread each, until interrupted."""
    with socket.create_server((host, port)) as listener:
        print(f"listening on {host}:{port}", flush=True)
        while True:
            sock, _ = listener.accept()
            threading.Thread(target=serve_one, args=(sock, deflate), daemon=True).start()


def serve_one(sock: socket.socket, deflate: bool) -> None:
    """Upgrade ``sock`` (permessage-deflate accepted if ``deflate``), then echo on it."""
    extension = wsflate.Extension(parameters=wsflate.Parameters()) if deflate else None
    upgrader = wsio.Upgrader(negotiate=extension.negotiate if extension else None)
    try:
        conn, _ = upgrader.upgrade_conn(sock)
    except (wsio.HandshakeError, OSError):
        sock.close()
        return
    agreed = extension.accepted() if extension else None
    drive(conn, ServerProtocol(extensions=[PerMessageDeflate(agreed)] if agreed else []))


def _dial(url: str, deflate: bool) -> tuple[wsio.Conn, list[PerMessageDeflate]]:
    if not deflate:
        conn, _ = wsio.dial(url, proxy=None, timeout=30.0)
        return conn, []
    extension = wsflate.Extension(
        parameters=wsflate.Parameters(client_no_context_takeover=True, client_max_window_bits=True)
    )
    conn, _ = wsio.dial(
        url,
        proxy=None,
        timeout=30.0,
        extensions=[extension.offer()],
        accept_extensions=extension.accept_extensions,
    )
    agreed = extension.accepted()
    return conn, [PerMessageDeflate(agreed)] if agreed else []


def client(url: str, agent: str, deflate: bool) -> None:
    """Run every case of the fuzzing server at ``url``, then update its reports."""
    base, agent = url.rstrip("/"), quote(agent)
    conn, _ = _dial(f"{base}/getCaseCount", False)
    proto = ClientProtocol()
    count: list[int] = []
    while not count:
        data = conn.recv(65536)
        proto.receive_data(data) if data else proto.receive_eof()
        count += [int(e.data) for e in proto.events_received() if isinstance(e, TextMessage)]
        if not data:
            break
    conn.close()
    print(f"{count[0]} cases", flush=True)
    for case in range(1, count[0] + 1):
        try:
            conn, extensions = _dial(f"{base}/runCase?case={case}&agent={agent}", deflate)
        except (wsio.HandshakeError, OSError) as err:
            print(f"case {case}: {err!r}", file=sys.stderr, flush=True)
            continue
        drive(conn, ClientProtocol(extensions=extensions))
    conn, _ = _dial(f"{base}/updateReports?agent={agent}", False)
    drive(conn, ClientProtocol())
    print("reports updated", flush=True)


def main(argv: list[str] | None = None) -> int:
    """``serve`` or ``client``, as the module docstring shows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    server_args = sub.add_parser("serve")
    server_args.add_argument("--host", default="127.0.0.1")
    server_args.add_argument("--port", type=int, default=9002)
    server_args.add_argument("--no-deflate", action="store_true")
    client_args = sub.add_parser("client")
    client_args.add_argument("url")
    client_args.add_argument("agent", nargs="?", default="wsio-protocol")
    client_args.add_argument("--deflate", action="store_true")
    args = parser.parse_args(argv)
    if args.mode == "serve":
        try:
            serve(args.host, args.port, not args.no_deflate)
        except KeyboardInterrupt:
            pass
    else:
        client(args.url, args.agent, args.deflate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
