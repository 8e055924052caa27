"""Echo round trips and one-way throughput over loopback: wsio blocking vs its peers.

Run as ``python -m bench.echo`` (``--quick`` for a short run); the tables go to stdout
and to ``bench/results/echo.md``.

Servers run in a subprocess of their own, a thread per connection: **wsio** (``Upgrader``
+ ``wsutil.Reader``/``Writer``: the payload is read into one reused buffer with
``readinto`` and written back from it), **wsio.sync** (``wsio.sync.serve``: the
high-level connection, ``for message in ws: ws.send(message)``), **wsutil** (the
seed's shape: ``read_client_data`` / ``write_server_message``, a call each per message),
**websockets**
(``websockets.sync.server``), and
a **plain socket** server that echoes the same bytes (``recv_into`` + ``sendall``): the
ceiling. Clients run in this process: **wsio** (``Dialer`` + ``Reader``/``Writer``),
**wsio.sync** (``connect``, ``send`` + ``recv``), **wsutil** (``write_client_message``
+ ``read_server_data``), **websockets**
(``websockets.sync.client``), **websocket-client** and the plain socket.
Every socket has TCP_NODELAY, as the peers set it themselves.

1. **Round trips**: one connection; send a binary message (32 B, 8 KiB, 1 MiB), read
   its echo, repeat for a timed window. Also the CPU time of client + server per round trip
   (``time.process_time`` here, ``/proc/<pid>/stat`` for the server).
2. **One-way throughput**: one connection; send 1 MiB or 16 MiB binary messages for a
   timed window; the server reads and drops them (wsio streams them through its
   reused buffer; websockets assembles each message, its ordinary API), then answers
   a final ``done`` with ``ok``. The wsio client streams a message 1 MiB at a time
   (a fragment per write, no copy of the whole message) and the plain socket sends it
   1 MiB per ``sendall``; the peers send a message with one call, their API.
   MB/s = 10^6 bytes of payload per second.

Each figure is the best of three 1-second windows, each on a new connection, the pairs
taking turns (other processes on a small VM only ever slow a window down, and a busy
spell is spread over all pairs); ``--quick``: one 0.5 s window.

Each runs twice: with client and server pinned to the same core (``sched_setaffinity``),
and unpinned. On a 2-core VM a single-connection ping-pong across cores measures the
kernel's wake-up latency more than the libraries; pinned, each round trip is two
context switches on one core, and the CPU time per message is the fair comparison.
"""

from __future__ import annotations

import argparse
import functools
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

RESULTS = Path(__file__).resolve().parent / "results" / "echo.md"
ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
BUFFER = 1 << 16  # the read buffer every wsio and plain-socket loop reuses
ECHO_SIZES = (32, 8192, 1 << 20)  # round-trip payload sizes
LARGE = (1 << 20, 16 << 20)  # throughput message sizes
CHUNK = 1 << 20  # wsio and the plain socket send large messages this much at a time


