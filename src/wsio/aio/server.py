"""``create_server``: a callback-level WebSocket server on asyncio's ``create_server``."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

from wsio._engine.extensions import DEFAULT_COMPRESSION_THRESHOLD, PerMessageDeflate
from wsio._engine.handshake import (
    ACCEPTED,
    NEED_DATA,
    ServerHandshake,
    ServerRules,
    build_rejection,
)
from wsio._engine.http import RequestParser
from wsio._engine.limits import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_FRAGMENTS,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
)
from wsio._engine.protocol import ServerProtocol
from wsio.aio._callback import DEFAULT_WRITE_TIMEOUT, Stream, Transport
from wsio.aio._socket import SocketTransport, fits
from wsio.aio.listener import Listener
from wsio.server import DEFAULT_MAX_CONNECTIONS, Backoff, accept_nowait
from wsio.wsflate import Extension, Parameters

__all__ = ["create_server"]

_BUSY = build_rejection(503, "too many connections")

#: Request-head parsers a server keeps for its next handshakes: each owns a 4 KiB head
#: buffer (more only while a larger head is read), so 64 of them, enough for a burst of
#: handshakes in flight at once, hold 256 KiB while idle.
_POOLED_PARSERS = 64


class _Config:
    """What every connection of one server shares (read-only but for ``active``)."""

    factory: Callable[[], Listener]
    rules: ServerRules
    deflate: Extension | None
    threshold: int
    max_frame_size: int | None
    max_message_size: int | None
    max_fragments: int | None
    auto_pong: bool
    handshake_timeout: float | None
    close_timeout: float
    write_timeout: float | None
    max_connections: int | None
    logger: logging.Logger
    on_request_bytes: Callable[[bytes], object] | None
    on_response_bytes: Callable[[bytes], object] | None

    def __init__(self, **options: Any) -> None:
        self.__dict__.update(options)
        # The server's loop: asyncio.get_running_loop() costs a getpid(2) a call (it
        # checks for a fork), twice a connection otherwise.
        self.loop = asyncio.get_running_loop()
        self.active = 0
        # The permessage-deflate agreements made so far, each with the extensions tuple
        # every connection that made it shares (each binds its own codec in its core):
        # one PerMessageDeflate, not one per connection. A few at most (the parameters
        # a client may ask for are a small set).
        self.agreed: dict[Parameters, tuple[PerMessageDeflate, ...]] = {}
        # Parsers of finished handshakes, for the next ones (see _POOLED_PARSERS).
        self.parsers: list[RequestParser] = []
        # Connections still in their opening handshake -> their deadline. One timer
        # sweeps them all (see _sweep), not a TimerHandle made and cancelled per
        # connection: every deadline is start + handshake_timeout, so the dict's
        # insertion order is the deadlines' order.
        self.handshaking: dict[_ServerStream, float] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    def start_handshake(self, stream: _ServerStream, loop: asyncio.AbstractEventLoop) -> None:
        """Give ``stream`` handshake_timeout seconds to finish its request."""
        assert self.handshake_timeout is not None
        self.handshaking[stream] = loop.time() + self.handshake_timeout
        if self._sweeper is None:
            self._sweeper = loop.call_later(self.handshake_timeout, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        # Drop the connections whose deadline passed; come back at the next deadline
        # (the dict holds only handshakes still in flight: a finished one leaves it, so
        # the timer fires only for clients that are late).
        self._sweeper = None
        now = loop.time()
        handshaking = self.handshaking
        while handshaking:
            stream, deadline = next(iter(handshaking.items()))
            if deadline > now:
                self._sweeper = loop.call_at(deadline, self._sweep, loop)
                return
            del handshaking[stream]
            stream._handshake_timed_out()

    def end_handshake(self, stream: _ServerStream) -> None:
        """``stream``'s handshake is over (done, or the connection ended)."""
        handshaking = self.handshaking
        if handshaking.pop(stream, None) is not None and not handshaking:
            # None left in flight: no timer either. A pending timer makes every turn
            # of asyncio's loop compute a select timeout (five Python calls an echo on
            # an otherwise idle server); the next handshake starts one again.
            sweeper = self._sweeper
            if sweeper is not None:
                self._sweeper = None
                sweeper.cancel()

    def release(self, parser: RequestParser) -> None:
        """Keep a parser whose handshake is over for the next connection."""
        if len(self.parsers) < _POOLED_PARSERS:
            self.parsers.append(parser)


