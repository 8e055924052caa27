"""The Autobahn|Testsuite's fuzzing client cases, run on wsio.aio's high level::

    wstest --mode fuzzingserver --spec fuzzingserver.json   # listens on :9001
    python examples/aio_client.py ws://127.0.0.1:9001 wsio-aio [--no-compression]

``/getCaseCount`` sends the number of cases; on ``/runCase?case=N&agent=AGENT`` every
message is echoed until the server closes; ``/updateReports?agent=AGENT`` writes the
reports.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any
from urllib.parse import quote

import wsio
from wsio.aio import connect


async def run(base: str, agent: str, compression: str | None) -> None:
    """Run every case of the fuzzing server, then update its reports."""
    options: dict[str, Any] = {"open_timeout": 30.0, "compression": compression}
    async with connect(f"{base}/getCaseCount", **options) as ws:
        count = int(await ws.recv())
    print(f"{count} cases", flush=True)
    for case in range(1, count + 1):
        await run_case(f"{base}/runCase?case={case}&agent={agent}", options)
    async with connect(f"{base}/updateReports?agent={agent}", **options):
        pass
    print("reports updated", flush=True)


async def run_case(url: str, options: dict[str, Any]) -> None:
    """Echo every message of one case until the server closes (errors are the case's)."""
    try:
        async with connect(url, **options) as ws:
            async for message in ws:
                await ws.send(message)
    except (wsio.WebSocketError, OSError) as error:
        print(f"{url}: {error!r}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run the cases."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("agent", nargs="?", default="wsio-aio")
    parser.add_argument("--no-compression", action="store_true")
    args = parser.parse_args(argv)
    compression = None if args.no_compression else "deflate"
    try:
        asyncio.run(run(args.url.rstrip("/"), quote(args.agent), compression))
    except (wsio.WebSocketError, OSError, ValueError) as error:
        # Nothing to test against: a refused connection or a bad URL is one line.
        print(f"{args.url}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
