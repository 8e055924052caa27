"""An Upgrader that checks the Host and the cookies, and adds a header to the 101.

The twin of gobwas/ws's "real example" of zero-copy upgrade control:

- ``on_host`` refuses any Host but ``--want-host`` (default ``github.com``, as in the
  seed; a port after it is ignored) with 403 and an ``X-Want-Host`` header;
- ``on_header`` scans the ``Cookie`` header with :func:`wsio.scan_cookies` and refuses
  a malformed one with 400 "bad cookie";
- ``on_before_upgrade`` adds ``X-Python-Version`` to the 101 response.

Refusals are answered by the Upgrader and logged here as "upgrade error". After the
upgrade the connection echoes frames until Close::

    python examples/upgrade_checks.py --port 8106 --want-host localhost
"""

from __future__ import annotations

import argparse
import platform
import socket
from typing import Any

import wsio
from wsio.server import ThreadedServer


def make_upgrader(want_host: str) -> wsio.Upgrader:
    """The checking Upgrader for ``want_host``."""
    # Prepared once: the header every 101 response carries.
    python_version = {"X-Python-Version": platform.python_version()}

    def on_host(host: memoryview | bytes) -> None:
        name = bytes(host).rpartition(b":")[0] or bytes(host)
        if name.decode("latin-1").lower() == want_host.lower():
            return
        raise wsio.RejectConnectionError("", status=403, headers=[("X-Want-Host", want_host)])

    def on_header(key: memoryview | bytes, value: memoryview | bytes) -> None:
        if bytes(key) != b"Cookie":
            return
        try:
            for _name, _value in wsio.scan_cookies(value):
                pass  # check the session here; copy what you keep (value dies on return)
        except wsio.HeaderSyntaxError:
            raise wsio.RejectConnectionError("bad cookie", status=400) from None

    def on_before_upgrade() -> Any:
        return python_version

    return wsio.Upgrader(
        on_host=on_host,
        on_header=on_header,
        on_before_upgrade=on_before_upgrade,
        timeout=10.0,  # for the whole opening handshake
    )


def handle(conn: socket.socket, upgrader: wsio.Upgrader) -> None:
    """Upgrade ``conn``, then echo frames until Close."""
    with conn:
        try:
            upgrader.upgrade(conn)
        except (wsio.HandshakeError, OSError) as err:
            print(f"upgrade error: {err}", flush=True)
            return
        try:
            while True:
                frame = wsio.unmask_frame_in_place(wsio.read_frame(conn))
                wsio.write_frame(conn, frame)
                if frame.header.opcode == wsio.OpCode.CLOSE:
                    return
        except (wsio.WebSocketError, OSError):
            return


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted; print the address once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8106)
    parser.add_argument("--want-host", default="github.com", help="the one Host accepted")
    args = parser.parse_args(argv)
    upgrader = make_upgrader(args.want_host)
    with socket.create_server((args.host, args.port)) as listener:
        host, port = listener.getsockname()[:2]
        print(f"listening on {host}:{port}", flush=True)
        try:
            ThreadedServer(listener, lambda conn, _: handle(conn, upgrader)).serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
