"""``create_connection``: a callback-level WebSocket client (plain TCP on asyncio's own
loop on wsio's compiled transport; TLS, Unix sockets and other loops through the loop's
``create_connection``)."""

from __future__ import annotations

import asyncio
import socket
import ssl as ssl_module
from collections.abc import Callable, Sequence
from typing import Any

from wsio._engine.extensions import DEFAULT_COMPRESSION_THRESHOLD, PerMessageDeflate
from wsio._engine.handshake import (
    ACCEPTED,
    NEED_DATA,
    ClientHandshake,
    HeadersLike,
)
from wsio._engine.http import HeadError, ResponseParser
from wsio._engine.httphead import Option
from wsio._engine.limits import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_FRAGMENTS,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_HEAD_SIZE,
    DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_LINE,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_OPEN_TIMEOUT,
)
from wsio._engine.protocol import ClientProtocol
from wsio.aio._callback import DEFAULT_WRITE_TIMEOUT, Stream, Transport
from wsio.aio._socket import SocketTransport, fits
from wsio.aio.listener import Listener
from wsio.dialer import (
    Dialer,
    Proxy,
    Target,
    default_ssl_context,
    encode_request_headers,
    parse_url,
)
from wsio.exceptions import (
    HandshakeTimeoutError,
    IncompleteHandshakeError,
    MalformedResponseError,
)
from wsio.wsflate import Extension
from wsio.wsflate.parameters import EXTENSION_NAME, Parameters

__all__ = ["create_connection"]


class _ClientStream(Stream, asyncio.BufferedProtocol):
    """One client connection: the request, the 101, then :class:`Stream`'s loop."""

    __slots__ = ("_done", "_opts", "_tr")

    def __init__(
        self, factory: Callable[[], Listener], hs: ClientHandshake, opts: dict[str, Any]
    ) -> None:
        Stream.__init__(self, factory, False)
        self._hs = hs
        self._opts = opts
        self._tr: Any = None
        self._done: asyncio.Future[tuple[Transport, Listener]] = (
            asyncio.get_running_loop().create_future()
        )

    def connection_made(self, transport: Any) -> None:
        self._tr = transport
        request = self._hs.data_to_send()
        on_request_bytes = self._opts["on_request_bytes"]
        if on_request_bytes is not None:
            on_request_bytes(request)
        transport.write(request)

    def _hs_get_buffer(self, sizehint: int) -> memoryview:
        hs: ClientHandshake = self._hs
        return hs.get_buffer(sizehint)

    def _hs_updated(self, nbytes: int) -> None:
        hs: ClientHandshake = self._hs
        if self._done.done():
            return
        hs.buffer_updated(nbytes)
        if hs.state == NEED_DATA:
            return
        if hs.state != ACCEPTED:
            self._fail(hs.error or IncompleteHandshakeError("the handshake failed"))
            return
        result = hs.handshake
        assert result is not None
        opts = self._opts
        extensions: tuple[PerMessageDeflate, ...] = ()
        deflate: Extension | None = opts["deflate"]
        try:
            for option in result.extensions:
                if deflate is not None and option.name.lower() == EXTENSION_NAME:
                    parameters = deflate.accept(option)
                    extensions = (PerMessageDeflate(parameters, threshold=opts["threshold"]),)
        except Exception as exc:
            self._fail(exc)
            return
        trailing = bytes(hs.trailing())
        listener = self._factory()
        core = ClientProtocol(
            max_frame_size=opts["max_frame_size"],
            max_message_size=opts["max_message_size"],
            max_fragments=opts["max_fragments"],
            auto_pong=opts["auto_pong"],
            streaming=not listener.messages,
            extensions=extensions,
        )
        ws = Transport(
            core,
            self._tr,
            result.subprotocol,
            extensions,
            opts["close_timeout"],
            opts["write_timeout"],
        )
        self._start(core, ws, listener)
        self._done.set_result((ws, listener))
        if trailing:
            self._feed(trailing)

    def _fail(self, exc: BaseException) -> None:
        if not self._done.done():
            self._done.set_exception(exc)
        self._tr.close()

    def _connection_ended(self) -> None:
        self._tr = None  # a link back to the transport that holds this protocol: no cycle
        if not self._done.done():
            self._done.set_exception(
                IncompleteHandshakeError("the connection closed during the opening handshake")
            )


