"""Messages over frames: readers and writers, control frames, one-call helpers.

The counterpart of gobwas/ws's ``wsutil``: a :class:`Reader` reads one message after
another from a blocking stream as a byte stream, a :class:`Writer` writes one as a byte
stream and sends it as frames, a :class:`ControlHandler` answers pings and closes, and
the ``read_*``/``write_*`` helpers do all of it in one call.

Writing from several threads: wrap the connection once in a :class:`wsio.LockedSink`
and write through that. Then every ``write_*`` helper, :func:`write_close` and a
:class:`ControlHandler`'s answers each go out whole, and every frame a :class:`Writer`
sends is whole; a Writer's message of several frames is kept together by holding
``sink.lock`` from its first write to its ``flush()``. Reading stays with one thread.
"""

from __future__ import annotations

from wsio.wsutil.extension import RecvExtension, SendExtension
from wsio.wsutil.handler import ControlHandler, control_frame_handler, write_close
from wsio.wsutil.helpers import *  # noqa: F403
from wsio.wsutil.helpers import __all__ as _helpers_all
from wsio.wsutil.keepalive import Keepalive
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
    "Keepalive",
    *_helpers_all,
]
