"""Asyncio echo servers under load: picows, websockets, aiohttp and a plain TCP echo.

Run as ``python -m bench.aio_echo`` (``--quick`` for a short run); the tables go to
stdout and to ``bench/results/aio_echo.md``, a plot to ``bench/results/aio_echo.png``
when matplotlib is installed.

Every server runs in a subprocess of its own, once on asyncio's default loop and once on
uvloop, written the way its library shows a fast echo with its default limits on
(``bench/_aio_servers.py``; ``SERVERS`` below is the registry of their commands). The
load client (``bench/_aio_client.py``) sends frames built and masked once before a
window, and counts echoed bytes (an echo of a known message has a known size; the first
one on each connection, and one after each ping-pong window, is parsed and compared), so
its cost per message is a few system calls. How we know it is not the bottleneck is in
the tables: in 1 its CPU per echo next to the server's; in 2 and 4 the server's wall
time split into busy, preempted (by other processes on its core) and idle (waiting for
the client: near 0 means the client kept it fed); and the same client drives the plain
TCP echo several times faster than any WebSocket server.

1. **Ping-pong**: one connection, client and server pinned to the same core
   (``sched_setaffinity``); binary messages of 32 B, 256 B, 8 KiB, 100 KiB and 1 MiB;
   echoes/s, and CPU per echo of the server (``/proc/PID/stat`` utime + stime) and of
   the client (``time.process_time``).
2. **Many connections**: 100 and 1,000 connections, 4 messages in flight on each
   (32 B, 256 B and 8 KiB), server pinned to core 1 and the client to core 0; echoes/s,
   server CPU per echo, the server's busy / preempted (``run_delay`` in
   ``/proc/PID/schedstat``) / idle split and the client's CPU, as shares of the window.
3. **Idle memory**: the server's RSS (``/proc/PID/status`` VmRSS) before and after
   10,000 upgraded, idle connections, divided by 10,000 (RLIMIT_NOFILE raised here and,
   with a preexec_fn, in the servers). A fresh set of servers, unpinned. Then the same
   with permessage-deflate offered (servers that have it, at their defaults).
4. **Handshakes**: connect, upgrade, close frame both ways and end of stream, 64 at a
   time, server on core 1, client on core 0; handshakes/s and server CPU per handshake.
5. **Compressed ping-pong**: as 1, text (JSON-ish, compressible) at 256 B, 8 KiB and
   100 KiB, the client offering permessage-deflate; each server at its default
   (picows has no compression and the plain TCP echo no protocol: both left out). A
   connection sends different messages in turn, at least 64 KiB of them
   (``bench.compressed_echo.messages``): one message echoed again and again would be
   found whole in a compressor's kept window.
6. **Instructions per echo**: as 1 at 32 B and 8 KiB, the server running under
   ``valgrind --tool=callgrind``: the user-space instructions it executed (callgrind's
   Ir) between two counter resets, per echo. Unlike time, this does not depend on what
   else the machine runs, so its ratios are repeatable on a shared machine; it leaves out
   the kernel (the same system calls for every server, within one or two per echo) and
   cache misses. Needs valgrind (skipped, and said so, without it).

Figures are the best of several windows; within a round the servers take turns, so a
busy spell of the machine is spread over all of them. Only ratios within one run mean
much: the absolute numbers depend on what else the machine is running. Connections in
1, 2 and 5 live a few seconds, less than websockets' 20 s keepalive ping, so no control
frame enters the byte counts; the clients end them with the closing handshake.
``--tests`` and ``--servers`` run a part (printed, not written).
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import Table, _aio_client as client, humanize_size, ratio

RESULTS = Path(__file__).resolve().parent / "results" / "aio_echo.md"
PLOT = RESULTS.with_suffix(".png")
ROOT = Path(__file__).resolve().parent.parent

#: Row name -> the command that starts that echo server. ``--loop asyncio`` or ``--loop
#: uvloop`` is appended; the server prints a line ending in its port, then serves on
#: 127.0.0.1 until terminated. A server is one line here and its limits in
#: bench/_aio_servers.LIMITS; every table, ratio and the plot pick it up.
SERVERS: dict[str, list[str]] = {
    "tcp": [sys.executable, "-m", "bench._aio_servers", "tcp"],
    "picows": [sys.executable, "-m", "bench._aio_servers", "picows"],
    "websockets": [sys.executable, "-m", "bench._aio_servers", "websockets"],
    "aiohttp": [sys.executable, "-m", "bench._aio_servers", "aiohttp"],
    "wsio-aio-callback": [sys.executable, "-m", "bench._aio_servers", "wsio-aio-callback"],
    "wsio-aio": [sys.executable, "-m", "bench._aio_servers", "wsio-aio"],
}
#: Servers that echo bytes, not messages (no handshake, no frames): the ceiling.
RAW = {"tcp"}
#: The server every other one is compared with, on the same loop.
REFERENCE = "picows"
#: Servers left out of test 5: they have no permessage-deflate (picows declines it).
NO_DEFLATE = {"tcp", "picows"}
#: The reference of test 5.
DEFLATE_REFERENCE = "websockets"
LOOPS = ("asyncio", "uvloop")

PING_SIZES = (32, 256, 8 << 10, 100 << 10, 1 << 20)
LOAD_SIZES = (32, 256, 8 << 10)
CONNECTIONS = (100, 1000)
DEPTH = 4  # messages in flight per connection in test 2
IDLE = 10_000
CONCURRENCY = 64  # handshakes at a time in test 4 (16 left the servers idle between them)
DEFLATE_SIZES = (256, 8 << 10, 100 << 10)
CONTENDED = 0.25  # a summary rate is marked when a server was preempted this much
CALLGRIND_SIZES = (32, 8 << 10)
CALLGRIND_ECHOES = 2000  # counted per size, after CALLGRIND_WARM not counted
CALLGRIND_WARM = 300

Row = tuple[str, str]  # server name, loop


def _label(row: Row) -> str:
    return f"{row[0]} ({row[1]})"


#: The servers this run measures (``--servers``; the reference always among them).
_selected: list[str] = list(SERVERS)


def _rows() -> list[Row]:
    return [(name, loop) for name in _selected for loop in LOOPS]


# -- processes ---------------------------------------------------------------------------


def _raise_nofile() -> None:
    """Lift the soft limit on open files to the hard one (10,000 sockets in test 3)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _proc_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid``, all its threads."""
    fields = _proc_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_seconds(pid: int) -> float:
    """Seconds the main thread of ``pid`` was runnable but not running (run_delay)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Server:
    port: int
    pid: int
    websocket: bool


