"""Writing to one connection from several threads (issue 8, item 6).

Two threads send 64 KiB - 1 MiB messages on one connection, over TCP and TLS, the
documented way: through one :class:`wsio.LockedSink`, with the one-call helpers, or
with a Writer whose message is kept under ``sink.lock``, while a third thread pings.
The receiving side parses the bytes on the wire: every frame must be valid, every
message whole, and each thread's messages in the order it sent them.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator

import pytest
import trustme
from hypothesis import HealthCheck, given, settings, strategies as st

import wsio
from wsio import wsutil

KiB = 1024
MiB = 2**20
TIMEOUT = 60.0  # seconds for one exchange: a bound on hangs, never a measure

Pair = tuple[socket.socket, socket.socket]


def tcp_pair() -> Pair:
    """A loopback connection with small buffers: a message's ``sendall`` blocks midway,
    as it does on a slow network, and another thread's write can come between."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        a = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
        b, _ = listener.accept()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * KiB)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * KiB)
    b.settimeout(TIMEOUT)
    return a, b


_CA = trustme.CA()
_CERT = _CA.issue_cert("127.0.0.1")


def tls_pair() -> Pair:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _CERT.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    _CA.configure_trust(client_ctx)
    a, b = tcp_pair()
    done: list[ssl.SSLSocket] = []
    accept = threading.Thread(
        target=lambda: done.append(server_ctx.wrap_socket(b, server_side=True))
    )
    accept.start()
    client = client_ctx.wrap_socket(a, server_hostname="127.0.0.1")
    accept.join(TIMEOUT)
    return client, done[0]


@pytest.fixture(params=["tcp", "tls"])
def make_pair(request: pytest.FixtureRequest) -> Callable[[], Pair]:
    return tcp_pair if request.param == "tcp" else tls_pair


def payload(thread: int, seq: int, size: int) -> bytes:
    """A message that says who sent it and when, and whose every byte says who."""
    return struct.pack("!II", thread, seq) + bytes([thread]) * (size - 8)


def receive(sock: socket.socket, state: wsio.State, count: int) -> list[bytes]:
    """Read frames until ``count`` data messages; check each frame against RFC 6455 §5."""
    messages: list[bytes] = []
    parts: list[bytes] = []
    fragmented = state
    while len(messages) < count:
        frame = wsio.read_frame(sock, max_frame_size=2 * MiB)
        wsio.check_header(frame.header, fragmented)  # §5.4: no data frame inside another
        frame = wsio.unmask_frame_in_place(frame)
        opcode = frame.header.opcode
        if wsio.is_control(opcode):
            assert opcode == wsio.OpCode.PING
            continue
        parts.append(bytes(frame.payload))
        if frame.header.fin:
            messages.append(b"".join(parts))
            parts = []
            fragmented = state
        else:
            fragmented = state | wsio.State.FRAGMENTED
    return messages


def check(messages: list[bytes], sizes: list[list[int]]) -> None:
    """Every message whole, each thread's in order."""
    seen = [0] * len(sizes)
    for message in messages:
        thread, seq = struct.unpack("!II", message[:8])
        assert seq == seen[thread], "out of order"
        assert message == payload(thread, seq, sizes[thread][seq]), "bytes of another message"
        seen[thread] += 1
    assert seen == [len(s) for s in sizes]


def run(
    make_pair: Callable[[], Pair],
    sizes: list[list[int]],
    send: Callable[[wsio.LockedSink, bool, int, bytes], None],
    client: bool,
) -> None:
    """Threads send ``sizes[i]`` through one LockedSink (and one pings); check the wire."""
    a, b = make_pair()
    with a, b:
        sink = wsio.LockedSink(a)
        done = threading.Event()
        errors: list[BaseException] = []

        def guarded(target: Callable[[], None]) -> Callable[[], None]:
            def body() -> None:
                try:
                    target()
                except BaseException as error:  # reported by the test thread
                    errors.append(error)

            return body

        def writer(thread: int) -> Callable[[], None]:
            def body() -> None:
                for seq, size in enumerate(sizes[thread]):
                    send(sink, client, thread, payload(thread, seq, size))

            return body

        def pinger() -> None:
            state = wsio.State.CLIENT_SIDE if client else wsio.State.SERVER_SIDE
            while not done.wait(0.001):
                wsutil.write_message(sink, state, wsio.OpCode.PING, b"keepalive")

        writers = [threading.Thread(target=guarded(writer(i))) for i in range(len(sizes))]
        ping = threading.Thread(target=guarded(pinger))

        def finish() -> None:
            # When all is sent, end the stream: a reader lost in mixed bytes sees the
            # end at once instead of waiting for a length that never comes.
            for thread in writers:
                thread.join(TIMEOUT)
            done.set()
            ping.join(TIMEOUT)
            with contextlib.suppress(OSError):
                a.shutdown(socket.SHUT_WR)

        closer = threading.Thread(target=finish)
        for thread in [*writers, ping, closer]:
            thread.start()
        try:
            reading = wsio.State.SERVER_SIDE if client else wsio.State.CLIENT_SIDE
            messages = receive(b, reading, sum(len(s) for s in sizes))
        except BaseException:
            with contextlib.suppress(OSError):
                b.shutdown(socket.SHUT_RDWR)  # a writer blocked on a full buffer gets out
            closer.join(TIMEOUT)
            raise
        closer.join(TIMEOUT)  # all received: the writers are done, the pinger stops
        assert not errors, errors
        check(messages, sizes)


def send_one_call(sink: wsio.LockedSink, client: bool, thread: int, data: bytes) -> None:
    if client:
        wsutil.write_client_message(sink, wsio.OpCode.BINARY, data)
    else:
        wsutil.write_server_message(sink, wsio.OpCode.BINARY, data)


def send_frame(sink: wsio.LockedSink, client: bool, thread: int, data: bytes) -> None:
    frame = wsio.new_binary_frame(data)
    wsio.write_frame(sink, wsio.mask_frame(frame) if client else frame)


def send_streamed(sink: wsio.LockedSink, client: bool, thread: int, data: bytes) -> None:
    state = wsio.State.CLIENT_SIDE if client else wsio.State.SERVER_SIDE
    writer = wsutil.Writer(sink, state, wsio.OpCode.BINARY)
    view = memoryview(data)
    with sink.lock:  # the fragments of one message stay together
        for start in range(0, len(view), 10_000):
            writer.write(view[start : start + 10_000])
        writer.flush()


SENDERS = {"one_call": send_one_call, "write_frame": send_frame, "writer": send_streamed}

sizes_of_two_threads = st.lists(
    st.lists(st.integers(64 * KiB, MiB), min_size=2, max_size=6), min_size=2, max_size=2
)


@pytest.mark.parametrize("how", sorted(SENDERS))
@pytest.mark.parametrize("side", ["server", "client"])
@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sizes=sizes_of_two_threads)
def test_two_threads_write_whole_messages_in_order(
    make_pair: Callable[[], Pair], how: str, side: str, sizes: list[list[int]]
) -> None:
    run(make_pair, sizes, SENDERS[how], side == "client")


def test_eight_threads_of_large_messages(make_pair: Callable[[], Pair]) -> None:
    sizes = [[MiB, 64 * KiB, 700 * KiB] for _ in range(8)]
    run(make_pair, sizes, send_one_call, False)


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    before = threading.active_count()
    yield
    assert threading.active_count() <= before
