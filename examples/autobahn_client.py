"""A wsio client for the Autobahn|Testsuite's fuzzing server: Dialer + wsutil, blocking.

Speaks the suite's protocol: ``/getCaseCount`` sends the number of cases as a text
message; for each case N, ``/runCase?case=N&agent=AGENT`` is a connection on which
every message is echoed until the server closes it; ``/updateReports?agent=AGENT``
writes the reports. Messages are streamed back with a Reader and a Writer as in
echo_low_level.py, on the client side (every frame masked). With ``--deflate`` each
case offers permessage-deflate and echoes through wsflate's Reader and Writer, as
examples/wsflate_stream.py does on the server side::

    wstest --mode fuzzingserver --spec fuzzingserver.json   # listens on :9001
    python examples/autobahn_client.py ws://127.0.0.1:9001 wsio [--deflate]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from urllib.parse import quote

import wsio
from wsio import wsflate, wsutil

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


def echo_deflate(conn: wsio.Conn, params: wsflate.Parameters) -> None:
    """Echo every message, decompressing and compressing again, as the server example."""
    state = STATE | wsio.State.EXTENDED
    controls = wsutil.ControlHandler(conn, state)
    msg = wsflate.MessageState()
    rd = wsutil.Reader(conn, state, extensions=[msg], on_intermediate=controls.handle)
    wr = wsutil.Writer(conn, state, wsio.OpCode.TEXT)
    wr.set_extensions(msg)
    fr = wsflate.Reader(None, parameters=params, client=True, state=msg)
    fw = wsflate.Writer(None, parameters=params, client=True, state=msg)
    try:
        while True:
            header = rd.next_frame()
            if wsio.is_control(header.opcode):
                controls.handle(header, rd.read())  # ClosedError after a close
                continue
            wr.reset_op(header.opcode)
            compressed = msg.is_compressed()
            fr.reset(rd)
            fw.reset(wr, compress=compressed)
            shutil.copyfileobj(fr if compressed else rd, fw)
            fw.close()
            wr.flush()
    except wsio.ProtocolError as err:
        if not controls.close_sent:
            wsutil.write_close(conn, state, err.close_code)
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
    """Run every case of the fuzzing server at ``url`` as ``agent``; exit 0, or 1 with
    one line on stderr when the server cannot be reached or the URL is bad."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the fuzzing server, e.g. ws://127.0.0.1:9001")
    parser.add_argument("agent", nargs="?", default="wsio", help="the name in the reports")
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    args = parser.parse_args(argv)
    try:
        return run(args.url, args.agent, args.deflate)
    except (wsio.WebSocketError, OSError, ValueError) as error:
        print(f"{args.url}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


def run(url: str, agent_name: str, deflate: bool) -> int:
    """Every case, then the reports."""
    # The offer browsers make: this client compresses without context takeover, takes
    # any window size the server asks of it, and inflates whatever the server chooses.
    config = (
        wsflate.Parameters(client_no_context_takeover=True, client_max_window_bits=True)
        if deflate
        else None
    )
    base, agent = url.rstrip("/"), quote(agent_name)
    count = int(text_message(f"{base}/getCaseCount"))
    print(f"{count} cases", flush=True)
    for case in range(1, count + 1):
        print(f"case {case}/{count}", flush=True)
        url = f"{base}/runCase?case={case}&agent={agent}"
        # One Extension a handshake: it keeps what this handshake agreed.
        extension = wsflate.Extension(parameters=config) if config is not None else None
        try:
            if extension is None:
                conn, _ = DIALER.dial(url)
            else:
                conn, _ = wsio.dial(
                    url,
                    proxy=None,
                    timeout=30.0,
                    extensions=[extension.offer()],
                    accept_extensions=extension.accept_extensions,
                )
        except (wsio.HandshakeError, OSError) as err:
            print(f"case {case}: {err!r}", file=sys.stderr, flush=True)
            continue
        try:
            params = extension.accepted() if extension is not None else None
            if params is None:
                echo(conn)
            else:
                echo_deflate(conn, params)
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