class _ServerStream(Stream, asyncio.BufferedProtocol):
    """One server connection: the opening handshake, then :class:`Stream`'s loop."""

    __slots__ = ("_cfg", "_parser", "_tr")

    def __init__(self, cfg: _Config) -> None:
        Stream.__init__(self, cfg.factory, False)
        self._cfg = cfg
        self._tr: Any = None
        self._parser: RequestParser | None = None

    def connection_made(self, transport: Any) -> None:
        cfg = self._cfg
        self._tr = transport
        cfg.active += 1
        parser = cfg.parsers.pop() if cfg.parsers else cfg.rules.new_parser()
        self._parser = parser
        self._hs = ServerHandshake(cfg.rules, parser)
        if cfg.max_connections is not None and cfg.active > cfg.max_connections:
            cfg.logger.warning("refusing a connection: max_connections=%d", cfg.max_connections)
            transport.write(_BUSY)
            transport.close()
            return
        if cfg.handshake_timeout is not None:
            cfg.start_handshake(self, cfg.loop)

    def _handshake_timed_out(self) -> None:
        # A client that never finishes its request holds nothing for longer than this.
        self._cfg.logger.info("opening handshake timed out")
        self._tr.abort()

    def _hs_get_buffer(self, sizehint: int) -> memoryview:
        hs: ServerHandshake = self._hs
        return hs.get_buffer(sizehint)

    def _hs_updated(self, nbytes: int) -> None:
        hs: ServerHandshake = self._hs
        cfg = self._cfg
        if self._tr.is_closing():
            return
        if cfg.deflate is not None:
            cfg.deflate.reset()  # the loop's thread is the only one: one Extension serves all
        hs.buffer_updated(nbytes)
        if hs.state == NEED_DATA:
            return
        cfg.end_handshake(self)
        response = hs.data_to_send()
        if cfg.on_request_bytes is not None:
            cfg.on_request_bytes(bytes(hs.request_head()))
        if cfg.on_response_bytes is not None:
            cfg.on_response_bytes(response)
        self._tr.write(response)
        if hs.state != ACCEPTED:
            cfg.logger.info("refused an opening handshake: %s", hs.rejection)
            self._tr.close()
            return
        result = hs.handshake
        assert result is not None
        extensions: tuple[PerMessageDeflate, ...] = ()
        if cfg.deflate is not None:
            parameters = cfg.deflate.accepted()
            if parameters is not None:
                extensions = cfg.agreed.get(parameters, ())
                if not extensions:
                    extensions = cfg.agreed[parameters] = (
                        PerMessageDeflate(parameters, threshold=cfg.threshold),
                    )
        # Bytes after the request (frames sent before the 101 arrived) are rare: no
        # copy unless there are some.
        rest = hs.trailing()
        trailing = bytes(rest) if len(rest) else None
        # Nothing reads the head's buffer any more (the request bytes and the trailing
        # ones are copies): the next handshake may have it. A refused one keeps its
        # parser (its transport is closing; no pool for the rare case).
        self._parser = None
        cfg.release(hs.parser)
        listener = cfg.factory()
        core = ServerProtocol(
            max_frame_size=cfg.max_frame_size,
            max_message_size=cfg.max_message_size,
            max_fragments=cfg.max_fragments,
            auto_pong=cfg.auto_pong,
            streaming=not listener.messages,
            extensions=extensions,
        )
        ws = Transport(
            core,
            self._tr,
            result.subprotocol,
            extensions,
            cfg.close_timeout,
            cfg.write_timeout,
            cfg.loop,
        )
        self._start(core, ws, listener)
        if trailing:
            self._feed(trailing)

    def _connection_ended(self) -> None:
        self._tr = None  # a link back to the transport that holds this protocol: no cycle
        self._cfg.active -= 1
        if self._parser is not None:  # ended during its handshake: nothing reads it now
            self._cfg.release(self._parser)
            self._parser = None
        self._cfg.end_handshake(self)


