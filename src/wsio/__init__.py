"""wsio: WebSocket (RFC 6455, RFC 7692) for Python, every layer exposed.

This module is the low-level API: frames and headers read from and written to any
blocking socket or file, the opening handshake, and the protocol's constants.
Message-level helpers are in :mod:`wsio.wsutil`, compression in :mod:`wsio.wsflate`,
connections for threads in :mod:`wsio.sync` and for asyncio in :mod:`wsio.aio`.
"""

from __future__ import annotations

from wsio._engine import COMPILED
from wsio.exceptions import *  # noqa: F403
from wsio.exceptions import __all__ as _exceptions_all

__version__ = "0.1.0"

__all__ = ["COMPILED", "__version__", *_exceptions_all]
