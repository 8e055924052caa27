"""The shape of a compliance target: what ``compliance/targets.py`` declares.

A *server target* is a command that starts a WebSocket echo server; ``wstest --mode
fuzzingclient`` connects to it. A *client target* is a command that runs a WebSocket
client against ``wstest --mode fuzzingserver`` using the suite's standard protocol.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# The permessage-deflate groups (RFC 7692): a server or client that negotiates compression
# runs only these (``cases=COMPRESSION_CASES``); one that does not excludes them
# (``exclude_cases=COMPRESSION_CASES``), otherwise they come out UNIMPLEMENTED.
COMPRESSION_CASES: tuple[str, ...] = ("12.*", "13.*")

# A quick cut of the same groups for CI: every subgroup (12.1-12.5: payload kinds,
# 13.1-13.7: every parameter offer) with its five smallest message sizes (16 B-4 KiB),
# 60 cases in about a minute; the full 216 take 13 minutes per peer here (the large
# messages dominate), so they run under --all.
COMPRESSION_QUICK_CASES: tuple[str, ...] = tuple(
    f"{group}.{sub}.{n}"
    for group, subgroups in (("12", 5), ("13", 7))
    for sub in range(1, subgroups + 1)
    for n in range(1, 6)
)

# Agent names go into URLs, file names and the suite's report names.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


def _check(kind: str, name: str, command: Sequence[str], needed: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"{kind} {name!r}: a name is letters, digits, '_', '.', '-'")
    if isinstance(command, str) or not command:
        raise ValueError(f"{kind} {name!r}: command is a non-empty list of arguments")
    if not any(needed in arg for arg in command):
        raise ValueError(f"{kind} {name!r}: command must contain the {needed} placeholder")


@dataclass(frozen=True, kw_only=True)
class ServerTarget:
    """An echo server to run ``wstest --mode fuzzingclient`` against.

    ``command`` is an argument list (no shell) run from the repository root; it must
    listen on ``{host}:{port}`` (always 127.0.0.1 and a free port) and echo every text
    and binary message back unchanged. Placeholders: ``{python}`` (this interpreter),
    ``{host}``, ``{port}``, ``{root}`` (the repository root).
    """

    name: str
    command: Sequence[str]
    ci: bool  # run by `--ci` (CI and `make test`); every target runs under `--all`
    cases: Sequence[str] = ("*",)  # the suite's patterns: "1.*", "9.1.*", "7.1.6"
    exclude_cases: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)  # added to the environment
    startup_timeout: float = 30.0  # seconds until the port must be listening
    description: str = ""

    def __post_init__(self) -> None:
        _check("server target", self.name, self.command, "{port}")
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "cases", tuple(self.cases))
        object.__setattr__(self, "exclude_cases", tuple(self.exclude_cases))


@dataclass(frozen=True, kw_only=True)
class ClientTarget:
    """A client to run against ``wstest --mode fuzzingserver``.

    ``command`` is an argument list (no shell) run from the repository root that speaks
    the suite's protocol to the base URL ``{url}`` (``ws://127.0.0.1:PORT``): read the
    count from ``{url}/getCaseCount``; for N in 1..count connect to
    ``{url}/runCase?case=N&agent={agent}`` and echo every text and binary message until
    the connection closes; finally open ``{url}/updateReports?agent={agent}``; exit 0.
    Placeholders: ``{python}``, ``{url}``, ``{agent}`` (the target's name), ``{root}``.
    """

    name: str
    command: Sequence[str]
    ci: bool
    cases: Sequence[str] = ("*",)
    exclude_cases: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        _check("client target", self.name, self.command, "{url}")
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "cases", tuple(self.cases))
        object.__setattr__(self, "exclude_cases", tuple(self.exclude_cases))
