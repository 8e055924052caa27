"""Test-wide setup: say which engine path is live, and refuse a stale compiled build."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

import wsio
from wsio import _engine


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