async def create_connection(
    listener_factory: Callable[[], Listener],
    url: str,
    *,
    sock: Any = None,
    path: str | None = None,
    ssl: ssl_module.SSLContext | None = None,
    server_hostname: str | None = None,
    host: str | None = None,
    headers: HeadersLike | None = None,
    subprotocols: Sequence[str] = (),
    extensions: Sequence[Option] = (),
    proxy: str | bool | None = True,
    on_header: Callable[[memoryview, memoryview], object] | None = None,
    on_request_bytes: Callable[[bytes], object] | None = None,
    max_line: int = DEFAULT_MAX_LINE,
    max_headers: int = DEFAULT_MAX_HEADERS,
    max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
    compression: bool | Parameters = True,
    compression_threshold: int = DEFAULT_COMPRESSION_THRESHOLD,
    max_frame_size: int | None = DEFAULT_MAX_FRAME_SIZE,
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
    max_fragments: int | None = DEFAULT_MAX_FRAGMENTS,
    auto_pong: bool = True,
    open_timeout: float | None = DEFAULT_OPEN_TIMEOUT,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    write_timeout: float | None = DEFAULT_WRITE_TIMEOUT,
) -> tuple[Transport, Listener]:
    """Open a WebSocket connection to ``url`` (ws, wss, ws+unix, wss+unix) with
    ``listener_factory()`` as its listener; returns the transport and the listener once
    the handshake is done (``on_connect`` has run).

    ``sock=`` uses a connected socket, ``path=`` a Unix socket; ``wss`` verifies the
    server's certificate (``ssl=`` for another context). ``headers`` are extra request
    headers; ``subprotocols`` and ``extensions`` are offered (permessage-deflate is
    offered unless ``compression=False``; ``compression=`` may
    be the wsflate.Parameters to offer). ``proxy`` is :class:`wsio.Dialer`'s (True: the
    environment's HTTP CONNECT proxy, a URL: that one, None: none); ``on_header`` and
    ``on_request_bytes`` are its hooks too, ``max_line``, ``max_headers`` and
    ``max_head_size`` its limits on the response head. ``open_timeout`` bounds
    connecting, the proxy and the handshake together (HandshakeTimeoutError);
    ``write_timeout`` drops a server that reads nothing for that long while the write
    buffer is over its high-water mark (1006; None: no bound).
    """
    target = parse_url(url, path)
    deflate = None
    if compression:
        # The offer browsers make: any window size the server asks this client to use.
        deflate = Extension(
            compression
            if isinstance(compression, Parameters)
            else Parameters(client_max_window_bits=True)
        )
    offered = list(extensions)
    if deflate is not None:
        offered.append(deflate.offer())
    hs = ClientHandshake(
        resource=target.resource,
        host=host if host is not None else target.host_header,
        subprotocols=subprotocols,
        extensions=offered,
        headers=encode_request_headers(headers),
        authorization=target.authorization,
        on_header=on_header,
        max_line=max_line,
        max_headers=max_headers,
        max_head_size=max_head_size,
    )
    # The Dialer's rules for proxies (and its check of the proxy URL), not a copy.
    dialer = Dialer(
        proxy=proxy,
        timeout=open_timeout,
        max_line=max_line,
        max_headers=max_headers,
        max_head_size=max_head_size,
    )
    opts = {
        "deflate": deflate,
        "threshold": compression_threshold,
        "max_frame_size": max_frame_size,
        "max_message_size": max_message_size,
        "max_fragments": max_fragments,
        "auto_pong": auto_pong,
        "close_timeout": close_timeout,
        "write_timeout": write_timeout,
        "on_request_bytes": on_request_bytes,
    }
    context = None
    if target.secure:
        context = ssl if ssl is not None else default_ssl_context()
        if server_hostname is None and sock is None and target.unix_path is None:
            server_hostname = target.host
        elif server_hostname is None:
            server_hostname = target.host if target.unix_path is None else "localhost"
    loop = asyncio.get_running_loop()
    stream = _ClientStream(listener_factory, hs, opts)

    async def open() -> tuple[Transport, Listener]:
        connected = sock
        if target.unix_path is not None or (sock is not None and sock.family == _unix()):
            await loop.create_unix_connection(
                lambda: stream,
                target.unix_path if sock is None else None,
                sock=sock,
                ssl=context,
                server_hostname=server_hostname,
            )
            return await stream._done
        proxy = None if connected is not None else dialer.proxy_for(target)
        if proxy is not None:
            connected = await _tunnel(dialer, proxy, target)
        if context is None and fits(loop):
            # Plain TCP on asyncio's own loop: wsio's compiled transport, as its servers.
            if connected is None:
                connected = await _connect_tcp(loop, target.host, target.port)
            try:
                connected.setblocking(False)
                peer = connected.getpeername()
            except BaseException:
                connected.close()
                raise
            SocketTransport(loop, connected, stream, peer)
            return await stream._done
        address: tuple[Any, Any] = (
            (None, None) if connected is not None else (target.host, target.port)
        )
        try:
            await loop.create_connection(
                lambda: stream,
                *address,
                sock=connected,
                ssl=context,
                server_hostname=server_hostname,
            )
        except BaseException:
            if proxy is not None and stream._tr is None:
                connected.close()  # the tunnel's socket, never given to a transport
            raise
        return await stream._done

    try:
        return await asyncio.wait_for(open(), open_timeout)
    except asyncio.TimeoutError:
        _drop(stream)
        raise HandshakeTimeoutError(f"opening {url} took over {open_timeout} s") from None
    except BaseException:
        # A failed handshake closed its transport; a cancelled one (the caller's
        # timeout, a task cancelled) must too: otherwise it stays open until the
        # garbage collector finds it (ResourceWarning: unclosed transport).
        _drop(stream)
        raise