def _nodelay(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# -- servers (each runs in a subprocess: python -m bench.echo --serve NAME) -------------


def _accept_loop(listener: socket.socket, handle: Callable[[socket.socket], None]) -> None:
    while True:
        sock, _ = listener.accept()
        _nodelay(sock)
        threading.Thread(target=handle, args=(sock,), daemon=True).start()


def serve_plain(listener: socket.socket) -> None:
    """b"E": echo every byte until end of stream. b"S": read to end of stream, answer b"K"."""

    def handle(sock: socket.socket) -> None:
        buffer = bytearray(BUFFER)
        view = memoryview(buffer)
        with sock:
            mode = sock.recv(1)
            while n := sock.recv_into(buffer):
                if mode == b"E":
                    sock.sendall(view[:n])
            if mode == b"S":
                sock.sendall(b"K")

    _accept_loop(listener, handle)


def serve_wsio(listener: socket.socket) -> None:
    """The first message says "echo" (stream each message back) or "sink" (drop them)."""
    import wsio
    from wsio import wsutil

    upgrader = wsio.Upgrader()
    state = wsio.State.SERVER_SIDE

    def handle(sock: socket.socket) -> None:
        with sock:
            conn, _ = upgrader.upgrade_conn(sock)
            controls = wsutil.ControlHandler(conn, state)
            reader = wsutil.Reader(
                conn, state, on_intermediate=controls.handle, max_message_size=1 << 30
            )
            writer = wsutil.Writer(conn, state, wsio.OpCode.BINARY)
            buffer = bytearray(BUFFER)
            view = memoryview(buffer)
            reader.next_frame()
            echo = reader.read() == b"echo"
            try:
                while True:
                    header = reader.next_frame()
                    if wsio.is_control(header.opcode):
                        controls.handle(header, reader.read())
                    elif echo:
                        writer.reset_op(header.opcode)
                        while n := reader.readinto(view):
                            writer.write(view[:n])
                        writer.flush()
                    elif header.opcode == wsio.OpCode.TEXT:  # "done"
                        reader.discard()
                        wsutil.write_server_text(conn, b"ok")
                    else:
                        while reader.readinto(view):
                            pass
            except (wsio.ConnectionClosed, wsio.ConnectionEOFError, OSError):
                pass

    _accept_loop(listener, handle)


def serve_wsutil(listener: socket.socket) -> None:
    """The seed's shape: ``read_client_data`` / ``write_server_message`` per message."""
    import wsio
    from wsio import wsutil

    upgrader = wsio.Upgrader()

    def handle(sock: socket.socket) -> None:
        with sock:
            upgrader.upgrade(sock)
            try:
                echo = wsutil.read_client_data(sock)[0] == b"echo"
                while True:
                    payload, op = wsutil.read_client_data(sock)
                    if echo:
                        wsutil.write_server_message(sock, op, payload)
                    elif op == wsio.OpCode.TEXT:  # "done"
                        wsutil.write_server_text(sock, b"ok")
            except (wsio.ConnectionClosed, wsio.ConnectionEOFError, OSError):
                pass

    _accept_loop(listener, handle)


class _MessageConnection(Protocol):
    def recv(self) -> str | bytes: ...
    def send(self, message: str | bytes) -> None: ...
    def __iter__(self) -> Iterator[str | bytes]: ...


def _answer(ws: _MessageConnection) -> None:
    """The bench protocol on a high-level connection: "echo" then every message back, or
    one-way messages answered "ok" at the text that ends a run."""
    if ws.recv() == "echo":
        for message in ws:
            ws.send(message)
    else:
        for message in ws:
            if isinstance(message, str):
                ws.send("ok")


def serve_websockets(listener: socket.socket) -> None:
    """The same protocol on websockets' threaded server and its ordinary API."""
    from websockets.exceptions import ConnectionClosedError
    from websockets.sync.server import ServerConnection, serve

    def handler(ws: ServerConnection) -> None:
        try:
            _answer(ws)
        except ConnectionClosedError:
            pass  # a client that ends its run without a Close: no traceback in the output

    with serve(handler, sock=listener, compression=None, max_size=None) as server:
        server.serve_forever()


def serve_wsio_sync(listener: socket.socket) -> None:
    """The same protocol on wsio.sync, its ordinary API (whole messages, owned copies)."""
    from wsio.sync import serve

    with serve(_answer, sock=listener, compression=None, max_message_size=None) as server:
        server.serve_forever()


SERVERS: dict[str, Callable[[socket.socket], None]] = {
    "plain": serve_plain,
    "wsio": serve_wsio,
    "wsio.sync": serve_wsio_sync,
    "wsutil": serve_wsutil,
    "websockets": serve_websockets,
}


# -- clients (in this process) -----------------------------------------------------------


class Client(Protocol):
    def roundtrip(self, payload: bytes) -> None: ...
    def send(self, payload: bytes) -> None: ...
    def finish(self) -> None: ...
    def close(self) -> None: ...


class PlainClient:
    """The ceiling: the bytes of each frame as the WebSocket client would send them."""

    def __init__(self, port: int, mode: str) -> None:
        self.sock = socket.create_connection((HOST, port))
        _nodelay(self.sock)
        self.sock.sendall(b"E" if mode == "echo" else b"S")
        self.buffer = bytearray(BUFFER)
        self.view = memoryview(self.buffer)

    def roundtrip(self, payload: bytes) -> None:
        self.sock.sendall(payload)
        left = len(payload)
        while left:
            n = self.sock.recv_into(self.view[: min(left, BUFFER)])
            if not n:
                raise EOFError
            left -= n

    def send(self, payload: bytes) -> None:
        view = memoryview(payload)
        for start in range(0, len(view), CHUNK):
            self.sock.sendall(view[start : start + CHUNK])

    def finish(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)
        assert self.sock.recv(1) == b"K"

    def close(self) -> None:
        self.sock.close()


class WsioClient:
    """Dialer + Reader/Writer: messages written from, and read into, reused buffers."""

    def __init__(self, port: int, mode: str) -> None:
        import wsio
        from wsio import wsutil

        self.conn, _ = wsio.Dialer(proxy=None).dial(f"ws://{HOST}:{port}/")
        state = wsio.State.CLIENT_SIDE
        self.reader = wsutil.Reader(self.conn, state, max_message_size=1 << 30)
        self.writer = wsutil.Writer(self.conn, state, wsio.OpCode.BINARY, buffer_size=BUFFER)
        self.buffer = bytearray(BUFFER)
        self.view = memoryview(self.buffer)
        wsutil.write_client_text(self.conn, mode.encode())

    def roundtrip(self, payload: bytes) -> None:
        self.writer.write(payload)
        self.writer.flush()
        self.reader.next_frame()
        while self.reader.readinto(self.view):
            pass

    def send(self, payload: bytes) -> None:
        # Streamed: the message is written CHUNK bytes at a time, each sent as a
        # fragment straight from the caller's buffer (masked into a scratch copy, as a
        # client must); no copy of the whole message is ever made.
        view = memoryview(payload)
        for start in range(0, len(view), CHUNK):
            self.writer.write(view[start : start + CHUNK])
        self.writer.flush()

    def finish(self) -> None:
        from wsio import wsutil

        wsutil.write_client_text(self.conn, b"done")
        assert wsutil.read_server_text(self.conn) == b"ok"

    def close(self) -> None:
        self.conn.close()


class WsioSyncClient:
    """wsio.sync.connect: ``send`` a message, ``recv`` the echo (an owned copy)."""

    def __init__(self, port: int, mode: str) -> None:
        from wsio.sync import connect

        self.ws = connect(
            f"ws://{HOST}:{port}/", proxy=None, compression=None, max_message_size=None
        ).open()
        self.ws.send(mode)

    def roundtrip(self, payload: bytes) -> None:
        self.ws.send(payload)
        self.ws.recv()

    def send(self, payload: bytes) -> None:
        self.ws.send(payload)

    def finish(self) -> None:
        self.ws.send("done")
        assert self.ws.recv() == "ok"

    def close(self) -> None:
        self.ws.close()


class WsutilClient:
    """The seed's shape: ``write_client_message`` / ``read_server_data`` per message."""

    def __init__(self, port: int, mode: str) -> None:
        import wsio
        from wsio import wsutil

        self.sock, _ = wsio.Dialer(proxy=None).dial(f"ws://{HOST}:{port}/")
        self.write = wsutil.write_client_message
        self.read = wsutil.read_server_data
        wsutil.write_client_text(self.sock, mode.encode())

    def roundtrip(self, payload: bytes) -> None:
        self.write(self.sock, 2, payload)
        self.read(self.sock)

    def send(self, payload: bytes) -> None:
        self.write(self.sock, 2, payload)

    def finish(self) -> None:
        self.write(self.sock, 1, b"done")
        assert self.read(self.sock)[0] == b"ok"

    def close(self) -> None:
        self.sock.close()


class WebsocketsClient:
    def __init__(self, port: int, mode: str) -> None:
        from websockets.sync.client import connect

        self.ws = connect(f"ws://{HOST}:{port}/", compression=None, max_size=None)
        self.ws.send(mode)

    def roundtrip(self, payload: bytes) -> None:
        self.ws.send(payload)
        self.ws.recv()

    def send(self, payload: bytes) -> None:
        self.ws.send(payload)

    def finish(self) -> None:
        self.ws.send("done")
        assert self.ws.recv() == "ok"

    def close(self) -> None:
        self.ws.close()


class WebsocketClientClient:
    def __init__(self, port: int, mode: str) -> None:
        import websocket

        self.ws = websocket.create_connection(
            f"ws://{HOST}:{port}/", enable_multithread=False, skip_utf8_validation=True
        )
        self.ws.send(mode)

    def roundtrip(self, payload: bytes) -> None:
        self.ws.send_binary(payload)
        self.ws.recv()

    def send(self, payload: bytes) -> None:
        self.ws.send_binary(payload)

    def finish(self) -> None:
        self.ws.send("done")
        assert self.ws.recv() == "ok"

    def close(self) -> None:
        self.ws.close()


CLIENTS: dict[str, Callable[[int, str], Client]] = {
    "plain": PlainClient,
    "wsio": WsioClient,
    "wsio.sync": WsioSyncClient,
    "wsutil": WsutilClient,
    "websockets": WebsocketsClient,
    "websocket-client": WebsocketClientClient,
}

#: (server, client) pairs: the same library on both ends, then each client against the
#: wsio server and the wsio client against the websockets server.
PAIRS = [
    ("plain", "plain"),
    ("wsio", "wsio"),
    ("websockets", "websockets"),
    ("websockets", "websocket-client"),
    ("wsio", "websockets"),
    ("wsio", "websocket-client"),
    ("websockets", "wsio"),
    ("wsio.sync", "wsio.sync"),
    ("wsio.sync", "websockets"),
    ("websockets", "wsio.sync"),
    ("wsutil", "wsutil"),
]


def _plain_bytes(size: int) -> bytes:
    """What a client puts on the wire for a ``size``-byte masked frame."""
    header = 2 + (0 if size < 126 else 2 if size < 65536 else 8) + 4
    return os.urandom(header + size)


# -- measurement -----------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@contextmanager
def _servers(pinned: bool) -> Iterator[dict[str, tuple[int, int]]]:
    """Start every server; yield {name: (port, pid)}; pinned: them and us on core 0."""
    procs = {
        name: subprocess.Popen(  # the same engine (WSIO_PURE or not) as this process
            [sys.executable, "-m", "bench.echo", "--serve", name],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in SERVERS
    }
    everything = os.sched_getaffinity(0)
    try:
        running = {}
        for name, proc in procs.items():
            assert proc.stdout is not None
            running[name] = (int(proc.stdout.readline()), proc.pid)
            if pinned:
                os.sched_setaffinity(proc.pid, {0})
        if pinned:
            os.sched_setaffinity(0, {0})
        yield running
    finally:
        os.sched_setaffinity(0, everything)
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=10)


@dataclass
class Result:
    rate: float  # round trips per second, or MB/s
    cpu: float  # client + server CPU: µs per round trip, or ms per MB


def roundtrips(client: str, port: int, pid: int, seconds: float, size: int) -> Result:
    """One window: round trips per second and client + server CPU µs per round trip."""
    payload = _plain_bytes(size) if client == "plain" else os.urandom(size)
    batch = max(1, min(200, (1 << 20) // size))
    c = CLIENTS[client](port, "echo")
    try:
        for _ in range(min(500, 4 * batch)):
            c.roundtrip(payload)
        count = 0
        cpu = time.process_time() + _cpu_seconds(pid)
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            for _ in range(batch):
                c.roundtrip(payload)
            count += batch
        elapsed = time.perf_counter() - start
        cpu = time.process_time() + _cpu_seconds(pid) - cpu
    finally:
        c.close()
    return Result(count / elapsed, cpu / count * 1e6)


def throughput(client: str, port: int, pid: int, seconds: float, size: int) -> Result:
    """One window: payload MB/s one way, and client + server CPU milliseconds per MB."""
    payload = _plain_bytes(size) if client == "plain" else os.urandom(size)
    c = CLIENTS[client](port, "sink")
    try:
        c.send(payload)  # warm-up
        count = 0
        cpu = time.process_time() + _cpu_seconds(pid)
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            c.send(payload)
            count += 1
        c.finish()
        elapsed = time.perf_counter() - start
        cpu = time.process_time() + _cpu_seconds(pid) - cpu
    finally:
        c.close()
    megabytes = count * size / 1e6
    return Result(megabytes / elapsed, cpu / megabytes * 1e3)


def measure(
    pinned: bool, seconds: float, rounds: int, run: Callable[[str, int, int, float], Result]
) -> dict[tuple[str, str], Result]:
    """The best of ``rounds`` windows for every pair, the pairs taking turns in each round
    so that a busy spell on the machine does not fall on one pair only."""
    best: dict[tuple[str, str], Result] = {}
    with _servers(pinned) as servers:
        for _ in range(rounds):
            for server, client in PAIRS:
                port, pid = servers[server]
                result = run(client, port, pid, seconds)
                if result.rate > best.get((server, client), Result(0.0, 0.0)).rate:
                    best[(server, client)] = result
    return {pair: best[pair] for pair in PAIRS}


# -- report ------------------------------------------------------------------------------


def _pair(server: str, client: str) -> str:
    return f"{server} ← {client}" if server != client else f"{server} ↔ {client}"


def _ratio(value: float, other: float) -> str:
    return f"{value / other:.2f}×" if other else "-"


_Pair = tuple[str, str]
_Rows = list[tuple[str, dict[_Pair, Result]]]
WEBSOCKETS: _Pair = ("websockets", "websockets")
WEBSOCKET_CLIENT: _Pair = ("websockets", "websocket-client")


@dataclass(frozen=True)
class Target:
    """One summary table: ``pair`` against the plain socket and the ``compare`` pairs."""

    heading: str
    target: str  # the sentence saying what is asked
    pair: _Pair
    ceiling: float  # the fraction of the plain socket's rate asked for
    ahead: dict[_Pair, float]  # and at least this many times each of these pairs' rates
    compare: tuple[tuple[str, _Pair], ...]  # "vs <label>" columns
    cpu: bool = True  # a "CPU vs websockets" column


TARGETS = (
    Target(
        "wsio ↔ wsio against the targets",
        "Target: at least 0.85× the plain-socket ceiling, and ahead of websockets ↔ "
        "websockets and of websocket-client (against the websockets server).",
        ("wsio", "wsio"),
        0.85,
        {WEBSOCKETS: 1.0, WEBSOCKET_CLIENT: 1.0},
        (("websockets", WEBSOCKETS), ("websocket-client", WEBSOCKET_CLIENT)),
    ),
    Target(
        "wsio.sync ↔ wsio.sync against the targets",
        "Target (issue 11): at least 0.8× the plain-socket ceiling and at least 2× "
        "websockets ↔ websockets (websockets.sync).",
        ("wsio.sync", "wsio.sync"),
        0.8,
        {WEBSOCKETS: 2.0},
        (
            ("websockets", WEBSOCKETS),
            ("websocket-client", WEBSOCKET_CLIENT),
            ("wsio (wsutil loop)", ("wsio", "wsio")),
        ),
    ),
    Target(
        "the seed-shaped wsutil loop against its target",
        "Target (issue 11): `read_client_data` / `write_server_message` (and the client's "
        "`write_client_message` / `read_server_data`) at least 0.6× the plain-socket ceiling.",
        ("wsutil", "wsutil"),
        0.6,
        {},
        (("websockets", WEBSOCKETS),),
        cpu=False,
    ),
)


def _summary(target: Target, rows: _Rows) -> list[str]:
    """``target.pair`` against its target, a row per measurement."""
    columns = ["vs plain socket", *(f"vs {label}" for label, _ in target.compare)]
    if target.cpu:
        columns.append("CPU vs websockets")
    lines = [
        f"## Summary: {target.heading}",
        "",
        target.target,
        "",
        f"| measurement | {_pair(*target.pair)} | {' | '.join(columns)} | targets |",
        f"| --- | ---: | {' | '.join('---:' for _ in columns)} | --- |",
    ]
    for title, results in rows:
        mine = results[target.pair]
        ceiling = results[("plain", "plain")].rate
        cells = [_ratio(mine.rate, ceiling)]
        cells += [_ratio(mine.rate, results[pair].rate) for _, pair in target.compare]
        if target.cpu:
            cells.append(_ratio(mine.cpu, results[WEBSOCKETS].cpu))
        met = mine.rate >= target.ceiling * ceiling and all(
            mine.rate >= factor * results[pair].rate for pair, factor in target.ahead.items()
        )
        lines.append(
            f"| {title} | {_rate(mine.rate)} | {' | '.join(cells)} | {'met' if met else 'missed'} |"
        )
    return [*lines, ""]


def _size(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size >> 10} KiB" if size < 1 << 20 else "1 MiB"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _table(
    title: str, unit: str, cpu_unit: str, results: dict[tuple[str, str], Result]
) -> list[str]:
    ceiling = results[("plain", "plain")].rate
    lines = [
        f"### {title}",
        "",
        f"| server ← client | {unit} | vs plain socket | CPU {cpu_unit} (client + server) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for (server, client), r in results.items():
        lines.append(
            f"| {_pair(server, client)} | {_rate(r.rate)} | {_ratio(r.rate, ceiling)} "
            f"| {r.cpu:,.1f} |"
        )
    wsio = results[("wsio", "wsio")].rate
    peers = ", ".join(
        f"{_ratio(wsio, results[pair].rate)} {_pair(*pair)}"
        for pair in (WEBSOCKETS, WEBSOCKET_CLIENT)
    )
    lines += ["", f"wsio ↔ wsio: {_ratio(wsio, ceiling)} of the plain socket; {peers}.", ""]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (rough numbers)")
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        listener = socket.create_server((HOST, 0), backlog=64)
        print(listener.getsockname()[1], flush=True)
        SERVERS[args.serve](listener)
        return

    from bench import machine

    seconds, rounds = (0.5, 1) if args.quick else (1.0, 3)
    lines = [
        "# Echo over loopback: wsio blocking (wsutil loop, wsio.sync) vs websockets and "
        "websocket-client",
        "",
        machine.markdown(),
        "",
        "Each row is one connection: `server ← client`. See the docstring of "
        "`bench/echo.py` for what is measured.",
        "",
    ]
    print("\n".join(lines), flush=True)
    sections: list[str] = []
    summary: list[tuple[str, dict[tuple[str, str], Result]]] = []
    for pinned in (True, False):
        where = "pinned" if pinned else "unpinned"
        section = [
            f"## {'Client and server pinned to one core' if pinned else 'Unpinned (2 cores)'}",
            "",
        ]
        for size in ECHO_SIZES:
            rtt = measure(pinned, seconds, rounds, functools.partial(roundtrips, size=size))
            label = (
                f"{size} B" if size < 1024 else f"{size >> 10} KiB" if size < 1 << 20 else "1 MiB"
            )
            section += _table(
                f"Round trips, {label} messages", "round trips/s", "µs/round trip", rtt
            )
            summary.append((f"round trips/s, {label}, {where}", rtt))
        for size in LARGE:
            one_way = measure(pinned, seconds, rounds, functools.partial(throughput, size=size))
            section += _table(
                f"One-way throughput, {size >> 20} MiB messages", "MB/s", "ms/MB", one_way
            )
            summary.append((f"MB/s, {size >> 20} MiB messages, {where}", one_way))
        print("\n".join(section), flush=True)
        sections += section
    summaries = [line for target in TARGETS for line in _summary(target, summary)]
    print("\n".join(summaries), flush=True)
    text = "\n".join([*lines, *summaries, *sections])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