class _Acceptor:
    """Accepts for one listening socket of a server on asyncio's selector loop and gives
    each connection wsio's compiled transport (wsio.aio._socket) at once. asyncio's own
    accept runs a Task (a coroutine and a future) per connection, then its Python
    transport; out of descriptors it
    reports a traceback a second to the loop's exception handler. Here: neither, and the
    pause that doubles from 5 ms to 1 s with one log line an episode of wsio.server."""

    def __init__(
        self,
        loop: Any,
        server: asyncio.Server,
        sock: socket.socket,
        factory: Callable[[], _ServerStream],
        backlog: int,
        logger: logging.Logger,
    ) -> None:
        self._loop = loop
        self._server = server
        self._sock = sock
        self._fd = sock.fileno()
        # Asked once: the family is the listener's (an enum made per call otherwise).
        self._tcp = sock.family in (socket.AF_INET, socket.AF_INET6)
        self._factory = factory
        self._backlog = backlog
        self._logger = logger
        self._backoff = Backoff(logger)

    def watch(self) -> None:
        """Accept from now on in place of asyncio's reader (the server is serving)."""
        if self._server.is_serving() and self._sock.fileno() == self._fd:
            self._loop._add_reader(self._fd, self._accept)

    def _accept(self) -> None:
        # As asyncio's accept: up to `backlog` connections per readiness of the listener.
        for _ in range(self._backlog):
            try:
                got = accept_nowait(self._sock, self._backoff)
            except OSError:
                self._logger.exception("accept() failed on %s", self._sock)
                return
            if got is None:
                return
            if isinstance(got, float):
                # The kernel keeps the connections waiting in the backlog meanwhile.
                self._loop._remove_reader(self._fd)
                self._loop.call_later(got, self.watch)
                return
            conn, address = got
            try:
                conn.setblocking(False)
                SocketTransport(self._loop, conn, self._factory(), address, self._server, self._tcp)
            except Exception:
                conn.close()
                self._logger.exception("could not set up a connection from %s", address)


def _accept_directly(
    loop: Any,
    server: asyncio.Server,
    factory: Callable[[], _ServerStream],
    backlog: int,
    logger: logging.Logger,
) -> None:
    # On asyncio's own selector loop and without TLS (a TLS transport is asyncio's
    # business), an _Acceptor replaces asyncio's reader on each listening socket;
    # elsewhere (uvloop, its own compiled accept) asyncio's stays.
    sockets = getattr(server, "_sockets", None)
    if not (fits(loop) and sockets and server.is_serving()):
        return
    for sock in sockets:
        _Acceptor(loop, server, sock, factory, backlog, logger).watch()


async def create_server(
    listener_factory: Callable[[], Listener],
    host: str | list[str] | None = None,
    port: int | None = None,
    *,
    sock: Any = None,
    path: str | None = None,
    ssl: Any = None,
    reuse_port: bool | None = None,
    backlog: int = 100,
    subprotocols: Any = None,
    compression: bool = True,
    compression_threshold: int = DEFAULT_COMPRESSION_THRESHOLD,
    max_frame_size: int | None = DEFAULT_MAX_FRAME_SIZE,
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
    max_fragments: int | None = DEFAULT_MAX_FRAGMENTS,
    auto_pong: bool = True,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    write_timeout: float | None = DEFAULT_WRITE_TIMEOUT,
    max_connections: int | None = DEFAULT_MAX_CONNECTIONS,
    logger: logging.Logger | None = None,
    on_request_bytes: Callable[[bytes], object] | None = None,
    on_response_bytes: Callable[[bytes], object] | None = None,
    **rules: Any,
) -> asyncio.Server:
    """Listen for WebSocket connections; each accepted one gets ``listener_factory()``.

    Shaped like ``loop.create_server`` (``host``, ``port``, ``sock=``, ``ssl=``,
    ``reuse_port=``, ``backlog=``); ``path=`` listens on a Unix socket instead. The other
    keywords: ``subprotocols`` (the names this server speaks, in its preference) and
    every other :class:`~wsio.Upgrader` option (``origins=``, the hooks, ``header``...);
    permessage-deflate offered by clients is accepted unless ``compression=False``
    (messages under ``compression_threshold`` bytes go out uncompressed); the limits
    (over one: 1009); ``handshake_timeout`` for the request (None: no limit),
    ``close_timeout`` for the peer's Close and for writing what is queued once closing;
    ``write_timeout``: a peer that reads nothing while the write buffer is over its
    high-water mark for that long is dropped (1006; None: no bound);
    ``max_connections`` (default 1000, as wsio.server's; more get 503; None: no bound);
    ``on_request_bytes(raw)``: the request head as received (header names the hooks
    saw canonicalised), once the handshake is decided; ``on_response_bytes(raw)``: the
    response about to be sent, refusals included. Returns asyncio's Server.
    """
    if subprotocols is not None:
        rules["protocol"] = subprotocols
    deflate = None
    if compression and "negotiate" not in rules:
        deflate = Extension()
        rules["negotiate"] = deflate.negotiate
    cfg = _Config(
        factory=listener_factory,
        rules=ServerRules(**rules),
        deflate=deflate,
        threshold=compression_threshold,
        max_frame_size=max_frame_size,
        max_message_size=max_message_size,
        max_fragments=max_fragments,
        auto_pong=auto_pong,
        handshake_timeout=handshake_timeout,
        close_timeout=close_timeout,
        write_timeout=write_timeout,
        max_connections=max_connections,
        logger=logger if logger is not None else logging.getLogger("wsio.aio"),
        on_request_bytes=on_request_bytes,
        on_response_bytes=on_response_bytes,
    )
    loop = cfg.loop

    def factory() -> _ServerStream:
        return _ServerStream(cfg)

    server: asyncio.Server
    if path is not None or (sock is not None and sock.family == getattr(socket, "AF_UNIX", None)):
        server = await loop.create_unix_server(factory, path, sock=sock, ssl=ssl, backlog=backlog)
    else:
        server = await loop.create_server(
            factory, host, port, sock=sock, ssl=ssl, reuse_port=reuse_port, backlog=backlog
        )
    if ssl is None:
        _accept_directly(loop, server, factory, backlog, cfg.logger)
    return server


