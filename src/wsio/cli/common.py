"""What every command shares: argument types, the one-line error, logging, the program name.

A user's mistake (a bad URL, a port out of range or in use, an unknown host, a negative
limit) ends the command with one line on stderr, ``PROG COMMAND: error: ...``, and a
non-zero exit status: 2 for a bad argument (argparse's convention), 1 when the network
said no. Never a traceback: those are for wsio's own bugs.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import socket
import ssl
import sys
import urllib.parse
from typing import Any, NoReturn

from wsio.exceptions import HandshakeError, RejectConnectionError

__all__ = [
    "UsageError",
    "Failure",
    "OneLineParser",
    "add_command",
    "connect_error",
    "listen_error",
    "non_negative_int",
    "plain",
    "port",
    "positive_float",
    "positive_int",
    "program_name",
    "setup_logging",
    "size",
    "ws_url",
]

#: Exit status of a command the network or the peer refused (argparse uses 2 for usage).
FAILED = 1


class UsageError(Exception):
    """A mistake in the command line found after parsing (exit status 2)."""


class Failure(Exception):
    """The command could not do its job: one line for stderr (exit status 1)."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``PROG: error: ...``), not usage + line."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` on one line with a pointer to ``--help``; exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def program_name(argv0: str | None = None) -> str:
    """The name the user ran: ``wsio`` for the script, ``python -m wsio`` for the module."""
    name = os.path.basename(argv0 if argv0 is not None else sys.argv[0])
    return "python -m wsio" if name in ("__main__.py", "") else name


def add_command(commands: Any, name: str, summary: str, doc: str | None) -> OneLineParser:
    """A subcommand's parser: ``summary`` in the list of commands, ``doc`` (its module's
    docstring, as written) as its ``--help`` text."""
    parser: OneLineParser = commands.add_parser(
        name,
        help=summary,
        description=plain(doc),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def plain(doc: str | None) -> str:
    """A module docstring as ``--help`` shows it: no reST markup (roles, double backquotes)."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", doc or "")
    return text.replace("``", "")


def setup_logging(quiet: bool = False) -> None:
    """Log lines to stderr, each with its time; ``quiet`` keeps only warnings."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(message)s",
        stream=sys.stderr,
    )


# -- argument types: each raises ArgumentTypeError, which argparse prints in one line --


def port(text: str) -> int:
    """A TCP port, 0-65535 (0: any free port)."""
    value = _integer(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is out of range (0-65535)")
    return value


def positive_int(text: str) -> int:
    """An integer of at least 1."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def non_negative_int(text: str) -> int:
    """An integer of at least 0."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


_SIZE = re.compile(r"(\d+)\s*([kmg]?)(i?b)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def size(text: str) -> int | None:
    """A size in bytes (``65536``, ``64K``, ``16MiB``; powers of 1024), or ``none``: no limit."""
    if text.strip().lower() == "none":
        return None
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size (bytes, e.g. 65536, 64K, 16M; or none for no limit)"
        )
    return int(match[1]) * _UNITS[match[2].lower()]


def positive_float(text: str) -> float | None:
    """Seconds, more than 0, or ``none``: never (the timeout or the keepalive is off)."""
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def ws_url(text: str) -> str:
    """A ``ws://`` or ``wss://`` URL with a host and a valid port; returned as given."""
    split = urllib.parse.urlsplit(text)
    scheme = split.scheme.lower()
    if scheme in ("http", "https"):
        wanted = "ws" if scheme == "http" else "wss"
        raise argparse.ArgumentTypeError(
            f"{text!r} is an {scheme}:// URL; a WebSocket URL starts with {wanted}://"
        )
    if scheme not in ("ws", "wss") or not split.netloc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a WebSocket URL (ws://HOST[:PORT]/PATH or wss://...)"
        )
    if not split.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} has no host")
    try:
        split.port  # noqa: B018  (urllib checks the port only when asked)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None
    return text


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


# -- what the network said, in one line ------------------------------------------------


_UNKNOWN_HOST = frozenset(
    getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, name)
)


def listen_error(host: str, port: int, error: OSError) -> Failure:
    """The line for a server that cannot listen on ``host``:``port``."""
    where = f"{host}:{port}"
    # socket.create_server re-raises getaddrinfo's gaierror as a plain OSError with
    # its (negative) EAI_* number.
    if isinstance(error, socket.gaierror) or error.errno in _UNKNOWN_HOST:
        return Failure(f"cannot listen on {where}: unknown host {host!r}")
    if error.errno == errno.EADDRINUSE:
        return Failure(f"cannot listen on {where}: the port is in use (try another --port)")
    if error.errno == errno.EADDRNOTAVAIL:
        return Failure(f"cannot listen on {where}: {host} is not an address of this machine")
    if error.errno == errno.EACCES:
        return Failure(f"cannot listen on {where}: permission denied (ports below 1024?)")
    return Failure(f"cannot listen on {where}: {error.strerror or error}")


def connect_error(url: str, error: BaseException) -> Failure:
    """The line for a client that could not open ``url``."""
    prefix = f"cannot connect to {url}"
    if isinstance(error, RejectConnectionError):
        return Failure(f"{prefix}: the server refused with HTTP {error.status}: {error.reason}")
    if isinstance(error, ssl.SSLCertVerificationError):
        return Failure(
            f"{prefix}: {error.verify_message or error} "
            "(--cafile FILE trusts a certificate; --insecure skips the check)"
        )
    if isinstance(error, socket.gaierror):
        host = urllib.parse.urlsplit(url).hostname
        return Failure(f"{prefix}: unknown host {host!r} ({error.strerror})")
    if isinstance(error, ConnectionRefusedError):
        return Failure(f"{prefix}: connection refused (is a server listening there?)")
    if isinstance(error, TimeoutError):
        return Failure(f"{prefix}: timed out")
    if isinstance(error, (HandshakeError, OSError)):
        return Failure(f"{prefix}: {getattr(error, 'strerror', None) or error}")
    return Failure(f"{prefix}: {error}")
