"""``wsio bench URL``: a load generator against an echo server.

``--connections N`` connections (a thread each, on :mod:`wsio.sync`) send binary
messages of ``--size`` random bytes to an echo server, for ``--duration`` seconds or
``--count`` messages per connection:

- ``pingpong``: each connection sends one message and waits for its echo, then the next;
  the latency is the round trip.
- ``firehose``: each connection keeps up to ``--window`` messages (and at most 256 KiB)
  in flight; the latency runs from a message's send to its echo, queueing included.

A live progress line goes to stderr when stderr is a terminal. At the end: messages per
second and MB/s (echoed payload received, 10^6 bytes), the latency percentiles (p50,
p90, p99, p99.9, max) and a text histogram; ``--json`` prints one JSON object instead,
and ``--plot FILE.png`` draws the histogram with matplotlib if it is installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import threading
import time
from array import array
from collections import deque
from typing import Any, TextIO

from wsio.cli.common import (
    Failure,
    UsageError,
    add_command,
    connect_error,
    positive_float,
    positive_int,
    size,
    ws_url,
)
from wsio.exceptions import WebSocketError
from wsio.server import threads_without_signals
from wsio.sync import Connection, connect as open_connection

__all__ = ["Result", "add_parser", "bench", "run"]

#: Percentiles reported, as fractions.
PERCENTILES = (0.5, 0.9, 0.99, 0.999)
#: Seconds between two progress lines.
PROGRESS_EVERY = 0.5
#: Seconds the last echoes of a timed run have to arrive before they are given up.
DRAIN_TIMEOUT = 10.0
#: Bytes a fire-hose connection keeps in flight at most, whatever ``--window`` says.
FIREHOSE_BYTES = 256 * 1024


class _Stop(threading.Event):
    """Tells the workers to stop sending; remembers when (perf_counter seconds)."""

    at = 0.0

    def set(self) -> None:
        """Set the event and note the time."""
        self.at = time.perf_counter()
        super().set()


class _Countdown(threading.Event):
    """Set once ``count_down`` was called ``n`` times: every worker is done."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self._left = n
        self._lock = threading.Lock()

    def count_down(self) -> None:
        """One more worker is done."""
        with self._lock:
            self._left -= 1
            if self._left <= 0:
                self.set()