def _port(line: str) -> int:
    digits = line.strip().rsplit(":", 1)[-1].rsplit(" ", 1)[-1]
    if not digits.isdigit():
        raise RuntimeError(f"the server did not say its port: {line!r}")
    return int(digits)


@contextmanager
def servers(cpus: set[int] | None, client_cpus: set[int] | None) -> Iterator[dict[Row, Server]]:
    """Start every server on every loop; yield {row: Server}. ``cpus``: pin the servers
    there, ``client_cpus``: pin this process there (both restored after)."""
    procs = {  # every row in _rows() (the tests that leave some out skip them)
        row: subprocess.Popen(
            [*SERVERS[row[0]], "--loop", row[1]],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=_raise_nofile,
        )
        for row in _rows()
    }
    everything = os.sched_getaffinity(0)
    try:
        running = {}
        for row, proc in procs.items():
            assert proc.stdout is not None
            running[row] = Server(_port(proc.stdout.readline()), proc.pid, row[0] not in RAW)
            if cpus is not None:
                os.sched_setaffinity(proc.pid, cpus)
        if client_cpus is not None:
            os.sched_setaffinity(0, client_cpus)
        yield running
    finally:
        os.sched_setaffinity(0, everything)
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=30)


@dataclass
class Sample:
    """What one window measured."""

    count: int  # echoes or handshakes
    wall: float
    server_cpu: float
    server_wait: float
    client_cpu: float
    client_wait: float

    @property
    def rate(self) -> float:
        return self.count / self.wall

    def per(self, seconds: float) -> float:
        """µs per echo (or handshake)."""
        return seconds / self.count * 1e6 if self.count else float("inf")


