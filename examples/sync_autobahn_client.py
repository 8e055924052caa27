"""The Autobahn|Testsuite's fuzzing client cases, run on wsio.sync::

    wstest --mode fuzzingserver --spec fuzzingserver.json   # listens on :9001
    python examples/sync_autobahn_client.py ws://127.0.0.1:9001 wsio-sync [--no-compression]

``/getCaseCount`` sends the number of cases; on ``/runCase?case=N&agent=AGENT`` every
message is echoed until the server closes; ``/updateReports?agent=AGENT`` writes the
reports.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any
from urllib.parse import quote

import wsio
from wsio.sync import connect


def run_case(url: str, options: dict[str, Any]) -> None:
    """Echo every message of one case until the server closes the connection."""
    try:
        with connect(url, **options) as ws:
            for message in ws:
                ws.send(message)
    except (wsio.WebSocketError, OSError) as error:
        # The suite grades what it saw on the wire; a case may end the connection badly.
        print(f"{url}: {error!r}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run every case of the fuzzing server, then update its reports."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("agent", nargs="?", default="wsio-sync")
    parser.add_argument("--no-compression", action="store_true")
    args = parser.parse_args(argv)
    try:
        return run(args.url.rstrip("/"), quote(args.agent), args.no_compression)
    except (wsio.WebSocketError, OSError, ValueError) as error:
        # Nothing to test against: a refused connection or a bad URL is one line.
        print(f"{args.url}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


def run(base: str, agent: str, no_compression: bool) -> int:
    """Every case, then the reports."""
    # The fuzzing server is on loopback: never through a proxy from the environment.
    options: dict[str, Any] = {
        "proxy": None,
        "open_timeout": 30.0,
        "compression": None if no_compression else "deflate",
    }
    with connect(f"{base}/getCaseCount", **options) as ws:
        count = int(ws.recv())
    print(f"{count} cases", flush=True)
    for case in range(1, count + 1):
        run_case(f"{base}/runCase?case={case}&agent={agent}", options)
    with connect(f"{base}/updateReports?agent={agent}", **options):
        pass
    print("reports updated", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
