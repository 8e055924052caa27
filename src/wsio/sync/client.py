"""Opening client connections for threads: :class:`connect`.

The handshake is :class:`wsio.Dialer`'s (TLS with verification, proxies, Unix sockets,
every hook); compression is offered unless ``compression=None``.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

from wsio import _connection as shared
from wsio._connection import Request, Response
from wsio.dialer import Dialer
from wsio.sync.connection import Connection
from wsio.wsflate import Extension

__all__ = ["connect"]

log = logging.getLogger("wsio")


class connect:  # lowercase: used as a function, `with connect(url) as ws`, as in wsio.aio
    """A WebSocket client for ``url`` (``ws://``, ``wss://``); the options are checked
    at once, nothing is opened until asked:

    - ``with connect(url) as ws``: one connection, closed at the end of the block;
    - ``ws = connect(url).open()``: one connection, yours to close;
    - ``for ws in connect(url)``: a new connection each time the loop comes round (the
      previous one is closed), waiting out failures (network errors, timeouts, 5xx)
      with exponential backoff (``backoff=``, a :class:`wsio._connection.Backoff`: 1 s
      doubling to 60 s, with jitter); other failures (a 4xx refusal, a bad response)
      are raised; ``break`` to stop::

          for ws in connect("wss://example.com/feed"):
              try:
                  for message in ws:
                      handle(message)
              except wsio.ConnectionClosed:
                  continue

    Keywords: the connection's (:class:`wsio._connection.Options`: ``open_timeout``,
    ``ping_interval``, ``ping_timeout``, ``close_timeout``, ``max_message_size``,
    ``max_queue``, ``write_limit``, ``compression``, ...) and :class:`wsio.Dialer`'s
    (``subprotocols``, ``headers``, ``ssl``, ``proxy``, ``unix_path``, ...; its
    ``timeout`` is ``open_timeout``). ``sock=`` is a connected socket to use instead.
    """

    def __init__(self, url: str, *, backoff: shared.Backoff | None = None, **options: Any):
        self.url = url
        self.backoff = backoff
        self.options, self._rest = shared.split_options(options)
        self._connection: Connection | None = None

    def open(self) -> Connection:
        """Open one connection (the opening handshake within ``open_timeout``).

        Raises a HandshakeError, OSError or ssl.SSLError.
        """
        config = self.options
        rest = dict(self._rest)
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
        conn, handshake = dialer.dial(self.url, sock=sock)
        try:
            agreed = extension.accepted() if extension is not None else None
            split = urllib.parse.urlsplit(self.url)
            path = (split.path or "/") + (f"?{split.query}" if split.query else "")
            headers = rest.get("headers")
            request_headers = list(headers.items()) if isinstance(headers, Mapping) else []
            return Connection(
                conn.socket,
                shared.new_protocol(True, config, agreed, streaming=True),
                config,
                request=Request(path, request_headers),
                response=Response(101, response_headers),
                subprotocol=handshake.subprotocol,
                read_ahead=conn.take_read_ahead(),
            )
        except BaseException:
            conn.socket.close()  # upgraded, but no Connection owns it
            raise

    def __enter__(self) -> Connection:
        self._connection = self.open()
        return self._connection

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._connection is not None
        self._connection.__exit__(exc_type, exc, traceback)

    def __iter__(self) -> Iterator[Connection]:
        delays = self.backoff or shared.Backoff()
        while True:
            try:
                connection = self.open()
            except Exception as error:
                if not shared.retryable(error):
                    raise
                delay = delays.next()
                log.info("connecting to %s failed (%s); retrying in %.1f s", self.url, error, delay)
                time.sleep(delay)
                continue
            delays.reset()
            try:
                yield connection
            finally:
                connection.close()
