"""Test-wide setup: say which engine path is live, refuse a stale compiled build, and let
the processes tests start get Ctrl-C."""

from __future__ import annotations

import importlib
import os
import signal
from pathlib import Path

import pytest

import wsio
from wsio import _engine

# A run started in the background of a non-interactive shell has SIGINT ignored, and so
# would every process a test starts (an ignored signal stays ignored across exec, and
# Python then installs no handler): the tests that stop a server or client with Ctrl-C
# would wait for an exit that never comes. A handled SIGINT is reset to the default in
# a child, which Python turns into KeyboardInterrupt.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_report_header() -> str:
    mode = "compiled" if wsio.COMPILED else "pure Python"
    return f"wsio engine: {mode} (WSIO_PURE={os.environ.get('WSIO_PURE', '')!r})"


def pytest_sessionstart(session: pytest.Session) -> None:
    # A compiled module older than its source would test yesterday's code.
    for name in _engine.COMPILED_MODULE_NAMES:
        module = importlib.import_module(name)
        path = Path(module.__file__ or "")
        if path.suffix == ".py":
            continue
        source = path.with_name(module.__name__.rpartition(".")[2] + ".py")
        if source.exists() and source.stat().st_mtime > path.stat().st_mtime:
            raise pytest.UsageError(f"{path.name} is older than {source.name}: run `make build`")
    if not _engine.PURE_REQUESTED and not wsio.COMPILED:
        raise pytest.UsageError("the compiled engine is not built: run `make build`")
