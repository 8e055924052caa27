"""The engine: wsio's protocol code with no I/O (no sockets, clocks, threads or asyncio).

The hot modules here are ordinary Python that Cython compiles when the package is built
(types live in the ``.pxd`` beside each module). The compiled and the pure module come
from the same file, so no algorithm is written twice.

``WSIO_PURE=1`` in the environment, set before ``wsio`` is first imported, makes every
``wsio`` module load from its ``.py`` source even where a compiled twin exists; the test
suite runs once each way. :data:`COMPILED` says which path is live.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

PURE_REQUESTED: bool = os.environ.get("WSIO_PURE", "") not in ("", "0")


class _SourceFirstFinder(importlib.abc.MetaPathFinder):
    """Finds ``wsio`` submodules in their ``.py`` source, skipping compiled extensions."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if path is None or not fullname.startswith("wsio."):
            return None
        leaf = fullname.rpartition(".")[2]
        for entry in path:
            source = os.path.join(entry, leaf + ".py")
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(fullname, source)
        return None  # a package directory, or not ours: the normal finders take it


if PURE_REQUESTED and not any(isinstance(f, _SourceFirstFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _SourceFirstFinder())

#: Every module the build compiles, by name: the source of truth for setup.py too. Most
#: are engine modules; the blocking message reader and writer and the asyncio callback
#: level's receive loop are compiled as well.
COMPILED_MODULE_NAMES: tuple[str, ...] = (
    "wsio._engine.mask",
    "wsio._engine.utf8",
    "wsio._engine.framing",
    "wsio._engine.message",
    "wsio._engine.protocol",
    "wsio._engine.http",
    "wsio._engine.httphead",
    "wsio._engine.handshake",
    "wsio.wsutil.reader",
    "wsio.wsutil.writer",
    "wsio.aio._callback",
    "wsio.aio._socket",
    "wsio.sync.connection",
)


def is_compiled(module: ModuleType) -> bool:
    """True if ``module`` was loaded from a compiled extension, not from its source."""
    return not (module.__file__ or "").endswith(".py")


def compiled() -> bool:
    """True when every module in :data:`COMPILED_MODULE_NAMES` in use is compiled."""
    return all(is_compiled(importlib.import_module(name)) for name in COMPILED_MODULE_NAMES)


__all__ = ["COMPILED_MODULE_NAMES", "PURE_REQUESTED", "compiled", "is_compiled"]
