"""Every exception wsio raises, rooted at :class:`WebSocketError`.

The hierarchy is drawn from the classes themselves: in the documentation's reference
(``docs/reference/exceptions.rst``), and by ``help()`` under CLASSES. Close codes and
HTTP statuses travel as attributes: ``.close_code`` on a :class:`ProtocolError`,
``.code`` and ``.reason`` on a :class:`ConnectionClosed`, ``.status`` on a
:class:`RejectConnectionError`.

Errors the peer causes are distinct from errors the caller causes: a
:class:`ProtocolError` always comes from received bytes and carries the close code that
answers it, while :class:`LocalProtocolError` means nothing was sent.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "WebSocketError",
    "ProtocolError",
    "InvalidUTF8Error",
    "PayloadTooBigError",
    "CompressionError",
    "ConnectionEOFError",
    "UnexpectedEOFError",
    "ConnectionClosed",
    "ConnectionClosedOK",
    "ConnectionClosedError",
    "ClosedError",
    "HandshakeError",
    "RejectConnectionError",
    "InvalidResponseError",
    "InvalidStatusError",
    "InvalidUpgradeError",
    "InvalidConnectionError",
    "InvalidAcceptError",
    "UnexpectedSubprotocolError",
    "UnexpectedExtensionError",
    "MalformedResponseError",
    "ProxyError",
    "IncompleteHandshakeError",
    "HandshakeTimeoutError",
    "LocalProtocolError",
    "ConcurrencyError",
    "InvalidStateError",
    "KeepaliveTimeoutError",
]

# Close codes are written as numbers here (not wsio.CloseCode) so that this module
# imports nothing from the rest of the package.
_PROTOCOL_ERROR = 1002
_INVALID_PAYLOAD = 1007
_MESSAGE_TOO_BIG = 1009
_NORMAL_CLOSURE = 1000
_GOING_AWAY = 1001
_NO_STATUS = 1005
_ABNORMAL_CLOSURE = 1006

#: Header pairs as the handshake code passes them around: (name, value).
HeaderPairs = Sequence[tuple[str, str]]


class WebSocketError(Exception):
    """The root of every exception that wsio raises."""


class ProtocolError(WebSocketError):
    """The peer violated the protocol; ``close_code`` is the code that answers it."""

    close_code: int = _PROTOCOL_ERROR

    def __init__(self, message: str, *, close_code: int | None = None) -> None:
        super().__init__(message)
        if close_code is not None:
            self.close_code = close_code


class InvalidUTF8Error(ProtocolError):
    """A text message or a close reason is not valid UTF-8 (RFC 6455 §8.1)."""

    close_code = _INVALID_PAYLOAD


class PayloadTooBigError(ProtocolError):
    """A frame or message (after decompression) is larger than the configured limit."""

    close_code = _MESSAGE_TOO_BIG


class CompressionError(ProtocolError):
    """Compressed data from the peer does not inflate (RFC 7692 §6.2)."""


class ConnectionEOFError(WebSocketError, EOFError):
    """The connection was closed by the peer (end of stream) where a frame could start."""


class UnexpectedEOFError(ConnectionEOFError):
    """The connection ended in the middle of a frame, a message or a handshake."""


class ConnectionClosed(WebSocketError):
    """The connection is closed; ``code`` and ``reason`` are what the peer sent.

    ``code`` is 1005 when the peer's Close frame had no status, and 1006 when no Close
    frame arrived at all. ``sent_code``/``sent_reason`` are what this side sent, or None.
    """

    def __init__(
        self,
        code: int,
        reason: str = "",
        *,
        sent_code: int | None = None,
        sent_reason: str | None = None,
    ) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason
        self.sent_code = sent_code
        self.sent_reason = sent_reason

    def __str__(self) -> str:
        text = f"received {self.code}"
        if self.reason:
            text += f" ({self.reason})"
        if self.sent_code is not None:
            text += f"; sent {self.sent_code}"
            if self.sent_reason:
                text += f" ({self.sent_reason})"
        return text

    @staticmethod
    def of(
        code: int,
        reason: str = "",
        *,
        sent_code: int | None = None,
        sent_reason: str | None = None,
    ) -> ConnectionClosed:
        """The right subclass for a closing handshake that ended with these codes."""
        ok = code in (_NORMAL_CLOSURE, _GOING_AWAY, _NO_STATUS) and (
            sent_code is None or sent_code in (_NORMAL_CLOSURE, _GOING_AWAY, _NO_STATUS)
        )
        cls = ConnectionClosedOK if ok else ConnectionClosedError
        return cls(code, reason, sent_code=sent_code, sent_reason=sent_reason)


class ConnectionClosedOK(ConnectionClosed):
    """The connection closed normally (1000, 1001, or a Close frame without a status)."""


class ConnectionClosedError(ConnectionClosed):
    """The connection closed with an error code, or was lost without a Close frame."""


#: gobwas/ws's wsutil calls the exception for a received Close frame ``ClosedError``.
ClosedError = ConnectionClosed


class HandshakeError(WebSocketError):
    """The opening handshake (RFC 6455 §4) did not complete."""


class RejectConnectionError(HandshakeError):
    """The server refuses the upgrade with an HTTP error response.

    Raise it from any :class:`~wsio.Upgrader` hook to answer with ``status``, ``reason``
    (the response body) and extra ``headers``; the Upgrader raises it too, after
    answering, for every request it refuses itself.
    """

    def __init__(
        self,
        reason: str = "",
        *,
        status: int = 400,
        headers: HeaderPairs | None = None,
    ) -> None:
        super().__init__(reason or f"connection rejected with status {status}")
        self.status = status
        self.reason = reason
        self.headers: list[tuple[str, str]] = list(headers or ())


class InvalidResponseError(HandshakeError):
    """The server's answer to the opening handshake breaks RFC 6455 §4.1."""