# -- The high level: serve() -------------------------------------------------------------

import contextlib as _contextlib  # noqa: E402
import inspect as _inspect  # noqa: E402
from collections.abc import Awaitable as _Awaitable, Generator as _Generator  # noqa: E402

from wsio import _connection as _shared  # noqa: E402
from wsio.aio.connection import _CONTEXT, _FOREVER, Connection  # noqa: E402
from wsio.exceptions import ConnectionClosed as _ConnectionClosed  # noqa: E402

__all__ += ["Server", "serve"]

_log = logging.getLogger("wsio")
_GOING_AWAY = "server shutdown"
_TASK_NAME = "wsio.aio handler"


async def _awaited(awaitable: _Awaitable[object]) -> object:
    # A handler that returns an awaitable that is not a coroutine.
    return await awaitable


class Server:
    """Serves WebSocket connections, a task running ``handler(connection)`` each.

    Made by :func:`serve`. ``async with`` starts listening and, on the way out,
    :meth:`close`: stop accepting, end every connection with 1001 (going away) and wait.
    """

    def __init__(
        self,
        handler: Callable[[Connection], _Awaitable[object]],
        host: Any,
        port: int | None,
        options: dict[str, Any],
    ) -> None:
        self.handler = handler
        self.options, rest = _shared.split_options(options)
        self._where = (host, port)
        # The handshake's request and response as the raw heads the callback level
        # hands over (the Connection parses them if asked: no parse, no hook call per
        # header, a bytes object each per connection).
        self._rest = rest
        self._request = self._response = b""
        on_request_bytes = rest.get("on_request_bytes")
        on_response_bytes = rest.get("on_response_bytes")

        def keep_request(request: bytes) -> None:
            self._request = request
            if on_request_bytes is not None:
                on_request_bytes(request)

        def keep_response(response: bytes) -> None:
            self._response = response
            if on_response_bytes is not None:
                on_response_bytes(response)

        rest["on_request_bytes"] = keep_request
        rest["on_response_bytes"] = keep_response
        self._server: asyncio.Server | None = None
        # Each running handler's task -> its connection: it keeps the task alive (asyncio
        # holds tasks weakly) and tells the one done callback, bound once here, which
        # connection ended (no bound method per connection).
        self._tasks: dict[asyncio.Task[Any], Connection] = {}
        self._task_done = self._handler_done
        self._connections: set[Connection] = set()
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None  # start()'s

    async def start(self) -> Server:
        """Listen (``async with`` does it); returns the server."""
        config = self.options
        self._loop = asyncio.get_running_loop()
        self._server = await create_server(
            self._new_listener,
            *self._where,
            compression=config.compression == "deflate",
            compression_threshold=config.compression_threshold,
            max_frame_size=config.max_frame_size,
            max_message_size=config.max_message_size,
            max_fragments=config.max_fragments,
            handshake_timeout=config.handshake_timeout,
            close_timeout=_FOREVER if config.close_timeout is None else config.close_timeout,
            logger=_log,
            **self._rest,
        )
        return self

    def _new_listener(self) -> Listener:
        # Called by the callback level right after the request's hooks ran and the 101
        # was written (same call on the loop): both are this connection's.
        return Connection(self.options, request=self._request, response=self._response, server=self)

    def _opened(self, connection: Connection) -> None:
        # The connection is open: known to close() until it ends, and its handler starts.
        self._connections.add(connection)
        if self._closing:
            connection._send_close(1001, _GOING_AWAY)
            return
        try:
            handler = self.handler(connection)
        except Exception as exc:
            self._handler_failed(connection, exc)
            return
        if not _inspect.iscoroutine(handler):
            handler = _awaited(handler)
        # The task runs the handler's coroutine itself, with no wrapper coroutine (its
        # frame would stay for as long as the handler waits) and a shared name and
        # callback context (not a string and a Context per connection): the end of the
        # handler is handled by a done callback.
        task = connection._loop.create_task(handler, name=_TASK_NAME)
        self._tasks[task] = connection
        task.add_done_callback(self._task_done, context=_CONTEXT)

    def _handler_done(self, task: asyncio.Task[Any]) -> None:
        # The connection is closed when the handler returns or is cancelled (1000), or
        # raises (1011; ConnectionClosed is the peer going away: nothing to report).
        connection = self._tasks.pop(task)
        error = None if task.cancelled() else task.exception()
        if isinstance(error, Exception) and not isinstance(error, _ConnectionClosed):
            self._handler_failed(connection, error)
        else:
            connection._send_close(1000, "")
            connection.transport.release_close()  # a Close held for the handler's answers

    def _handler_failed(self, connection: Connection, error: Exception) -> None:
        _log.error("%s: handler failed", connection.remote_address, exc_info=error)
        connection._send_close(1011, "")
        connection.transport.release_close()

    def _ended(self, connection: Connection) -> None:
        self._connections.discard(connection)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets (empty before :meth:`start`)."""
        return () if self._server is None else tuple(self._server.sockets)

    async def serve_forever(self) -> None:
        """Serve until cancelled or :meth:`close`."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        with _contextlib.suppress(asyncio.CancelledError):
            await self._server.serve_forever()

    async def close(self) -> None:
        """Stop accepting; end every connection with 1001 (going away) and wait at most
        ``close_timeout`` for the closing handshakes and the handlers: then connections
        still open are dropped and handlers still running are cancelled."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        connections = list(self._connections)
        for connection in connections:
            connection._send_close(1001, _GOING_AWAY)
        # A peer that never answers the Close is dropped by its transport after
        # close_timeout; a handler busy elsewhere (not on its connection) is not, so the
        # wait is bounded here too.
        tasks = list(self._tasks)
        waits = [*tasks, *(connection._closed_future() for connection in connections)]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=self.options.close_timeout)
            if pending:
                for connection in connections:
                    connection.transport.abort()
                for task in tasks:
                    task.cancel()
                await asyncio.wait(pending)
        if self._server is not None:
            await self._server.wait_closed()

    def __await__(self) -> _Generator[Any, None, Server]:
        return self.start().__await__()

    async def __aenter__(self) -> Server:
        return await self.start()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> None:
        await self.close()


def serve(
    handler: Callable[[Connection], _Awaitable[object]],
    host: str | list[str] | None = None,
    port: int | None = None,
    **options: Any,
) -> Server:
    """A :class:`Server` calling ``await handler(connection)`` per connection, on
    ``host``:``port`` (or ``path=`` a Unix socket, ``sock=``, ``ssl=``); use it with
    ``async with`` (or ``await`` it), then ``await server.serve_forever()``.

    Keywords: the connection's options (:class:`wsio._connection.Options`, among them
    ``handshake_timeout`` and ``compression``), :func:`create_server`'s
    (``max_connections``, default 1000; ``reuse_port``, ``backlog``) and every
    :class:`wsio.Upgrader` hook and rule (``origins``, ``subprotocols``, ``on_request``,
    ``on_header``, ...). The connection is closed when the handler returns (1000) or
    raises (1011).
    """
    return Server(handler, host, port, options)