class _Worker:
    """One connection's loop and its counts (read by the progress line meanwhile)."""

    def __init__(self, ws: Connection, payload: bytes, count: int | None) -> None:
        self.ws = ws
        self.payload = payload
        self.count = count
        self.sent = 0
        self.received = 0
        self.latencies = array("d")  # seconds, one per echo
        self.error: BaseException | None = None
        self.finished = 0.0  # perf_counter() when the loop ended

    def run(self, mode: str, stop: _Stop, window: int, done: _Countdown) -> None:
        """The loop of ``mode``; then note the time and count this worker done."""
        try:
            if mode == "pingpong":
                self.pingpong(stop)
            else:
                self.firehose(stop, window)
        finally:
            self.finished = time.perf_counter()
            done.count_down()

    def pingpong(self, stop: _Stop) -> None:
        """Send, wait for the echo, repeat, until ``stop`` or ``count``."""
        ws, payload, latencies, clock = self.ws, self.payload, self.latencies, time.perf_counter
        count = self.count if self.count is not None else math.inf
        try:
            while self.sent < count and not stop.is_set():
                start = clock()
                ws.send(payload)
                self.sent += 1
                ws.recv()
                latencies.append(clock() - start)
                self.received += 1
        except (WebSocketError, OSError) as error:
            self.error = error

    def firehose(self, stop: _Stop, window: int) -> None:
        """Keep up to ``window`` messages in flight until ``stop`` or ``count``, sending
        and receiving in this one thread (no lock handed between two)."""
        ws, payload, latencies, clock = self.ws, self.payload, self.latencies, time.perf_counter
        count = self.count if self.count is not None else math.inf
        # What is in flight must fit in the sockets' buffers: a peer blocked writing
        # echoes we do not read yet would stop reading what we send.
        window = max(1, min(window, FIREHOSE_BYTES // max(len(payload), 1)))
        sent_at: deque[float] = deque()
        try:
            while True:
                if len(sent_at) < window and self.sent < count and not stop.is_set():
                    sent_at.append(clock())
                    ws.send(payload)
                    self.sent += 1
                    continue
                if not sent_at:
                    return
                try:
                    ws.recv(timeout=DRAIN_TIMEOUT if stop.is_set() else None)
                except TimeoutError:
                    return  # the last echoes did not come: counted as missing
                latencies.append(clock() - sent_at.popleft())
                self.received += 1
        except (WebSocketError, OSError) as error:
            self.error = error


class Result:
    """What a run measured: counts, rates, latencies (seconds, sorted)."""

    def __init__(self, settings: dict[str, Any], workers: list[_Worker], elapsed: float) -> None:
        self.settings = settings
        self.elapsed = elapsed
        self.sent = sum(worker.sent for worker in workers)
        self.received = sum(worker.received for worker in workers)
        merged = array("d")
        for worker in workers:
            merged.extend(worker.latencies)
        self.latencies = sorted(merged)
        self.errors = [repr(worker.error) for worker in workers if worker.error is not None]

    def percentile(self, fraction: float) -> float:
        """The latency below which ``fraction`` of the echoes came (nearest rank)."""
        values = self.latencies
        if not values:
            return math.nan
        return values[min(len(values) - 1, max(0, math.ceil(fraction * len(values)) - 1))]

    def histogram(self) -> list[tuple[float, float, int]]:
        """(low, high, count) rows, bounds in seconds, on a log scale (factor 2 per row)."""
        values = self.latencies
        if not values:
            return []
        low = 2.0 ** math.floor(math.log2(max(values[0], 1e-7)))
        rows = []
        start = 0
        while start < len(values):
            high = low * 2
            end = start
            while end < len(values) and values[end] < high:
                end += 1
            rows.append((low, high, end - start))
            start, low = end, high
        return rows

    def as_dict(self) -> dict[str, Any]:
        """The result as plain data, for ``--json`` (milliseconds, MB = 10^6 bytes)."""
        seconds = self.elapsed or math.nan
        payload = self.settings["size"] * self.received
        latency = {
            f"p{fraction * 100:g}": _ms(self.percentile(fraction)) for fraction in PERCENTILES
        }
        latency["max"] = _ms(self.latencies[-1]) if self.latencies else None
        return {
            **self.settings,
            "elapsed_s": round(self.elapsed, 6),
            "messages_sent": self.sent,
            "messages_received": self.received,
            "bytes_received": payload,
            "msgs_per_s": round(self.received / seconds, 1),
            "mb_per_s": round(payload / seconds / 1e6, 3),
            "latency_ms": latency,
            "histogram_ms": [[_ms(low), _ms(high), n] for low, high, n in self.histogram()],
            "errors": self.errors,
        }

    def report(self) -> str:
        """The result as text for a person."""
        data = self.as_dict()
        lines = [
            f"{data['connections']} connections, {data['mode']}, {data['size']}-byte messages"
            f"{', compressed' if data['compression'] else ''}: {self.received:,} echoes in "
            f"{self.elapsed:.2f} s",
            f"  {data['msgs_per_s']:,.0f} msgs/s, {data['mb_per_s']:,.2f} MB/s",
            "  latency ms: "
            + ", ".join(f"{name} {_shown(value)}" for name, value in data["latency_ms"].items()),
        ]
        rows = self.histogram()
        widest = max((n for _, _, n in rows), default=0)
        for low, high, n in rows:
            bar = "#" * (round(40 * n / widest) if widest else 0)
            lines.append(f"  {_shown(_ms(low)):>9} - {_shown(_ms(high)):>9} ms |{bar:<40} {n:,}")
        lines.extend(f"  error: {error}" for error in self.errors)
        return "\n".join(lines)


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds * 1000, 4)


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}" if value < 10 else f"{value:,.0f}"


def bench(
    url: str,
    *,
    connections: int = 1,
    message_size: int = 32,
    mode: str = "pingpong",
    duration: float | None = None,
    count: int | None = None,
    window: int = 64,
    compression: bool = False,
    err: TextIO | None = None,
) -> Result:
    """Run the load on ``url`` (an echo server) and return what it measured.

    ``count`` messages per connection, or for ``duration`` seconds (10 s if neither).
    A progress line goes to ``err`` (stderr) if it is a terminal. Raises Failure if a
    connection cannot be opened.
    """
    err = err or sys.stderr
    if count is None and duration is None:
        duration = 10.0
    payload = os.urandom(message_size)
    options: dict[str, Any] = {
        "compression": "deflate" if compression else None,
        "ping_interval": None,  # no keepalive pings in the measurement
        "max_message_size": max(message_size, 1),
    }
    opened: list[Connection] = []
    try:
        opened.extend(open_connection(url, **options).open() for _ in range(connections))
    except (WebSocketError, OSError) as error:
        _close_all(opened)
        raise connect_error(url, error) from None
    workers = [_Worker(ws, payload, count) for ws in opened]
    stop, done = _Stop(), _Countdown(len(workers))
    start = time.perf_counter()
    with threads_without_signals():  # Ctrl-C goes to the main thread, which waits
        for worker in workers:
            threading.Thread(
                target=worker.run, args=(mode, stop, window, done), name="bench", daemon=True
            ).start()
    _wait(workers, stop, done, start, duration, err if err.isatty() else None)
    elapsed = max(worker.finished for worker in workers) - start
    _close_all(opened)
    settings = {
        "url": url,
        "connections": connections,
        "mode": mode,
        "size": message_size,
        "compression": compression,
        "duration_s": duration,
        "count": count,
    }
    return Result(settings, workers, elapsed)


