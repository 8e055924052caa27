"""The command line, ``wsio`` (or ``python -m wsio``): ``serve``, ``connect`` and ``bench``.

::

    wsio serve                                # echo on ws://127.0.0.1:8080/, a page at /
    wsio serve --port 9000 --tls cert.pem key.pem --max-message-size 16M
    wsio connect ws://127.0.0.1:8080/         # lines in, messages out; /ping, /close
    wsio bench ws://127.0.0.1:8080/ -c 8 --duration 5
    wsio --version                            # and whether the engine is compiled

One module per command (:mod:`~wsio.cli.serve`, :mod:`~wsio.cli.connect`,
:mod:`~wsio.cli.bench`), each with ``add_parser`` and ``run``; what they share is in
:mod:`~wsio.cli.common`. A user's mistake ends a command with one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from wsio import __version__
from wsio._engine import COMPILED_MODULE_NAMES, PURE_REQUESTED, is_compiled
from wsio.cli import bench, connect, serve
from wsio.cli.common import Failure, OneLineParser, UsageError, program_name

__all__ = ["DESCRIPTION", "engine_status", "main"]

#: What ``--help`` says the program is.
DESCRIPTION = "WebSocket from the shell: an echo server, a client, a load generator."


def engine_status() -> str:
    """Whether the engine runs compiled, e.g. ``engine compiled (11 modules)``."""
    if PURE_REQUESTED:
        return "engine pure Python (WSIO_PURE is set)"
    pure = [
        name for name in COMPILED_MODULE_NAMES if not is_compiled(importlib.import_module(name))
    ]
    if not pure:
        return f"engine compiled ({len(COMPILED_MODULE_NAMES)} modules)"
    if len(pure) == len(COMPILED_MODULE_NAMES):
        return "engine pure Python (not compiled: reinstall with a C compiler for speed)"
    return f"engine partly compiled (pure Python: {', '.join(pure)})"


class _Version(argparse.Action):
    """``--version``: wsio's version and :func:`engine_status`, then exit 0."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> NoReturn:
        print(f"wsio {__version__}, {engine_status()}")
        parser.exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run a command; return the exit status."""
    prog = program_name()
    parser = OneLineParser(prog=prog, description=DESCRIPTION)
    parser.add_argument(
        "--version",
        action=_Version,
        help="print wsio's version and whether its engine is compiled",
    )
    # Subcommands get a OneLineParser too: their errors are one line as well.
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser
    )
    for command in (serve, connect, bench):
        command.add_parser(commands)
    args = parser.parse_args(argv)
    if hasattr(signal, "pthread_sigmask"):
        # Ctrl-C and SIGTERM stop every command. A signal mask survives exec: a parent
        # that had them blocked (in the thread that started us) would leave them pending
        # for ever, and the commands would never hear them.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGINT, signal.SIGTERM))
    try:
        return int(args.run(args))
    except UsageError as error:
        print(f"{prog} {args.command}: error: {error}", file=sys.stderr)
        return 2
    except Failure as error:
        print(f"{prog} {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130  # Ctrl-C outside a command's own handling: 128 + SIGINT, no traceback
