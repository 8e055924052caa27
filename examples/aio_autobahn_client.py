"""A client for the Autobahn|Testsuite's fuzzing server on wsio.aio's callback level.

``/getCaseCount`` gives the number of cases; on ``/runCase?case=N&agent=AGENT`` every
message is echoed until the server closes; ``/updateReports`` writes the reports. With
``--deflate`` each case offers permessage-deflate (on by default in wsio.aio; without
the flag it is turned off)::

    wstest --mode fuzzingserver --spec fuzzingserver.json   # listens on :9001
    python examples/aio_autobahn_client.py ws://127.0.0.1:9001 wsio [--deflate]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from urllib.parse import quote

import wsio
from wsio import aio

# Message and frame limits well above the suite's largest messages (16 MiB, group 9).
_LIMIT = 64 * 1024 * 1024


class Echo(aio.Listener):
    """Echoes every message frame by frame; ``closed`` is set when the connection ends."""

    def __init__(self) -> None:
        self.closed = asyncio.get_running_loop().create_future()
        self.texts: list[str] = []

    def on_frame(self, transport: aio.Transport, frame: aio.Frame) -> None:
        if frame.opcode < 8:
            transport.send(frame.opcode, frame.payload, frame.fin)

    def on_close(self, transport: aio.Transport, code: int, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(code)


class Collect(Echo):
    """Keeps the text messages instead of echoing them."""

    messages = True

    def on_message(self, transport: aio.Transport, message: str | bytes) -> None:
        if isinstance(message, str):
            self.texts.append(message)


async def run_one(url: str, listener: type[Echo], compression: bool) -> Echo:
    """Open ``url`` with ``listener`` and wait until the server ends the connection."""
    _, echo = await aio.create_connection(
        listener, url, compression=compression, max_message_size=_LIMIT, max_frame_size=_LIMIT
    )
    assert isinstance(echo, Echo)
    await asyncio.wait_for(echo.closed, 120)
    return echo


async def main(url: str, agent: str, compression: bool) -> None:
    """Run every case, then ask for the reports."""
    base, agent = url.rstrip("/"), quote(agent)
    count = int((await run_one(f"{base}/getCaseCount", Collect, False)).texts[0])
    print(f"{count} cases", flush=True)
    for case in range(1, count + 1):
        await run_one(f"{base}/runCase?case={case}&agent={agent}", Echo, compression)
    await run_one(f"{base}/updateReports?agent={agent}", Echo, False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the fuzzing server, e.g. ws://127.0.0.1:9001")
    parser.add_argument("agent", nargs="?", default="wsio-aio", help="the name in the reports")
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    args = parser.parse_args()
    try:
        asyncio.run(main(args.url, args.agent, args.deflate))
    except (wsio.WebSocketError, OSError, ValueError) as error:
        # Nothing to test against: a refused connection or a bad URL is one line.
        print(f"{args.url}: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