def _close_all(connections: list[Connection]) -> None:
    # close() runs the closing handshake and never raises for a connection already lost.
    for ws in connections:
        ws.close()


def _wait(
    workers: list[_Worker],
    stop: _Stop,
    done: _Countdown,
    start: float,
    duration: float | None,
    progress: TextIO | None,
) -> None:
    """Wait for the workers, stopping them after ``duration``; show progress meanwhile."""
    last_count, last_time = 0, start
    try:
        while not done.is_set():
            tick = PROGRESS_EVERY
            if duration is not None and not stop.is_set():
                left = start + duration - time.perf_counter()
                if left <= 0:
                    stop.set()
                tick = min(tick, max(left, 0.0))
            if done.wait(tick) or progress is None:
                continue
            now = time.perf_counter()
            echoes = sum(worker.received for worker in workers)
            rate = (echoes - last_count) / max(now - last_time, 1e-9)
            progress.write(
                f"\r{now - start:6.1f} s {echoes:>12,} echoes {rate:>12,.0f} msgs/s\033[K"
            )
            progress.flush()
            last_count, last_time = echoes, now
    except KeyboardInterrupt:
        stop.set()  # Ctrl-C: stop sending, report what was measured
        done.wait(DRAIN_TIMEOUT)
    if progress is not None:
        progress.write("\r\033[K")
        progress.flush()


def plot(result: Result, path: str) -> str:
    """Draw the latency histogram into ``path`` with matplotlib; the line to print."""
    if importlib.util.find_spec("matplotlib") is None:
        return f"matplotlib is not installed: no plot written to {path} (pip install matplotlib)"
    import matplotlib  # type: ignore[import-not-found, unused-ignore]

    matplotlib.use("Agg")  # no display needed
    from matplotlib import pyplot  # type: ignore[import-not-found, unused-ignore]

    figure, axes = pyplot.subplots(figsize=(8, 4.5))
    milliseconds = [value * 1000 for value in result.latencies]
    if milliseconds:
        # Four bins per doubling: finer than the text histogram, still log-spaced.
        low, high = max(milliseconds[0], 1e-4), max(milliseconds[-1], 1e-4)
        steps = max(1, math.ceil(4 * math.log2(high / low)) + 1)
        axes.hist(milliseconds, bins=[low * 2 ** (i / 4) for i in range(steps + 1)])
    axes.set_xscale("log")
    axes.set_xlabel("latency (ms)")
    axes.set_ylabel("echoes")
    settings = result.settings
    axes.set_title(
        f"wsio bench: {settings['connections']} connections, {settings['mode']}, "
        f"{settings['size']} B"
    )
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
    return f"latency histogram written to {path}"


# -- the command line ------------------------------------------------------------------


def add_parser(commands: Any) -> None:
    """Add ``bench`` and its options to ``commands`` (argparse's subparsers)."""
    parser = add_command(commands, "bench", "a load generator against an echo server", __doc__)
    parser.add_argument("url", type=ws_url, help="ws:// or wss:// URL of an echo server")
    parser.add_argument(
        "--connections", "-c", type=positive_int, default=1, metavar="N", help="default 1"
    )
    parser.add_argument(
        "--size", "-s", type=size, default=32, metavar="BYTES", help="message size (default 32)"
    )
    parser.add_argument(
        "--mode", choices=("pingpong", "firehose"), default="pingpong", help="default pingpong"
    )
    parser.add_argument(
        "--window",
        type=positive_int,
        default=64,
        metavar="N",
        help="firehose: messages in flight per connection (default %(default)s)",
    )
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument(
        "--duration", "-d", type=positive_float, metavar="SECONDS", help="default 10"
    )
    amount.add_argument(
        "--count", "-n", type=positive_int, metavar="N", help="messages per connection"
    )
    parser.add_argument(
        "--compression", action="store_true", help="offer permessage-deflate (off by default)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the latency histogram")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``bench`` with the parsed ``args``; 1 if a connection failed during the run."""
    if args.size is None:
        raise UsageError("--size needs a number of bytes")
    result = bench(
        args.url,
        connections=args.connections,
        message_size=args.size,
        mode=args.mode,
        duration=args.duration,
        count=args.count,
        window=args.window,
        compression=args.compression,
    )
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        print(result.report())
    if args.plot:
        print(plot(result, args.plot), file=sys.stderr)
    if result.errors:
        raise Failure(f"{len(result.errors)} connections failed: {result.errors[0]}")
    return 0