class InvalidStatusError(InvalidResponseError):
    """The server answered with a status other than 101 Switching Protocols."""

    def __init__(
        self,
        status: int,
        reason: str = "",
        headers: HeaderPairs | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(f"server answered {status} {reason}".rstrip())
        self.status = status
        self.reason = reason
        self.headers: list[tuple[str, str]] = list(headers or ())
        self.body = body


class InvalidUpgradeError(InvalidResponseError):
    """The response's Upgrade header is missing or is not ``websocket``."""


class InvalidConnectionError(InvalidResponseError):
    """The response's Connection header is missing or has no ``upgrade`` token."""


class InvalidAcceptError(InvalidResponseError):
    """The response's Sec-WebSocket-Accept is missing or does not match the key sent."""


class UnexpectedSubprotocolError(InvalidResponseError):
    """The server selected a subprotocol the client did not offer."""


class UnexpectedExtensionError(InvalidResponseError):
    """The server accepted an extension, or parameters, the client did not offer."""


class MalformedResponseError(InvalidResponseError):
    """The response head is not valid HTTP/1.1, or is larger than the limits allow."""


class ProxyError(HandshakeError):
    """The HTTP proxy answered the CONNECT request with ``status`` instead of 2xx."""

    def __init__(self, message: str, *, status: int, headers: HeaderPairs | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers: list[tuple[str, str]] = list(headers or ())


class IncompleteHandshakeError(HandshakeError, UnexpectedEOFError):
    """The connection ended before the opening handshake was complete."""


class HandshakeTimeoutError(HandshakeError, TimeoutError):
    """Connecting, the TLS handshake and the opening handshake took longer than allowed."""


class LocalProtocolError(WebSocketError, ValueError):
    """The caller asked for something RFC 6455 forbids; nothing was sent."""


class ConcurrencyError(WebSocketError, RuntimeError):
    """Two threads or tasks used the same connection, or the same end of it, at once."""


class InvalidStateError(LocalProtocolError):
    """Sending what the connection's state forbids: any frame once a Close frame was
    sent or received (RFC 6455 §5.5.1), or a continuation with no message open."""


class KeepaliveTimeoutError(WebSocketError, TimeoutError):
    """Nothing came from the peer within the ping timeout after a keepalive ping.

    The connection is dead or the peer is gone; close it with 1011 (or just drop it).
    """