def _drop(stream: _ClientStream) -> None:
    # The handshake did not finish: the connection is dropped at once.
    if stream._tr is not None:
        stream._tr.abort()


def _unix() -> int | None:
    return getattr(socket, "AF_UNIX", None)


async def _tunnel(dialer: Dialer, proxy: Proxy, target: Target) -> socket.socket:
    """A socket connected to ``target`` through ``proxy`` (its CONNECT exchange done),
    on the loop: no thread, and bounded by the caller's open_timeout. The Dialer's rules
    (its request, its answer to a refusal) and limits on the proxy's response head."""
    loop = asyncio.get_running_loop()
    sock = await _connect_tcp(loop, proxy.host, proxy.port)
    try:
        await loop.sock_sendall(sock, proxy.connect_request(target))
        parser = ResponseParser(
            max_line=dialer.max_line, max_headers=dialer.max_headers, max_size=dialer.max_head_size
        )
        try:
            while True:
                count = await loop.sock_recv_into(sock, parser.free())
                if count == 0:
                    raise IncompleteHandshakeError(
                        f"the connection closed after {parser.filled} bytes of the proxy "
                        "response head"
                    )
                if parser.advance(count):
                    break
        except HeadError as exc:
            raise MalformedResponseError(f"proxy response: {exc}") from None
        proxy.check_connect_response(parser)
    except BaseException:
        sock.close()  # an error, open_timeout or a cancellation: the socket is not kept
        raise
    return sock


async def _connect_tcp(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    # A non-blocking TCP socket connected to the first of host's addresses that answers
    # (as socket.create_connection, the Dialer's), with TCP_NODELAY: frames are small.
    try:
        # An IP literal needs no lookup (asyncio's create_connection skips it too); a
        # name is resolved in the loop's executor, as asyncio does.
        addresses = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )
    except socket.gaierror:
        addresses = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    error: OSError | None = None
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise error if error is not None else OSError(f"no address for {host!r}")


# -- The high level: connect() -----------------------------------------------------------

import logging as _logging  # noqa: E402
from collections.abc import (  # noqa: E402
    AsyncIterator as _AsyncIterator,
    Generator as _Generator,
)

