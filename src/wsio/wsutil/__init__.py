"""Messages over frames: readers and writers, control frames, one-call helpers.

The counterpart of gobwas/ws's ``wsutil``: a :class:`Reader` reads one message after
another from a blocking stream as a byte stream, a :class:`Writer` writes one as a byte
stream and sends it as frames, a :class:`ControlHandler` answers pings and closes, and
the ``read_*``/``write_*`` helpers do all of it in one call.
"""

from __future__ import annotations

from wsio.wsutil.extension import RecvExtension, SendExtension
from wsio.wsutil.handler import ControlHandler, control_frame_handler, write_close
from wsio.wsutil.helpers import *  # noqa: F403
from wsio.wsutil.helpers import __all__ as _helpers_all
from wsio.wsutil.reader import FrameHandler, Reader, next_reader
from wsio.wsutil.streams import CipherReader, CipherWriter, UTF8Reader
from wsio.wsutil.writer import DEFAULT_WRITE_BUFFER, ControlWriter, Writer

__all__ = [
    "Reader",
    "next_reader",
    "FrameHandler",
    "Writer",
    "ControlWriter",
    "DEFAULT_WRITE_BUFFER",
    "ControlHandler",
    "control_frame_handler",
    "write_close",
    "RecvExtension",
    "SendExtension",
    "CipherReader",
    "CipherWriter",
    "UTF8Reader",
    *_helpers_all,
]
