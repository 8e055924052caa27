"""The sans-I/O protocol: events/s from a masked byte stream, wsio vs websockets vs wsproto.

Run as ``python -m bench protocol`` (``--quick`` for a short, rough run); the tables go
to stdout and to ``bench/results/protocol.md``.

Each candidate is a server-side protocol object fed the same bytes a client would send
— masked frames of 32 B, 8 KiB or 1 MiB, binary or text (ASCII and 2-byte UTF-8
mixed) — in 64 KiB reads (``receive_data``), and asked for its events after each
read, as an I/O layer does. Measured: events (messages) per second.

- wsio ``ServerProtocol()``: whole messages (bytes / UTF-8 checked str), default limits;
  also ``streaming=True`` (Chunk views, text UTF-8 checked as it is unmasked) and, for
  text, ``decode_text=False`` (whole messages as checked UTF-8 bytes, no str built:
  what websockets' protocol gives, less the check).
- websockets ``ServerProtocol(state=OPEN, max_size=None)``: frames (its protocol leaves
  text decoding and assembly to the connection layer above it).
- wsproto ``Connection(SERVER)``: what ``WSConnection`` hands the bytes to after the
  handshake; messages as str/bytes (``events()``).

At 1 MiB the floor is "unmask + UTF-8 check alone": wsio's ``cipher`` and
``is_valid_utf8`` over 1 MiB in one call each (binary: the unmask alone), in cache. A
second floor adds what reading the stream costs anyway: each 64 KiB read copied into a
buffer and unmasked (and checked) there. For text as ``str``, a third figure: CPython's
decoder alone (``str(payload, "utf-8")``, 1 MiB in cache), what building the str costs
at least the CPython way (wsio builds it from the bytes it checked while unmasking).

Allocation: ``sys.getallocatedblocks()`` around feeding N small frames with the events
kept, divided by N: the event and its payload are 2 blocks a frame; anything above is
the per-frame path allocating.

Every candidate is timed in alternating rounds; the best round counts (bench/__init__).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import wsproto
from websockets.protocol import State as WsState
from websockets.server import ServerProtocol as WsServerProtocol
from wsproto.connection import Connection as WsprotoConnection, ConnectionType

from bench import Table, best_times, humanize_size, machine, ratio
from wsio._engine.framing import Header, encode_header
from wsio._engine.mask import cipher, mask_into
from wsio._engine.utf8 import is_valid_utf8
from wsio.protocol import ServerProtocol

RESULTS = Path(__file__).resolve().parent / "results" / "protocol.md"
READ_SIZE = 65536
SIZES = [32, 8192, 2**20]
KEY = b"\x12\x34\x56\x78"


def _payload(size: int, text: bool) -> bytes:
    if not text:
        return os.urandom(size)
    unit = "wsio é ü — ok ".encode()
    data = (unit * (size // len(unit) + 1))[:size].decode(errors="ignore").encode()
    return data + b"." * (size - len(data))  # a character cut at the end is dropped


def _frame(opcode: int, payload: bytes) -> bytes:
    header = Header(fin=True, opcode=opcode, masked=True, mask=KEY, length=len(payload))
    body = bytearray(len(payload))
    mask_into(body, payload, KEY)
    return encode_header(header) + bytes(body)


def stream(size: int, text: bool, total: int) -> tuple[list[bytes], int]:
    """``total`` bytes or more of masked frames of ``size``, cut into 64 KiB reads."""
    one = _frame(1 if text else 2, _payload(size, text))
    count = max(1, total // len(one))
    wire = one * count
    return [wire[i : i + READ_SIZE] for i in range(0, len(wire), READ_SIZE)], count


def run_wsio(reads: list[bytes], streaming: bool = False, decode_text: bool = True) -> int:
    proto = ServerProtocol(streaming=streaming, decode_text=decode_text)
    events = 0
    for data in reads:
        proto.receive_data(data)
        events += len(proto.events_received())
    return events


def run_websockets(reads: list[bytes]) -> int:
    proto = WsServerProtocol(state=WsState.OPEN, max_size=None)
    events = 0
    for data in reads:
        proto.receive_data(data)
        events += len(proto.events_received())
    return events


def run_wsproto(reads: list[bytes]) -> int:
    conn = WsprotoConnection(ConnectionType.SERVER)
    events = 0
    for data in reads:
        conn.receive_data(data)
        events += sum(1 for _ in conn.events())
    return events


def floor_1mib(text: bool) -> Callable[[], None]:
    """Unmask (and UTF-8 check, for text) 1 MiB in place: the least any protocol does."""
    buf = bytearray(_payload(2**20, text))

    def run() -> None:
        cipher(buf, KEY)
        if text:
            is_valid_utf8(buf)

    return run


def floor_reads(reads: list[bytes], text: bool) -> Callable[[], None]:
    """Copy each read into a reused buffer and unmask (and check) it there: the least a
    server reading this stream from a socket does, before building any message."""
    buf = bytearray(READ_SIZE)
    view = memoryview(buf)

    def run() -> None:
        for data in reads:
            n = len(data)
            buf[:n] = data
            cipher(view[:n], KEY)
            if text:
                is_valid_utf8(view[:n])

    return run


def blocks_per_frame(n: int = 20000) -> float:
    """Python memory blocks allocated per 32-byte frame, the events kept."""
    reads, count = stream(32, False, 34 * n)
    proto = ServerProtocol()
    kept = []
    gc.collect()
    gc.disable()
    before = sys.getallocatedblocks()
    for data in reads:
        proto.receive_data(data)
        kept.extend(proto.events_received())
    after = sys.getallocatedblocks()
    gc.enable()
    # The list that keeps them grows by a pointer a frame, in blocks of its own.
    return (after - before) / count


def main(argv: list[str] | None = None) -> None:
    """Run the tables; write bench/results/protocol.md."""
    parser = argparse.ArgumentParser(prog="python -m bench protocol")
    parser.add_argument("--quick", action="store_true", help="short, rough run")
    args = parser.parse_args(argv)
    total = 2**21 if args.quick else 2**23
    load_before = os.getloadavg()
    rounds = 3 if args.quick else 7
    tables = []
    for text in (False, True):
        kind = "text" if text else "binary"
        table = Table(
            f"Events/s, masked {kind} frames fed in 64 KiB reads",
            [
                "frame",
                "wsio",
                "wsio streaming",
                "wsio text as bytes",
                "websockets",
                "wsproto",
                "wsio / websockets",
                "wsio / wsproto",
            ],
        )
        for size in SIZES:
            reads, count = stream(size, text, max(total, 8 * size))
            namespace = {
                "reads": reads,
                "run_wsio": run_wsio,
                "run_websockets": run_websockets,
                "run_wsproto": run_wsproto,
            }
            assert run_wsio(reads) == count and run_websockets(reads) == count
            assert run_wsproto(reads) >= count  # wsproto may split a message
            times = best_times(
                {
                    "wsio": "run_wsio(reads)",
                    "wsio streaming": "run_wsio(reads, True)",
                    "wsio text as bytes": "run_wsio(reads, False, False)",
                    "websockets": "run_websockets(reads)",
                    "wsproto": "run_wsproto(reads)",
                },
                namespace,
                rounds=rounds,
                round_seconds=0.2,
            )
            rates = {name: count / seconds for name, seconds in times.items()}
            table.rows.append(
                [
                    humanize_size(size),
                    *(
                        "—" if name == "wsio text as bytes" and not text else f"{rates[name]:,.0f}"
                        for name in times
                    ),
                    ratio(rates["wsio"], rates["websockets"]),
                    ratio(rates["wsio"], rates["wsproto"]),
                ]
            )
            if size == 2**20:
                floors = best_times(
                    {
                        "floor": "run()",
                        "reads": "reads_run()",
                        "decode": "str(payload, 'utf-8')" if text else "payload",
                    },
                    {
                        "run": floor_1mib(text),
                        "reads_run": floor_reads(reads, text),
                        "payload": _payload(size, text),
                    },
                    rounds=rounds,
                    round_seconds=0.2,
                )
                floor, io_floor = floors["floor"], floors["reads"] / count
                what = "unmask + UTF-8 check" if text else "unmask"
                per = {name: seconds / count for name, seconds in times.items()}
                table.notes.append(
                    f"1 MiB: {what} alone (1 MiB in cache) takes {floor * 1e6:.0f} µs; "
                    f"copying the 64 KiB reads into a buffer and {what} there, "
                    f"{io_floor * 1e6:.0f} µs a message. wsio: {per['wsio'] * 1e6:.0f} µs "
                    f"({per['wsio'] / floor:.2f}× the first, {per['wsio'] / io_floor:.2f}× "
                    f"the second); streaming {per['wsio streaming'] * 1e6:.0f} µs "
                    f"({per['wsio streaming'] / floor:.2f}×, "
                    f"{per['wsio streaming'] / io_floor:.2f}×)"
                    + (
                        f"; text as bytes {per['wsio text as bytes'] * 1e6:.0f} µs "
                        f"({per['wsio text as bytes'] / floor:.2f}×, "
                        f"{per['wsio text as bytes'] / io_floor:.2f}×). CPython's decoder "
                        f"alone (the str, from bytes in cache): {floors['decode'] * 1e6:.0f} µs."
                        if text
                        else "."
                    )
                )
        tables.append(table)
    blocks = blocks_per_frame()
    tables[0].notes.append(
        f"Allocation: {blocks:.2f} Python memory blocks per 32-byte binary frame with every "
        "event kept (the BinaryMessage and its bytes are 2; the rest is the list keeping "
        "them): the per-frame path itself allocates nothing."
    )
    load_after = os.getloadavg()
    out = [
        machine.markdown(),
        "Load average (1, 5, 15 min) before and after the run: "
        f"{', '.join(f'{x:.2f}' for x in load_before)} / "
        f"{', '.join(f'{x:.2f}' for x in load_after)}; the machine is shared, so "
        "compare ratios within this run, not runs.\n",
        "# The sans-I/O protocol\n",
        f"wsproto {wsproto.__version__} (h11 {version('h11')}).\n",
        __doc__.split("\n\n", 1)[1],
    ]
    out += [table.markdown() for table in tables]
    text_out = "\n".join(out)
    print(text_out)
    if not args.quick:
        RESULTS.write_text(text_out, encoding="utf-8")


if __name__ == "__main__":
    main()