from wsio import _connection as _shared  # noqa: E402
from wsio.aio.connection import _FOREVER, Connection  # noqa: E402

__all__ += ["connect"]

_log = _logging.getLogger("wsio")


class connect:  # lowercase: it is used as a function, `await connect(...)`
    """Open a WebSocket connection to ``url`` (ws, wss, ws+unix, wss+unix).

    ``await connect(url)`` gives a :class:`~wsio.aio.Connection`; ``async with
    connect(url) as ws`` closes it at the end; ``async for ws in connect(url)`` opens
    a connection each time the previous one is done, waiting out failures (network
    errors, timeouts, 5xx) with exponential backoff (``backoff=``, a
    :class:`wsio._connection.Backoff`); other failures (a 4xx refusal) are raised.

    Keywords: the connection's (:class:`wsio._connection.Options`: ``open_timeout``,
    ``ping_interval``, ``ping_timeout``, ``close_timeout``, ``max_message_size``,
    ``max_queue``, ``write_limit``, ``compression``, ...) and :func:`create_connection`'s
    (``headers``, ``subprotocols``, ``proxy``, ``ssl``, ``sock``, ``path`` or
    ``unix_path``, ``server_hostname``, ``on_header``, ``max_head_size``...). The
    connection's ``request`` is what was sent (every header line), its ``response`` the
    101's status and the headers that are not the handshake's own. Compression offers
    what wsio.sync.connect does (``client_no_context_takeover``: an idle client keeps
    no compressor state).
    """

    def __init__(self, url: str, *, backoff: _shared.Backoff | None = None, **options: Any):
        self.url = url
        self.backoff = backoff
        self.options, self._rest = _shared.split_options(options)
        self._connection: Connection | None = None

    async def _open(self) -> Connection:
        config = self.options
        rest = dict(self._rest)
        if "unix_path" in rest:  # the Dialer's (and wsio.sync.connect's) name for path=
            rest["path"] = rest.pop("unix_path")
        sent: list[bytes] = []
        received: list[tuple[str, str]] = []
        on_header = rest.pop("on_header", None)
        on_request_bytes = rest.pop("on_request_bytes", None)

        def keep_request(request: bytes) -> None:
            sent.append(request)
            if on_request_bytes is not None:
                on_request_bytes(request)

        def keep_header(name: memoryview, value: memoryview) -> None:
            received.append((bytes(name).decode("latin-1"), bytes(value).decode("latin-1")))
            if on_header is not None:
                on_header(name, value)

        connection = Connection(config)
        await create_connection(
            lambda: connection,
            self.url,
            # wsio.sync's offer: no compressor context kept between this client's
            # messages, so an idle client holds no zlib state.
            compression=_shared.CLIENT_DEFLATE if config.compression == "deflate" else False,
            compression_threshold=config.compression_threshold,
            max_frame_size=config.max_frame_size,
            max_message_size=config.max_message_size,
            max_fragments=config.max_fragments,
            open_timeout=config.open_timeout,
            close_timeout=_FOREVER if config.close_timeout is None else config.close_timeout,
            on_header=keep_header,
            on_request_bytes=keep_request,
            **rest,
        )
        # Set before the application sees the connection (connect() has not returned).
        connection._request = sent[0]
        connection._response = _shared.Response(101, received)
        return connection

    def __await__(self) -> _Generator[Any, None, Connection]:
        return self._open().__await__()

    async def __aenter__(self) -> Connection:
        self._connection = await self._open()
        return self._connection

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> None:
        assert self._connection is not None
        await self._connection.__aexit__(exc_type, exc, traceback)

    async def __aiter__(self) -> _AsyncIterator[Connection]:
        delays = self.backoff or _shared.Backoff()
        while True:
            try:
                connection = await self._open()
            except Exception as error:
                if not _shared.retryable(error):
                    raise
                delay = delays.next()
                _log.info(
                    "connecting to %s failed (%s); retrying in %.1f s", self.url, error, delay
                )
                await asyncio.sleep(delay)
                continue
            delays.reset()
            try:
                yield connection
            finally:
                await connection.close()