def timed(pid: int, work: Callable[[], int]) -> Sample:
    """Run ``work`` (it returns how many it did) and measure it."""
    me = os.getpid()
    cpu, wait, mine, waited = (
        cpu_seconds(pid),
        wait_seconds(pid),
        time.process_time(),
        wait_seconds(me),
    )
    start = time.perf_counter()
    count = work()
    wall = time.perf_counter() - start
    return Sample(
        count,
        wall,
        cpu_seconds(pid) - cpu,
        wait_seconds(pid) - wait,
        time.process_time() - mine,
        wait_seconds(me) - waited,
    )


def _busy(s: Sample) -> list[str]:
    """The server's wall time split in three (CPU ticks are 10 ms: a few % either way),
    and the client's CPU, all as % of the window."""
    idle = max(0.0, 1 - (s.server_cpu + s.server_wait) / s.wall)
    return [
        f"{s.server_cpu / s.wall:.0%}",
        f"{s.server_wait / s.wall:.0%}",
        f"{idle:.0%}",
        f"{s.client_cpu / s.wall:.0%}",
        f"{s.client_wait / s.wall:.0%}",
    ]


_BUSY_NOTE = (
    "Busy: the server's CPU time (utime + stime, all threads) over the window; "
    "preempted: the time it was runnable while other processes had its core "
    "(run_delay in /proc/PID/schedstat); idle: the rest, the time it waited for the client "
    "(near 0: the client kept it fed, it was the bottleneck). Client CPU and preempted: "
    "the same for this process; where the server idles while the client is busy or "
    "preempted, the row is limited by the client (or by the other load on its core) and "
    "is a lower bound."
)

_PING_NOTE = (
    "The plain TCP echo (`asyncio.Protocol`) gets a new bytes object for every read of at "
    "most 256 KiB and the transport copies what the socket does not take at once, so for "
    "large messages it is no ceiling: picows reads into a buffer it keeps."
)


def _keep_best(best: dict[tuple[object, ...], Sample], key: tuple[object, ...], s: Sample) -> None:
    if key not in best or s.rate > best[key].rate:
        best[key] = s


# -- 1 and 5: ping-pong on one core ------------------------------------------------------


