"""A wsio client for the Autobahn|Testsuite's fuzzing server: Dialer + wsutil, blocking.

Speaks the suite's protocol: ``/getCaseCount`` sends the number of cases as a text
message; for each case N, ``/runCase?case=N&agent=AGENT`` is a connection on which
every message is echoed until the server closes it; ``/updateReports?agent=AGENT``
writes the reports. Messages are streamed back with a Reader and a Writer as in
echo_low_level.py, on the client side (every frame masked)::

    wstest --mode fuzzingserver --spec fuzzingserver.json   # listens on :9001
    python examples/autobahn_client.py ws://127.0.0.1:9001 wsio
"""

from __future__ import annotations

import argparse
import shutil
import sys
from urllib.parse import quote

import wsio
from wsio import wsutil

STATE = wsio.State.CLIENT_SIDE

# The fuzzing server is on loopback: never go through a proxy from the environment.
DIALER = wsio.Dialer(proxy=None, timeout=30.0)


def echo(conn: wsio.Conn) -> None:
    """Echo every message until the closing handshake or a protocol error ends it."""
    controls = wsutil.ControlHandler(conn, STATE)
    reader = wsutil.Reader(conn, STATE, on_intermediate=controls.handle)
    writer = wsutil.Writer(conn, STATE, wsio.OpCode.TEXT)
    try:
        while True:
            header = reader.next_frame()
            if wsio.is_control(header.opcode):
                controls.handle(header, reader.read())  # ClosedError after a close
                continue
            writer.reset(conn, STATE, header.opcode)
            shutil.copyfileobj(reader, writer)
            writer.flush()
    except wsio.ProtocolError as err:
        # RFC 6455 §7.1.7: send the close code that answers the error, then drop.
        if not controls.close_sent:
            wsutil.write_close(conn, STATE, err.close_code)
    except (wsio.ConnectionClosed, wsio.ConnectionEOFError, OSError):
        pass


def finish(conn: wsio.Conn) -> None:
    """Wait (briefly) for the server to close TCP first, then close our end.

    RFC 6455 §7.1.1: "the server SHOULD close the underlying TCP connection
    immediately; the client SHOULD wait for the server to close the connection".
    """
    try:
        conn.settimeout(5.0)
        while conn.recv(65536):
            pass
    except OSError:
        pass
    finally:
        conn.close()


def text_message(url: str) -> str:
    """Open ``url``, read one text message, answer the server's close; return the text."""
    conn, _ = DIALER.dial(url)
    try:
        payload, _ = wsutil.read_server_data(conn)
        try:
            wsutil.read_server_data(conn)  # answers the server's Close frame
        except (wsio.ConnectionClosed, wsio.ConnectionEOFError):
            pass
        return payload.decode()
    finally:
        finish(conn)


def main(argv: list[str] | None = None) -> int:
    """Run every case of the fuzzing server at ``url`` as ``agent``; exit 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the fuzzing server, e.g. ws://127.0.0.1:9001")
    parser.add_argument("agent", nargs="?", default="wsio", help="the name in the reports")
    args = parser.parse_args(argv)
    base, agent = args.url.rstrip("/"), quote(args.agent)
    count = int(text_message(f"{base}/getCaseCount"))
    print(f"{count} cases", flush=True)
    for case in range(1, count + 1):
        print(f"case {case}/{count}", flush=True)
        try:
            conn, _ = DIALER.dial(f"{base}/runCase?case={case}&agent={agent}")
        except (wsio.HandshakeError, OSError) as err:
            print(f"case {case}: {err!r}", file=sys.stderr, flush=True)
            continue
        try:
            echo(conn)
        finally:
            finish(conn)
    conn, _ = DIALER.dial(f"{base}/updateReports?agent={agent}")
    try:
        wsutil.read_server_data(conn)
    except (TimeoutError, wsio.ConnectionClosed, wsio.ConnectionEOFError):
        pass
    finally:
        finish(conn)
    print("reports updated", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
