"""Opening client connections for threads: :func:`connect` and :func:`reconnect`.

The handshake is :class:`wsio.Dialer`'s (TLS with verification, proxies, Unix sockets,
every hook); compression is offered unless ``compression=None``.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from wsio import _connection as shared
from wsio._connection import Options, Request, Response
from wsio.dialer import Dialer
from wsio.sync.connection import Connection
from wsio.wsflate import Extension

__all__ = ["connect", "reconnect"]

log = logging.getLogger("wsio")


def connect(url: str, **options: Any) -> Connection:
    """Open a WebSocket connection to ``url`` (``ws://``, ``wss://``); use it in a
    ``with`` block to close it.

    Keywords: the connection's (:class:`wsio._connection.Options`: ``open_timeout``,
    ``ping_interval``, ``ping_timeout``, ``close_timeout``, ``max_message_size``,
    ``max_queue``, ``write_limit``, ``compression``, ...) and :class:`wsio.Dialer`'s
    (``subprotocols``, ``headers``, ``ssl``, ``proxy``, ``unix_path``, ...; its
    ``timeout`` is ``open_timeout``). ``sock=`` is a connected socket to use instead.
    Raises a HandshakeError, OSError or ssl.SSLError.
    """
    config, rest = shared.split_options(options)
    sock = rest.pop("sock", None)
    response_headers: list[tuple[str, str]] = []
    user_on_header = rest.pop("on_header", None)

    def on_header(name: memoryview, value: memoryview) -> None:
        response_headers.append((bytes(name).decode("latin-1"), bytes(value).decode("latin-1")))
        if user_on_header is not None:
            user_on_header(name, value)

    extension = None
    if config.compression == "deflate" and "extensions" not in rest:
        extension = Extension(shared.CLIENT_DEFLATE)
        rest["extensions"] = [extension.offer()]
        rest["accept_extensions"] = extension.accept_extensions
    dialer = Dialer(timeout=config.open_timeout, on_header=on_header, **rest)
    conn, handshake = dialer.dial(url, sock=sock)
    read_ahead = conn.take_read_ahead()
    agreed = extension.accepted() if extension is not None else None
    split = urllib.parse.urlsplit(url)
    path = (split.path or "/") + (f"?{split.query}" if split.query else "")
    headers = rest.get("headers")
    request_headers = list(headers.items()) if isinstance(headers, Mapping) else []
    return Connection(
        conn.socket,
        shared.new_protocol(True, config, agreed),
        config,
        request=Request(path, request_headers),
        response=Response(101, response_headers),
        subprotocol=handshake.subprotocol,
        read_ahead=read_ahead,
    )


def reconnect(
    url: str, *, backoff: shared.Backoff | None = None, **options: Any
) -> Iterator[Connection]:
    """Connections to ``url``, one after the other, forever: each time the previous one
    is done (the loop body ended), the next is opened, waiting out failures (network
    errors, timeouts, 5xx) with exponential backoff (1 s doubling to 60 s, with jitter).

    Other failures (a 4xx refusal, a bad response) are raised. Each connection is closed
    when the loop moves on; ``break`` to stop::

        for ws in reconnect("wss://example.com/feed"):
            try:
                for message in ws:
                    handle(message)
            except wsio.ConnectionClosed:
                continue
    """
    Options(**{k: v for k, v in options.items() if k in _OPTION_KEYS})  # fail early
    delays = backoff or shared.Backoff()
    while True:
        try:
            connection = connect(url, **options)
        except Exception as error:
            if not shared.retryable(error):
                raise
            delay = delays.next()
            log.info("connecting to %s failed (%s); retrying in %.1f s", url, error, delay)
            time.sleep(delay)
            continue
        delays.reset()
        try:
            yield connection
        finally:
            connection.close()


_OPTION_KEYS = frozenset(Options.__dataclass_fields__)