def pingpong(
    sizes: tuple[int, ...], seconds: float, rounds: int, deflate: bool
) -> tuple[dict[tuple[object, ...], Sample], dict[Row, str]]:
    """Best window per (size, row); with ``deflate``, also each row's negotiated answer."""
    from bench.compressed_echo import messages

    best: dict[tuple[object, ...], Sample] = {}
    negotiated: dict[Row, str] = {}
    rows = [row for row in _rows() if not (deflate and row[0] in NO_DEFLATE)]
    opcode = client.TEXT if deflate else client.BINARY
    with servers({0}, {0}) as running:
        for row in rows:  # warm-up, not kept: the first window of a fresh server is slow
            server = running[row]
            warm = client.PingPong(server.port, opcode, b"warm-up" * 40, deflate, server.websocket)
            warm.roundtrips(2000)
            warm.close()
        for _ in range(rounds):
            for size in sizes:
                # Compressed: different messages in turn, as bench.compressed_echo sends
                # them (one repeated message would be found whole in a kept window).
                payload = messages("text", size) if deflate else os.urandom(size)
                batch = max(1, (256 << 10) // (size * 8))
                for row in rows:
                    server = running[row]
                    conn = client.PingPong(server.port, opcode, payload, deflate, server.websocket)
                    negotiated[row] = conn.extensions
                    try:
                        conn.roundtrips(batch)

                        def window(conn: client.PingPong = conn, batch: int = batch) -> int:
                            count = 0
                            deadline = time.perf_counter() + seconds
                            while time.perf_counter() < deadline:
                                conn.roundtrips(batch)
                                count += batch
                            return count

                        _keep_best(best, (size, row), timed(server.pid, window))
                        conn.check()
                    finally:
                        conn.close()
    return best, negotiated


def pingpong_tables(
    best: dict[tuple[object, ...], Sample],
    sizes: tuple[int, ...],
    title: str,
    reference: str = REFERENCE,
) -> list[Table]:
    tables = []
    for size in sizes:
        table = Table(
            f"{title}, {humanize_size(size)}",
            [
                "server",
                "echoes/s",
                "server CPU µs/echo",
                "client CPU µs/echo",
                f"÷ {reference} (same loop)",
                f"server CPU ÷ {reference}",
            ],
        )
        for row in _rows():
            s = best.get((size, row))
            if s is None:
                continue
            ref = best.get((size, (reference, row[1])))  # absent when --servers left it out
            table.rows.append(
                [
                    _label(row),
                    f"{s.rate:,.0f}",
                    f"{s.per(s.server_cpu):,.1f}",
                    f"{s.per(s.client_cpu):,.1f}",
                    ratio(s.rate, ref.rate) if ref else "-",
                    ratio(s.per(s.server_cpu), ref.per(ref.server_cpu)) if ref else "-",
                ]
            )
        tables.append(table)
    return tables


# -- 2: many connections, server on its own core ---------------------------------------


def load(
    seconds: float, rounds: int, connections: tuple[int, ...]
) -> dict[tuple[object, ...], Sample]:
    """Best window per (connections, size, row)."""
    best: dict[tuple[object, ...], Sample] = {}
    with servers({1}, {0}) as running:
        for _ in range(rounds):
            for count in connections:
                for row in _rows():
                    server = running[row]
                    conns = client.Load(server.port, count, server.websocket)
                    try:
                        for size in LOAD_SIZES:
                            conns.start(os.urandom(size), DEPTH)
                            conns.run(min(0.3, seconds))
                            sample = timed(server.pid, functools.partial(conns.run, seconds))
                            conns.drain()
                            _keep_best(best, (count, size, row), sample)
                    finally:
                        conns.close()
    return best


def load_tables(
    best: dict[tuple[object, ...], Sample], connections: tuple[int, ...]
) -> list[Table]:
    tables = []
    for count in connections:
        for size in LOAD_SIZES:
            table = Table(
                f"{count:,} connections, {DEPTH} × {humanize_size(size)} in flight on each",
                [
                    "server",
                    "echoes/s",
                    "server CPU µs/echo",
                    "server busy %",
                    "server preempted %",
                    "server idle %",
                    "client CPU %",
                    "client preempted %",
                    f"÷ {REFERENCE} (same loop)",
                ],
            )
            for row in _rows():
                s = best[(count, size, row)]
                ref = best[(count, size, (REFERENCE, row[1]))]
                table.rows.append(
                    [
                        _label(row),
                        f"{s.rate:,.0f}",
                        f"{s.per(s.server_cpu):,.1f}",
                        *_busy(s),
                        ratio(s.rate, ref.rate),
                    ]
                )
            tables.append(table)
    return tables


# -- 3: idle connections -----------------------------------------------------------------


@dataclass
class Idle:
    before: int  # KiB
    after: int  # KiB
    count: int

    @property
    def per_connection(self) -> float:
        """KiB per connection."""
        return (self.after - self.before) / self.count


def idle(count: int, deflate: bool = False) -> dict[Row, Idle]:
    """Server RSS before and after ``count`` idle upgraded connections, fresh servers;
    ``deflate``: each connection offers permessage-deflate (servers without it left out)."""
    result: dict[Row, Idle] = {}
    rows = [row for row in _rows() if not (deflate and row[0] in NO_DEFLATE)]
    with servers(None, None) as running:
        for row in rows:
            server = running[row]
            # One connection first, so that code paths and buffers used by every
            # connection are in "before".
            first = client.open_upgraded(server.port, 1, server.websocket, deflate=deflate)
            client.close_all(first, server.websocket)
            time.sleep(0.2)
            before = rss_kib(server.pid)
            socks = client.open_upgraded(server.port, count, server.websocket, deflate=deflate)
            time.sleep(1.0)  # let the server finish what each connection started
            after = rss_kib(server.pid)
            client.close_all(socks, server.websocket)
            result[row] = Idle(before, after, count)
    return result


def idle_table(result: dict[Row, Idle], deflate: bool = False) -> Table:
    count = next(iter(result.values())).count
    reference = DEFLATE_REFERENCE if deflate else REFERENCE
    table = Table(
        f"RSS per idle connection, {count:,} connections"
        + (", permessage-deflate offered (each server's default answer)" if deflate else ""),
        ["server", "RSS before (MiB)", "RSS after (MiB)", "KiB per connection", f"÷ {reference}"],
    )
    table.notes.append(
        "VmRSS of the server process, measured 1 s after the last connection was upgraded; "
        '"before" is after one connection has come and gone. The kernel\'s socket memory '
        "(the same for every server) is not in it."
    )
    for row, r in result.items():
        ref = result[(reference, row[1])]
        table.rows.append(
            [
                _label(row),
                f"{r.before / 1024:,.1f}",
                f"{r.after / 1024:,.1f}",
                f"{r.per_connection:,.1f}",
                ratio(r.per_connection, ref.per_connection),
            ]
        )
    return table


# -- 4: handshakes -----------------------------------------------------------------------


def handshakes(seconds: float, rounds: int) -> dict[tuple[object, ...], Sample]:
    best: dict[tuple[object, ...], Sample] = {}
    with servers({1}, {0}) as running:
        for _ in range(rounds):
            for row in _rows():
                server = running[row]
                churn = client.Handshakes(server.port, CONCURRENCY, server.websocket)
                churn.run(None, min(0.2, seconds))
                sample = timed(server.pid, functools.partial(churn.run, None, seconds))
                _keep_best(best, (row,), sample)
    return best


def handshake_table(best: dict[tuple[object, ...], Sample]) -> Table:
    table = Table(
        f"Handshakes: connect, upgrade, closing handshake; {CONCURRENCY} at a time",
        [
            "server",
            "handshakes/s",
            "server CPU µs/handshake",
            "server busy %",
            "server preempted %",
            "server idle %",
            "client CPU %",
            "client preempted %",
            f"÷ {REFERENCE} (same loop)",
        ],
    )
    for row in _rows():
        s = best[(row,)]
        ref = best[((REFERENCE, row[1]),)]
        table.rows.append(
            [
                _label(row),
                f"{s.rate:,.0f}",
                f"{s.per(s.server_cpu):,.1f}",
                *_busy(s),
                ratio(s.rate, ref.rate),
            ]
        )
    return table


# -- 6: instructions per echo under callgrind --------------------------------------------


def _callgrind_control(action: str, pid: int) -> None:
    subprocess.run(
        ["callgrind_control", action, str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=120,
    )


def _callgrind_total(folder: Path) -> int:
    """The Ir total of the newest callgrind dump in ``folder``."""
    newest = max(folder.glob("callgrind.out*"), key=lambda p: p.stat().st_mtime_ns)
    for line in newest.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {newest}")


def instructions(sizes: tuple[int, ...], echoes: int) -> dict[tuple[object, ...], float]:
    """Server user-space instructions per echo (callgrind's Ir) per (size, row); one
    server at a time, each under valgrind, counters reset after a warm-up and dumped
    after ``echoes`` echoes."""
    result: dict[tuple[object, ...], float] = {}
    for row in _rows():
        with tempfile.TemporaryDirectory(prefix="wsio-callgrind-") as name:
            folder = Path(name)
            proc = subprocess.Popen(
                ["valgrind", "--tool=callgrind", "--callgrind-out-file="
                 + str(folder / "callgrind.out"), *SERVERS[row[0]], "--loop", row[1]],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                preexec_fn=_raise_nofile,
            )  # fmt: skip
            try:
                assert proc.stdout is not None
                port = _port(proc.stdout.readline())
                for size in sizes:
                    conn = client.PingPong(
                        port, client.BINARY, os.urandom(size), False, row[0] not in RAW
                    )
                    conn.roundtrips(CALLGRIND_WARM)
                    _callgrind_control("--zero", proc.pid)
                    conn.roundtrips(echoes)
                    _callgrind_control("--dump", proc.pid)
                    conn.close()
                    result[(size, row)] = _callgrind_total(folder) / echoes
            finally:
                proc.terminate()
                proc.wait(timeout=120)
    return result


def instructions_table(counts: dict[tuple[object, ...], float], sizes: tuple[int, ...]) -> Table:
    columns = ["server"]
    for size in sizes:
        columns += [f"{humanize_size(size)}: instructions/echo", f"÷ {REFERENCE} (same loop)"]
    table = Table("6: server user-space instructions per echo (callgrind), test 1's setup", columns)
    table.notes.append(
        f"{CALLGRIND_ECHOES:,} echoes per size on one connection after {CALLGRIND_WARM} not "
        "counted; the client is not under valgrind. Three runs at load averages of 1 to 8 "
        "agreed within 2%: these are the ratios to quote for CPU cost on a shared machine."
    )
    for row in _rows():
        cells = [_label(row)]
        for size in sizes:
            mine, ref = counts[(size, row)], counts[(size, (REFERENCE, row[1]))]
            cells += [f"{mine:,.0f}", ratio(mine, ref)]
        table.rows.append(cells)
    return table


# -- report ------------------------------------------------------------------------------


def summary_tables(
    ping: dict[tuple[object, ...], Sample],
    many: dict[tuple[object, ...], Sample],
    rss: dict[Row, Idle],
    shakes: dict[tuple[object, ...], Sample],
    connections: tuple[int, ...],
) -> list[Table]:
    """Each server ÷ the reference on the same loop, one column per measurement: the
    rates, then the server's CPU per echo or handshake."""
    # (column, results, the key of a row's result without the row)
    keys: list[tuple[str, dict[tuple[object, ...], Sample], tuple[object, ...]]]
    keys = [(f"1: {humanize_size(n)}", ping, (n,)) for n in PING_SIZES]
    keys += [
        (f"2: {c:,} × {humanize_size(n)}", many, (c, n)) for c in connections for n in LOAD_SIZES
    ]
    keys.append(("4: handshakes", shakes, ()))
    rates = Table(
        f"Summary: each server ÷ {REFERENCE} on the same loop",
        ["server", *[name for name, _, _ in keys], "3: RSS/conn"],
    )
    rates.notes.append(
        f"1, 2, 4: echoes or handshakes per second (> 1: faster than {REFERENCE}); "
        f"3: memory per idle connection (< 1: smaller). †: in 2 or 4, this server or "
        f"{REFERENCE} was preempted by other processes for more than "
        f"{CONTENDED:.0%} of its best window, so the rates compare shares of a core more "
        "than servers: read the CPU table below for that cell."
    )
    cpu = Table(
        f"Summary: server CPU per echo or handshake ÷ {REFERENCE} on the same loop "
        "(< 1: the server spends less)",
        ["server", *[name for name, _, _ in keys]],
    )
    cpu.notes.append(
        "In 1 the client shares the server's core, so echoes/s ratios are diluted by its "
        "cost (the same for every server); CPU per echo is the server's alone."
    )
    for row in _rows():
        ref = (REFERENCE, row[1])
        cells, spent = [], []
        for _, best, key in keys:
            mine, theirs = (*key, row), (*key, ref)
            s, r = best[mine], best[theirs]
            preempted = max(s.server_wait / s.wall, r.server_wait / r.wall)
            mark = " †" if best is not ping and preempted > CONTENDED else ""
            cells.append(ratio(s.rate, r.rate) + mark)
            spent.append(ratio(s.per(s.server_cpu), r.per(r.server_cpu)))
        cells.append(ratio(rss[row].per_connection, rss[ref].per_connection))
        rates.rows.append([_label(row), *cells])
        cpu.rows.append([_label(row), *spent])
    return [rates, cpu]


def _loadavg() -> str:
    """The 1-, 5- and 15-minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def plot(
    ping: dict[tuple[object, ...], Sample],
    many: dict[tuple[object, ...], Sample],
    rss: dict[Row, Idle],
    shakes: dict[tuple[object, ...], Sample],
    connections: tuple[int, ...],
) -> bool:
    """Bar charts of 1-4 in ``PLOT``; False if matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = _rows()
    labels = [_label(row) for row in rows]
    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    width = 0.8 / len(rows)

    def bars(ax: object, groups: list[str], values: list[list[float]], title: str) -> None:
        for i, label in enumerate(labels):
            xs = [g + i * width for g in range(len(groups))]
            # tab20: one colour per row (the default cycle has 10 for 12 rows).
            color = plt.get_cmap("tab20")(i % 20)
            ax.bar(xs, [v[i] for v in values], width, label=label, color=color)  # type: ignore[attr-defined]
        ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], groups)  # type: ignore[attr-defined]
        ax.set_title(title)  # type: ignore[attr-defined]

    bars(
        axes[0][0],
        [humanize_size(s) for s in PING_SIZES],
        [[ping[(s, r)].rate / ping[(s, (REFERENCE, r[1]))].rate for r in rows] for s in PING_SIZES],
        f"1. ping-pong on one core: echoes/s ÷ {REFERENCE} (same loop)",
    )
    bars(
        axes[0][1],
        [f"{n:,}\n× {humanize_size(s)}" for n in connections for s in LOAD_SIZES],
        [[many[(n, s, r)].rate / 1000 for r in rows] for n in connections for s in LOAD_SIZES],
        "2. many connections: thousands of echoes/s",
    )
    bars(
        axes[1][0], ["idle"], [[rss[r].per_connection for r in rows]], "3. KiB per idle connection"
    )
    bars(axes[1][1], ["handshakes"], [[shakes[(r,)].rate for r in rows]], "4. handshakes/s")
    axes[0][0].axhline(1.0, color="grey", linewidth=0.8)
    axes[1][0].axhline(5.0, color="grey", linewidth=0.8, linestyle="--")  # issue 10's target
    axes[0][0].legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=80)
    plt.close(fig)
    return True


