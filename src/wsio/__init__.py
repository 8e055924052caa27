"""wsio: WebSocket (RFC 6455, RFC 7692) for Python, every layer exposed.

This module is the low-level API: frames and headers read from and written to any
blocking socket or file, the opening handshake, and the protocol's constants.
Message-level helpers are in :mod:`wsio.wsutil`, compression in :mod:`wsio.wsflate`,
connections for threads in :mod:`wsio.sync` and for asyncio in :mod:`wsio.aio`.
"""

from __future__ import annotations

from wsio import _engine
from wsio._engine.limits import (
    DEFAULT_MAX_FRAGMENTS,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
)
from wsio.conn import Conn
from wsio.dialer import DebugDialer, Dialer, dial
from wsio.exceptions import *  # noqa: F403
from wsio.exceptions import __all__ as _exceptions_all
from wsio.frameio import *  # noqa: F403
from wsio.frameio import __all__ as _frameio_all
from wsio.frames import *  # noqa: F403
from wsio.frames import __all__ as _frames_all
from wsio.handshake import *  # noqa: F403
from wsio.handshake import __all__ as _handshake_all

__version__ = "0.1.0"

#: True when wsio runs its compiled modules, False on the pure-Python path (WSIO_PURE=1,
#: or no C compiler at install time).
COMPILED: bool = _engine.compiled()

__all__ = [
    "Conn",
    "Dialer",
    "DebugDialer",
    "dial",
    "COMPILED",
    "__version__",
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_FRAGMENTS",
    *_frames_all,
    *_frameio_all,
    *_exceptions_all,
    *_handshake_all,
]
