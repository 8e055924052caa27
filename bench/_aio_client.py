"""The load client of ``bench.aio_echo``: cheap enough that the server is what it measures.

Every frame the client sends is built and masked once, before a window starts; during
a window the client only writes those bytes and counts the bytes that come back. An
uncompressed echo of a known message has a known size, so only the first echo on each
connection (and, in ping-pong, one after each window) is parsed and compared with what
was sent; the others are counted by bytes. Compressed echoes vary in size: their frame
headers are parsed. Many connections are multiplexed on one ``epoll`` in this process.
The plain TCP echo gets the same bytes (the request, then masked frames) and returns
them unchanged.
"""

from __future__ import annotations

import base64
import errno
import os
import select
import socket
import struct
import time
import zlib
from collections.abc import Iterable

HOST = "127.0.0.1"
KEY = base64.b64encode(b"wsio-aio-echo-ky").decode()  # any 16 bytes: the servers check its form
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
CLOSE_1000 = struct.pack("!H", 1000)
BINARY, TEXT, CLOSE = 0x2, 0x1, 0x8
READ = 1 << 18  # one recv_into at most this much


def request(port: int, deflate: bool = False) -> bytes:
    """The upgrade request, built once and sent on every connection."""
    lines = [
        "GET / HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {KEY}",
        "Sec-WebSocket-Version: 13",
    ]
    if deflate:
        lines.append(f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def client_frame(opcode: int, payload: bytes, rsv1: bool = False) -> bytes:
    """One final, masked client frame (RFC 6455 5.2, 5.3): header, key, masked payload."""
    size = len(payload)
    first = 0x80 | (0x40 if rsv1 else 0) | opcode
    if size < 126:
        header = struct.pack("!BB", first, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, size)
    key = os.urandom(4)
    stream = (key * (size // 4 + 1))[:size]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(size, "big")
    return header + key + masked


def server_frame_size(size: int) -> int:
    """Bytes on the wire of an unmasked server frame with a ``size``-byte payload."""
    return size + (2 if size < 126 else 4 if size < 1 << 16 else 10)


def parse_header(data: bytes | bytearray | memoryview) -> tuple[int, int, int] | None:
    """(first byte, header length, payload length) of the frame at the start of
    ``data``, or None if its header is not all there."""
    if len(data) < 2:
        return None
    first, second = data[0], data[1] & 0x7F
    if second < 126:
        return first, 2, second
    if second == 126:
        return (first, 4, struct.unpack_from("!H", data, 2)[0]) if len(data) >= 4 else None
    return (first, 10, struct.unpack_from("!Q", data, 2)[0]) if len(data) >= 10 else None


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(min(size - len(chunks), READ))
        if not chunk:
            raise EOFError("the server closed the connection")
        chunks += chunk
    return bytes(chunks)


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """One whole frame from a blocking socket: (first byte, payload)."""
    head = _recv_exact(sock, 2)
    parsed = parse_header(head)
    if parsed is None:
        head += _recv_exact(sock, 2 if head[1] & 0x7F == 126 else 8)
        parsed = parse_header(head)
        assert parsed is not None
    first, _, size = parsed
    return first, _recv_exact(sock, size)


def read_message(sock: socket.socket) -> tuple[int, bytes]:
    """The next data message (first byte of its first frame, payload of all its frames),
    skipping control frames (a keepalive ping, should one come)."""
    while True:
        first, payload = read_frame(sock)
        if first & 0x08 == 0:
            break
    while not first & 0x80:  # fragmented: gather the continuations
        more, rest = read_frame(sock)
        payload += rest
        first = (first & 0x7F) | (more & 0x80)
    return first, payload


def handshake(sock: socket.socket, port: int, deflate: bool = False, websocket: bool = True) -> str:
    """Upgrade a connected blocking socket; returns the Sec-WebSocket-Extensions answer.
    Not ``websocket`` (the plain TCP echo): send the request and read it back."""
    if not websocket:
        sent = request(port)
        sock.sendall(sent)
        if _recv_exact(sock, len(sent)) != sent:
            raise RuntimeError("the TCP server did not echo the request")
        return ""
    sock.sendall(request(port, deflate))
    response = bytearray()
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError("the server closed the connection during the handshake")
        response += chunk
    head, _, rest = bytes(response).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"the upgrade was refused: {head[:80]!r}")
    if rest:
        raise RuntimeError("the server sent a frame before the client did")
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-extensions":
            return value.strip()
    return ""


def connect(port: int) -> socket.socket:
    """A blocking TCP connection to the server, TCP_NODELAY on (every peer sets it)."""
    sock = socket.create_connection((HOST, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def client_window_bits(extensions: str) -> int:
    """The client_max_window_bits the server allowed (15 when it did not say)."""
    for param in extensions.split(";"):
        name, _, value = param.strip().partition("=")
        if name == "client_max_window_bits" and value:
            return int(value.strip('"'))
    return 15


def deflate_message(payload: bytes, window_bits: int) -> bytes:
    """``payload`` compressed as one permessage-deflate message (RFC 7692 7.2.1): a raw
    DEFLATE stream flushed, its final 00 00 ff ff removed. The stream starts fresh, so it
    is valid with or without context takeover."""
    compressor = zlib.compressobj(wbits=-window_bits)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


def inflate_message(payload: bytes) -> bytes:
    """A permessage-deflate message's payload decompressed (the first on its connection)."""
    return zlib.decompressobj(wbits=-15).decompress(payload + b"\x00\x00\xff\xff")


def close_frame() -> bytes:
    """A masked close frame with code 1000."""
    return client_frame(CLOSE, CLOSE_1000)


# -- one connection, ping-pong -----------------------------------------------------------


class PingPong:
    """One upgraded connection that sends pre-built frames and reads their echoes. Not
    ``websocket`` (the plain TCP echo): the same bytes are sent and come back as they are.

    ``payload`` is one message, or several of one size that the round trips send in
    turn (so that a compressor keeping its window does not see one message again and
    again: ``bench.compressed_echo.messages``); each is compressed on its own."""

    def __init__(
        self,
        port: int,
        opcode: int,
        payload: bytes | list[bytes],
        deflate: bool = False,
        websocket: bool = True,
    ) -> None:
        payloads = [payload] if isinstance(payload, bytes) else payload
        payload = payloads[0]
        if any(len(p) != len(payload) for p in payloads):
            raise ValueError("the messages a connection cycles through have one size")
        self.websocket = websocket
        self.sock = connect(port)
        self.extensions = handshake(self.sock, port, deflate, websocket)
        self.compressed = self.extensions.startswith("permessage-deflate")
        if self.compressed:
            bits = client_window_bits(self.extensions)
            self.frames = [
                client_frame(opcode, deflate_message(p, bits), rsv1=True) for p in payloads
            ]
        else:
            self.frames = [client_frame(opcode, p) for p in payloads]
        self.frame = self.frames[0]
        self.turn = 0  # the next of self.frames the round trips send
        self.echo_size = server_frame_size(len(payload))
        self.buffer = bytearray(READ)
        self.view = memoryview(self.buffer)
        self.opcode, self.payload = opcode, payload
        self.first_echo = True  # only it can be inflated without the server's context
        first = self.check()
        self.first_echo = False
        if not websocket:
            self.echo_size = len(self.frame)
        # An uncompressed echo is one frame of known size; a compressed one varies, so
        # its headers are parsed.
        self.known_size = not self.compressed and first & 0x80 != 0

    def check(self) -> int:
        """Send the message once and compare its echo, read frame by frame (the first
        echo of the connection, and after a window); returns its first byte."""
        self.sock.sendall(self.frame)
        if not self.websocket:
            if _recv_exact(self.sock, len(self.frame)) != self.frame:
                raise RuntimeError("the TCP server did not echo the frame")
            return self.frame[0]
        first, echoed = read_message(self.sock)
        if first & 0x40 and self.first_echo:
            echoed = inflate_message(echoed)
        elif first & 0x40:  # later compressed echoes: the opcode only
            echoed = self.payload
        if first & 0x0F != self.opcode or echoed != self.payload:
            raise RuntimeError("the server did not echo the message")
        return first

    def roundtrips(self, count: int) -> None:
        """Send the message and wait for its whole echo, ``count`` times."""
        sock, frames, turn = self.sock, self.frames, self.turn
        kinds = len(frames)
        self.turn = (turn + count) % kinds
        if not self.known_size:
            for i in range(turn, turn + count):
                sock.sendall(frames[i % kinds])
                read_message(sock)
            return
        view, size = self.view, self.echo_size
        for i in range(turn, turn + count):
            sock.sendall(frames[i % kinds])
            left = size
            while left:
                n = sock.recv_into(view, min(left, READ))
                if not n:
                    raise EOFError("the server closed the connection")
                left -= n

    def close(self) -> None:
        close_all([self.sock], self.websocket)


# -- many connections, a few messages in flight on each ----------------------------------


class Load:
    """``count`` upgraded connections on one epoll, each keeping ``depth`` echoes in
    flight: every echo that comes back sends the message again."""

    def __init__(self, port: int, count: int, websocket: bool = True) -> None:
        self.websocket = websocket
        self.epoll = select.epoll()
        self.socks: dict[int, socket.socket] = {}
        for sock in open_upgraded(port, count, websocket):
            sock.setblocking(False)
            self.socks[sock.fileno()] = sock
            self.epoll.register(sock.fileno(), select.EPOLLIN)
        self.buffer = bytearray(READ)
        self.view = memoryview(self.buffer)
        self.echo_size = 1
        self.bursts: list[bytes] = []
        self.pending = dict.fromkeys(self.socks, 0)  # bytes of a partly received echo
        self.unsent: dict[int, memoryview] = {}  # the rest of a partly written burst
        self.owed = dict.fromkeys(self.socks, 0)  # messages to send once it is written
        self.in_flight = 0

    def start(self, payload: bytes, depth: int) -> None:
        """Check one echo of ``payload`` per connection, then put ``depth`` in flight."""
        frame = client_frame(BINARY, payload)
        self.echo_size = server_frame_size(len(payload)) if self.websocket else len(frame)
        self.bursts = [frame * n for n in range(depth + 1)]
        for sock in self.socks.values():
            sock.setblocking(True)
            sock.sendall(frame)
            if self.websocket:
                first, echoed = read_message(sock)
                ok = first == 0x80 | BINARY and echoed == payload
            else:
                ok = _recv_exact(sock, len(frame)) == frame
            if not ok:
                raise RuntimeError("the server did not echo the message")
            sock.setblocking(False)
        for fd, sock in self.socks.items():
            self._send(fd, sock, depth)
        self.in_flight = depth * len(self.socks)

    def _send(self, fd: int, sock: socket.socket, count: int) -> None:
        if fd in self.unsent:
            self.owed[fd] += count
            return
        data = self.bursts[count]
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            self.unsent[fd] = memoryview(data)[sent:]
            self.epoll.modify(fd, select.EPOLLIN | select.EPOLLOUT)

    def _flush(self, fd: int, sock: socket.socket) -> None:
        rest = self.unsent.pop(fd)
        try:
            sent = sock.send(rest)
        except BlockingIOError:
            sent = 0
        if sent < len(rest):
            self.unsent[fd] = rest[sent:]
            return
        self.epoll.modify(fd, select.EPOLLIN)
        owed, self.owed[fd] = self.owed[fd], 0
        if owed:
            self._send(fd, sock, owed)

    def run(self, seconds: float, resend: bool = True) -> int:
        """Serve the echoes for ``seconds``; returns how many came back. Without
        ``resend``, stop when none is in flight (to change the message)."""
        poll, socks, view, size = self.epoll.poll, self.socks, self.view, self.echo_size
        pending, send = self.pending, self._send
        echoed = 0
        deadline = time.perf_counter() + seconds
        while resend or self.in_flight > echoed:
            for fd, event in poll(0.05):
                sock = socks[fd]
                if event & select.EPOLLOUT:
                    self._flush(fd, sock)
                if event & (select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP):
                    n = sock.recv_into(view, READ)
                    if not n:
                        raise EOFError("the server closed a connection")
                    done, pending[fd] = divmod(pending[fd] + n, size)
                    if done:
                        echoed += done
                        if resend:
                            send(fd, sock, done)
            if time.perf_counter() >= deadline:
                break
        if not resend:
            self.in_flight -= echoed
        return echoed

    def drain(self, timeout: float = 30.0) -> None:
        """Wait for every echo in flight, sending nothing more."""
        self.run(timeout, resend=False)
        if self.in_flight or any(self.pending.values()) or self.unsent:
            raise RuntimeError("echoes still in flight after the drain")

    def close(self) -> None:
        """Close every connection (after ``drain``) with the closing handshake."""
        self.epoll.close()
        close_all(self.socks.values(), self.websocket)


# -- many handshakes ---------------------------------------------------------------------


class Handshakes:
    """Connections opened ``concurrency`` at a time on one epoll, each upgraded and then,
    unless ``keep``, closed with the closing handshake (close frame, the server's close
    and end of stream) and replaced by a new one."""

    def __init__(
        self, port: int, concurrency: int, websocket: bool = True, deflate: bool = False
    ) -> None:
        self.port = port
        self.concurrency = concurrency
        self.websocket = websocket  # the plain TCP server echoes the request instead
        self.request = request(port, deflate and websocket)  # deflate: offer it
        self.close = close_frame()
        self.epoll = select.epoll()
        self.socks: dict[int, socket.socket] = {}
        self.state: dict[int, int] = {}  # 0 connecting, 1 reading the response, 2 closing
        self.response: dict[int, bytearray] = {}
        self.kept: list[socket.socket] = []
        self.buffer = bytearray(4096)

    def _open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        err = sock.connect_ex((HOST, self.port))
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            raise OSError(err, os.strerror(err))
        fd = sock.fileno()
        self.socks[fd] = sock
        self.state[fd] = 0
        self.response[fd] = bytearray()
        self.epoll.register(fd, select.EPOLLOUT)

    def _forget(self, fd: int) -> socket.socket:
        self.epoll.unregister(fd)
        del self.state[fd], self.response[fd]
        return self.socks.pop(fd)

    def run(self, total: int | None, seconds: float, keep: bool = False) -> int:
        """Complete ``total`` cycles (or as many as fit in ``seconds``); returns how many."""
        done = started = 0
        deadline = time.perf_counter() + seconds
        while len(self.socks) < self.concurrency and (total is None or started < total):
            self._open()
            started += 1
        while self.socks:
            for fd, event in self.epoll.poll(0.05):
                finished = self._step(fd, event, keep)
                if finished:
                    done += 1
                    if time.perf_counter() < deadline and (total is None or started < total):
                        self._open()
                        started += 1
            if time.perf_counter() >= deadline + 30:
                raise TimeoutError(f"{len(self.socks)} handshakes did not finish")
        return done

    def _step(self, fd: int, event: int, keep: bool) -> bool:
        """Advance one connection; True when its cycle is complete."""
        sock, state = self.socks[fd], self.state[fd]
        if state == 0:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
            sock.send(self.request)  # a few hundred bytes into an empty buffer
            self.state[fd] = 1
            self.epoll.modify(fd, select.EPOLLIN)
            return False
        try:
            n = sock.recv_into(self.buffer)
        except ConnectionResetError:
            n = 0
        if state == 1:
            if not n:
                raise EOFError("the server closed the connection during the handshake")
            response = self.response[fd]
            response += self.buffer[:n]
            if b"\r\n\r\n" not in response:
                return False
            if self.websocket and not response.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"the upgrade was refused: {bytes(response[:80])!r}")
            if keep:
                self.kept.append(self._forget(fd))
                return True
            if not self.websocket:
                self._forget(fd).close()
                return True
            sock.send(self.close)
            self.state[fd] = 2
            return False
        if n:  # the server's close frame; the cycle ends with its end of stream
            return False
        self._forget(fd).close()
        return True


def open_upgraded(
    port: int, count: int, websocket: bool = True, concurrency: int = 64, deflate: bool = False
) -> list[socket.socket]:
    """``count`` upgraded connections (blocking sockets), opened ``concurrency`` at a time;
    ``deflate``: each offers permessage-deflate (the server's default answer)."""
    opener = Handshakes(port, concurrency, websocket, deflate)
    opener.run(count, 600.0, keep=True)
    socks = opener.kept
    for sock in socks:
        sock.setblocking(True)
    return socks


def _read_to_end(sock: socket.socket) -> None:
    """Read (the rest of an echo, then the server's close frame) until end of stream."""
    try:
        while sock.recv(1 << 16):
            pass
    except ConnectionResetError:
        pass


def close_all(socks: Iterable[socket.socket], websocket: bool = True) -> None:
    """Close every connection with the closing handshake (RFC 6455 7.1.2: the client
    sends a close frame; the server answers and closes the TCP connection first), so the
    servers see clean closes; the plain TCP echo is simply closed."""
    socks = list(socks)
    if websocket:
        frame = close_frame()
        for sock in socks:
            sock.setblocking(True)
            sock.settimeout(30.0)
            sock.sendall(frame)
        for sock in socks:
            _read_to_end(sock)
    for sock in socks:
        sock.close()