def _negotiated_table(negotiated: dict[Row, str]) -> Table:
    table = Table(
        "Compression negotiated (the server's Sec-WebSocket-Extensions answer)",
        ["server", "answer"],
    )
    for row, answer in negotiated.items():
        table.rows.append([_label(row), f"`{answer}`" if answer else "none (declined)"])
    return table


def _limits_table() -> Table:
    from bench._aio_servers import LIMITS

    table = Table("The servers and the limits they run with (their defaults)", ["server", "limits"])
    for name in SERVERS:
        table.rows.append([name, LIMITS.get(name, "")])
    return table


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark; print the tables and, after a whole run, write them to
    bench/results/aio_echo.md (and the plot)."""
    global _selected
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (rough numbers)")
    parser.add_argument(
        "--tests",
        default="123456",
        help="which of tests 1-6 to run (default: 123456; 6 only where valgrind is)",
    )
    parser.add_argument(
        "--servers",
        help=f"comma-separated servers to measure (default: all; {REFERENCE} always runs, and "
        f"{DEFLATE_REFERENCE} with tests 3 and 5); "
        "a partial run only prints its tables",
    )
    args = parser.parse_args(argv)
    tests = set(args.tests)
    if "6" in tests and not shutil.which("valgrind"):
        print("valgrind is not installed: no test 6 (instructions per echo)", file=sys.stderr)
        tests.discard("6")
    if args.servers:
        # The references of every table (picows; websockets for the compressed ones).
        references = [REFERENCE, DEFLATE_REFERENCE] if set(tests) & set("35") else [REFERENCE]
        names = [*references, *(n for n in args.servers.split(",") if n not in references)]
        unknown = [n for n in names if n not in SERVERS]
        if unknown:
            parser.error(f"unknown server {', '.join(unknown)}; servers: {', '.join(SERVERS)}")
        _selected = names
    whole = tests >= set("12345") and _selected == list(SERVERS)

    from bench import machine

    _raise_nofile()
    loads = _loadavg()
    if args.quick:
        seconds, rounds, idle_count, connections = 0.3, 1, 1000, (100, 300)
    else:
        seconds, rounds, idle_count, connections = 1.0, 5, IDLE, CONNECTIONS
    _, nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    if "3" in tests and nofile < idle_count + 100:
        parser.error(f"test 3 needs {idle_count + 100} open files; the hard limit is {nofile}")
    head = [
        "# Asyncio echo servers: picows, websockets, aiohttp and a plain TCP echo",
        "",
        machine.markdown(),
        "",
        "See the docstring of `bench/aio_echo.py` for what is measured. Best of "
        f"{rounds} windows of {seconds} s per figure. The machine is a 2-core virtual "
        "machine shared with other busy sessions while this ran: the absolute numbers are "
        "noisy, the ratios within this run are what counts.",
        "",
    ]
    print("\n".join(head), flush=True)
    body: list[str] = [_limits_table().markdown()]

    def emit(*parts: Table | str) -> None:
        text = [p.markdown() if isinstance(p, Table) else p for p in parts]
        print("\n".join(text), flush=True)
        body.extend(text)

    if "1" in tests:
        ping, _ = pingpong(PING_SIZES, seconds, rounds, deflate=False)
        emit(
            "## 1. Ping-pong, client and server on one core\n",
            _PING_NOTE + "\n",
            *pingpong_tables(ping, PING_SIZES, "Ping-pong"),
        )
    if "2" in tests:
        many = load(seconds, rounds, connections)
        emit(
            "## 2. Many connections, server on core 1, client on core 0\n",
            _BUSY_NOTE + "\n",
            *load_tables(many, connections),
        )
    if "3" in tests:
        rss = idle(idle_count)
        zipped_rss = idle(idle_count, deflate=True)
        emit(
            "## 3. Idle connections\n",
            idle_table(rss),
            idle_table(zipped_rss, deflate=True),
        )
    if "4" in tests:
        shakes = handshakes(seconds, rounds)
        emit(
            "## 4. Handshakes, server on core 1, client on core 0\n",
            _BUSY_NOTE + "\n",
            handshake_table(shakes),
        )
    if "5" in tests:
        zipped, negotiated = pingpong(DEFLATE_SIZES, seconds, rounds, deflate=True)
        emit(
            "## 5. Compressed ping-pong (text), client and server on one core\n",
            _negotiated_table(negotiated),
            *pingpong_tables(
                zipped, DEFLATE_SIZES, "Compressed ping-pong, text", DEFLATE_REFERENCE
            ),
        )
    # Test 6 goes with the summaries after a whole run: the CPU ratios that hold on a
    # loaded machine.
    counts = instructions(CALLGRIND_SIZES, CALLGRIND_ECHOES) if "6" in tests else None
    if counts is not None and not whole:
        print(instructions_table(counts, CALLGRIND_SIZES).markdown(), flush=True)
    state = f"Load average (1, 5, 15 min) at the start: {loads}; at the end: {_loadavg()}.\n"
    if not whole:
        print(state, flush=True)
        return
    summary = [t.markdown() for t in summary_tables(ping, many, rss, shakes, connections)]
    if counts is not None:
        summary.append(instructions_table(counts, CALLGRIND_SIZES).markdown())
    plotted = plot(ping, many, rss, shakes, connections)
    figure = (
        f"![the tables as bars]({PLOT.name})\n"
        if plotted
        else "(matplotlib is not installed: no plot; `make bench` installs it.)\n"
    )
    print("\n".join([*summary, state]), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join([*head, state, *summary, figure, *body]))


if __name__ == "__main__":
    main()
