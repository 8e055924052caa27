"""What the application subclasses to hear from a connection at the callback level."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from wsio.aio._callback import Frame, Transport

__all__ = ["Listener"]


class Listener:
    """Callbacks for one WebSocket connection, called on the event loop; subclass it.

    By default every received frame goes to :meth:`on_frame` (a reused
    :class:`~wsio.aio.Frame` whose payload is a view into the read buffer, valid until
    the callback returns). Set ``messages = True`` on the subclass to get whole messages
    in :meth:`on_message` instead (owned ``str``/``bytes``; control frames are then not
    shown). Pings are answered and the closing handshake is completed for you either way.
    An exception a callback raises is logged and fails the connection with 1011.
    ``transport.pause_reading()`` stops the callbacks at once (frames already read wait
    in the buffer) until ``transport.resume_reading()``.
    """

    #: True: whole messages to :meth:`on_message`; False: frames to :meth:`on_frame`.
    messages: ClassVar[bool] = False
    #: True: when a read that delivered messages (or came while :meth:`owes_answer`)
    #: also ends the stream (the peer's Close, or a violation this side answers with
    #: 1002/1007/1009), the answering Close waits until the next send,
    #: ``transport.release_close()`` or ``close_timeout``, so that messages which came
    #: before it can still be answered from other tasks (RFC 6455 §5.5.1). A listener
    #: that answers inside its callbacks needs no such wait.
    hold_close: ClassVar[bool] = False
    #: True: a frame over 1 MiB reaches :meth:`on_frame` piece by piece as it is read
    #: (each a view of the read buffer; see :class:`~wsio.aio.Frame` for ``fin`` and
    #: ``frame_end``), so that holding one costs no more than a read. False: such a frame
    #: is joined (up to ``max_frame_size``) and shown whole.
    frame_pieces: ClassVar[bool] = False

    def owes_answer(self) -> bool:
        """With ``hold_close``: whether messages delivered by earlier reads are still
        unanswered (then a Close that ends the stream is held too)."""
        return False

    def on_connect(self, transport: Transport) -> None:
        """The handshake is done; ``transport`` sends. Keep it: it is the same object
        every later callback gets."""

    def on_frame(self, transport: Transport, frame: Frame) -> None:
        """A frame (whole, or with ``frame_pieces`` a piece of one over 1 MiB: see
        :class:`~wsio.aio.Frame`); also the control frames (Ping 9, Pong 10, Close 8)
        after the core has answered them. ``frame`` is reused: keep copies, not it."""

    def on_message(self, transport: Transport, message: str | bytes) -> None:
        """A whole message (``messages = True``): ``str`` for text, ``bytes`` for binary;
        both are yours to keep."""

    def on_close(self, transport: Transport, code: int, reason: str) -> None:
        """The connection is gone: the peer's Close code and reason, or the code this
        side failed the connection with (1002, 1007, 1009, 1011), or 1006 without a Close."""

    def pause_writing(self) -> None:
        """The transport's write buffer passed its high-water mark: stop sending for a while."""

    def resume_writing(self) -> None:
        """The write buffer drained below its low-water mark: sending may go on."""
