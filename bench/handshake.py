"""Opening handshakes per second, server side: wsio's Upgrader vs websockets and picows.

Run as ``python -m bench.handshake`` (``--quick`` for a short run); the tables go to
stdout and to ``bench/results/handshake.md``.

1. **Socket pair** — one thread, one connected ``socket.socketpair()``: the client end
   writes a pre-built request, the server end is upgraded, the client end reads the
   101. wsio: ``Upgrader.upgrade(sock)`` (peek, parse in place, one ``sendall``), in the
   compiled and the pure-Python engine. websockets: its sans-IO ``ServerProtocol`` on
   the same bytes (``recv``, ``receive_data``, ``accept``, ``send_response``,
   ``sendall``). picows has no handshake API apart from its server, so it is measured
   in (2) only.
2. **Connect + upgrade + close over loopback** — a server process, and a client (this
   process) opening one TCP connection at a time: connect, send the request, read the
   101, close. Both processes are pinned to one core (on these 2-core VMs a ping-pong
   across cores measures wake-up latency, not the libraries), so the rate counts the
   client's work too; the server's own CPU time per handshake is read from
   ``/proc/<pid>/stat``. Servers: wsio ``Upgrader`` in the accept loop and with a thread
   per connection; websockets ``sync.server.serve`` (a thread per connection) and
   ``asyncio.server.serve``; picows ``ws_create_server`` on uvloop.

Best of several rounds for (1); one timed window after a warm-up for (2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "handshake.md"
ROOT = Path(__file__).resolve().parent.parent

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
REQUEST = (
    "GET /chat HTTP/1.1\r\n"
    "Host: 127.0.0.1\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    f"Sec-WebSocket-Key: {KEY}\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Origin: http://127.0.0.1\r\n"
    "User-Agent: bench/1.0\r\n"
    "\r\n"
).encode()


# -- 1. socket pair ----------------------------------------------------------------------


def _read_response(sock: socket.socket) -> None:
    data = sock.recv(4096)
    while not data.endswith(b"\r\n\r\n"):
        more = sock.recv(4096)
        if not more:
            raise EOFError("server closed")
        data += more


def wsio_socketpair(n: int) -> float:
    """Seconds for ``n`` Upgrader.upgrade calls on one socket pair."""
    import wsio

    server, client = socket.socketpair()
    upgrader = wsio.Upgrader()
    with server, client:
        start = time.perf_counter()
        for _ in range(n):
            client.sendall(REQUEST)
            upgrader.upgrade(server)
            _read_response(client)
        return time.perf_counter() - start


def websockets_socketpair(n: int) -> float:
    """Seconds for ``n`` websockets ServerProtocol handshakes on one socket pair."""
    from websockets.server import ServerProtocol

    server, client = socket.socketpair()
    with server, client:
        start = time.perf_counter()
        for _ in range(n):
            client.sendall(REQUEST)
            protocol = ServerProtocol()
            protocol.receive_data(server.recv(65536))
            (request,) = protocol.events_received()
            protocol.send_response(protocol.accept(request))  # type: ignore[arg-type]
            for data in protocol.data_to_send():
                server.sendall(data)
            _read_response(client)
        return time.perf_counter() - start


def best_rate(function: Callable[[int], float], n: int, rounds: int) -> float:
    """Handshakes per second, best of ``rounds``."""
    function(max(10, n // 10))  # warm-up
    return max(n / function(n) for _ in range(rounds))


def socketpair_results(n: int, rounds: int) -> dict[str, float]:
    import wsio

    mode = "compiled" if wsio.COMPILED else "pure"
    return {
        f"wsio ({mode})": best_rate(wsio_socketpair, n, rounds),
        "websockets ServerProtocol": best_rate(websockets_socketpair, n, rounds),
    }


# -- 2. servers ----------------------------------------------------------------------------


def serve_wsio(listener: socket.socket, threaded: bool) -> None:
    import wsio

    upgrader = wsio.Upgrader()

    def handle(sock: socket.socket) -> None:
        with sock:
            try:
                upgrader.upgrade(sock)
            except (wsio.HandshakeError, OSError):
                pass

    while True:
        sock, _ = listener.accept()
        if threaded:
            threading.Thread(target=handle, args=(sock,), daemon=True).start()
        else:
            handle(sock)


def serve_websockets_sync(listener: socket.socket) -> None:
    from websockets.sync.server import serve

    def handler(ws: Any) -> None:
        pass

    with serve(handler, sock=listener, compression=None) as server:
        server.serve_forever()


def serve_websockets_asyncio(listener: socket.socket) -> None:
    from websockets.asyncio.server import serve

    async def handler(ws: Any) -> None:
        pass

    async def main() -> None:
        async with serve(handler, sock=listener, compression=None) as server:
            await server.serve_forever()

    asyncio.run(main())


def serve_picows(listener: socket.socket) -> None:
    import uvloop
    from picows import WSListener, ws_create_server

    class Listener(WSListener):
        pass

    async def main() -> None:
        server = await ws_create_server(lambda request: Listener(), sock=listener)
        await server.serve_forever()

    uvloop.run(main())


SERVERS: dict[str, Callable[[socket.socket], None]] = {
    "wsio Upgrader (accept loop)": lambda s: serve_wsio(s, threaded=False),
    "wsio Upgrader (thread per connection)": lambda s: serve_wsio(s, threaded=True),
    "websockets sync (thread per connection)": serve_websockets_sync,
    "websockets asyncio": serve_websockets_asyncio,
    "picows (uvloop)": serve_picows,
}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _one_connection(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(REQUEST)
        data = sock.recv(4096)
        while b"\r\n\r\n" not in data:
            more = sock.recv(4096)
            if not more:
                raise EOFError("server closed before the response ended")
            data += more
        if not data.startswith(b"HTTP/1.1 101 "):
            raise RuntimeError(f"no 101: {data[:80]!r}")


def loopback_result(name: str, seconds: float, env: dict[str, str]) -> tuple[float, float]:
    """(handshakes per second, server CPU microseconds per handshake) for server ``name``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.handshake", "--serve", name],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(proc.pid, {0})
            os.sched_setaffinity(0, {0})
        for _ in range(200):  # warm-up
            _one_connection(port)
        count = 0
        cpu = _cpu_seconds(proc.pid)
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            for _ in range(50):
                _one_connection(port)
            count += 50
        elapsed = time.perf_counter() - start
        cpu = _cpu_seconds(proc.pid) - cpu
        return count / elapsed, cpu / count * 1e6
    finally:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
        proc.terminate()
        proc.wait(timeout=10)


# -- report ------------------------------------------------------------------------------


def _self(args: list[str], pure: bool) -> Any:
    env = dict(os.environ)
    if pure:
        env["WSIO_PURE"] = "1"
    else:
        env.pop("WSIO_PURE", None)
    out = subprocess.run(
        [sys.executable, "-m", "bench.handshake", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def _ratio(value: float, other: float) -> str:
    return f"{value / other:.2f}×" if other else "-"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (rough numbers)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--socketpair-json", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve:
        listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        print(listener.getsockname()[1], flush=True)
        SERVERS[args.serve](listener)
        return
    if args.socketpair_json:
        print(json.dumps(socketpair_results(args.socketpair_json, 3 if args.quick else 7)))
        return

    n = 2000 if args.quick else 10000
    seconds = 1.0 if args.quick else 3.0
    quick = ["--quick"] if args.quick else []
    pair = _self(["--socketpair-json", str(n), *quick], pure=False)
    pure = _self(["--socketpair-json", str(n), *quick], pure=True)
    pair["wsio (pure)"] = pure["wsio (pure)"]
    base = pair["websockets ServerProtocol"]
    lines = [
        "# Opening handshake, server side",
        "",
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs ({platform.platform()}). `python -m bench.handshake"
        f"{' --quick' if args.quick else ''}`. All rows of a table come from the same run:",
        "compare within a table (absolute rates move with the machine's load).",
        "",
        "## 1. Upgrade on a connected socket pair (one thread)",
        "",
        "| server | handshakes/s | vs websockets |",
        "| --- | ---: | ---: |",
    ]
    lines.extend(
        f"| {name} | {pair[name]:,.0f} | {_ratio(pair[name], base)} |"
        for name in ("wsio (compiled)", "wsio (pure)", "websockets ServerProtocol")
        if name in pair
    )

    lines += [
        "",
        "## 2. Connect + upgrade + close over loopback (client and server on one core)",
        "",
        "| server | handshakes/s | server CPU µs/handshake | rate vs websockets sync |",
        "| --- | ---: | ---: | ---: |",
    ]
    env = dict(os.environ)
    env.pop("WSIO_PURE", None)
    full = {name: loopback_result(name, seconds, env) for name in SERVERS}
    sync_rate = full["websockets sync (thread per connection)"][0]
    for name, (rate, cpu) in full.items():
        lines.append(f"| {name} | {rate:,.0f} | {cpu:,.0f} | {_ratio(rate, sync_rate)} |")
    lines.append("")
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
