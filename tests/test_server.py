"""wsio.server: the accept loops, in this process, over loopback.

Running out of descriptors and threads is tested on real processes under resource
limits in tests/hostile/; here, what a server built on these pieces relies on.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from wsio.server import (
    Backoff,
    ThreadedServer,
    ThreadingHTTPServer,
    accept,
    accept_nowait,
    refuse_busy,
)

TIMEOUT = 10.0  # seconds any single step may take (a bound on hangs, never a measure)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


def dial(listener: socket.socket) -> socket.socket:
    return socket.create_connection(listener.getsockname()[:2], timeout=TIMEOUT)


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_accept_returns_a_connection(listener: socket.socket) -> None:
    with dial(listener) as client:
        sock, address = accept(listener)
        with sock:
            assert address == client.getsockname()


def test_accept_raises_when_the_listener_is_closed(listener: socket.socket) -> None:
    listener.close()
    with pytest.raises(OSError):
        accept(listener)


def test_accept_nowait_gives_a_connection_or_none(listener: socket.socket) -> None:
    # For event loops: never blocks; nothing waiting is None, a waiting client its pair.
    listener.setblocking(False)
    backoff = Backoff()
    assert accept_nowait(listener, backoff) is None
    with dial(listener) as client:
        deadline = time.monotonic() + TIMEOUT
        got = accept_nowait(listener, backoff)
        while got is None and time.monotonic() < deadline:
            time.sleep(0.01)
            got = accept_nowait(listener, backoff)
        assert isinstance(got, tuple)
        sock, address = got
        with sock:
            assert address == client.getsockname()
    listener.close()
    with pytest.raises(OSError):
        accept_nowait(listener, backoff)


def test_backoff_doubles_to_a_second_and_logs_once_an_episode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backoff = Backoff(logging.getLogger("test.backoff"))
    with caplog.at_level(logging.WARNING, "test.backoff"):
        delays = [backoff.failed("accept() failed with EMFILE") for _ in range(10)]
        backoff.succeeded()
        backoff.succeeded()  # no episode: nothing to say
        assert backoff.failed("again") == 0.005  # a new episode starts over
    assert delays[:3] == [0.005, 0.01, 0.02] and delays[-1] == 1.0
    assert sorted(delays) == delays
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "accept() failed with EMFILE: pausing new connections until resources free up",
        "accepting again after 10 failed attempts",
        "again: pausing new connections until resources free up",
    ]


def test_refuse_busy_answers_503(listener: socket.socket) -> None:
    with dial(listener) as client:
        sock, _ = listener.accept()
        with sock:
            refuse_busy(sock)
            assert read_all(client).startswith(b"HTTP/1.1 503 Service Unavailable\r\n")


class Echo:
    """A handler: echoes lines until end of stream; says goodbye if the server stops."""

    def __init__(self) -> None:
        self.server: ThreadedServer | None = None
        self.started = threading.Semaphore(0)

    def __call__(self, sock: socket.socket, address: Any) -> None:
        self.started.release()
        while data := sock.recv(4096):
            if data == b"boom":
                raise RuntimeError("a bug in the handler")
            sock.sendall(data)
        assert self.server is not None
        if self.server.stopping.is_set():
            sock.sendall(b"goodbye")


@pytest.fixture
def echo_server(listener: socket.socket) -> Iterator[tuple[ThreadedServer, Echo]]:
    handler = Echo()
    server = ThreadedServer(listener, handler, max_connections=2)
    handler.server = server
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield server, handler
    server.shutdown(TIMEOUT)
    thread.join(TIMEOUT)
    assert not thread.is_alive()


def test_threaded_server_serves_refuses_over_the_limit_and_shuts_down(
    listener: socket.socket, echo_server: tuple[ThreadedServer, Echo]
) -> None:
    server, _ = echo_server
    address = listener.getsockname()[:2]
    with socket.create_connection(address, timeout=TIMEOUT) as one:
        two = socket.create_connection(address, timeout=TIMEOUT)
        for sock in (one, two):
            sock.sendall(b"hi")
            assert sock.recv(2) == b"hi"
        assert server.connections == 2
        with socket.create_connection(address, timeout=TIMEOUT) as three:
            assert read_all(three).startswith(b"HTTP/1.1 503 ")
        two.close()
        # A place is free again: the next connection is served.
        for _ in range(100):
            with socket.create_connection(address, timeout=TIMEOUT) as again:
                again.sendall(b"back")
                if again.recv(4) == b"back":
                    break
            time.sleep(0.05)
        # shutdown() ends reads; the handler sees `stopping` and says goodbye.
        server.shutdown(TIMEOUT)
        assert read_all(one) == b"goodbye"
    assert server.connections == 0


def test_a_handler_exception_is_logged_and_the_server_goes_on(
    listener: socket.socket,
    echo_server: tuple[ThreadedServer, Echo],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, "wsio.server"):
        with dial(listener) as sock:
            sock.sendall(b"boom")
            assert read_all(sock) == b""  # the server closed the socket
        with dial(listener) as sock:
            sock.sendall(b"fine")
            assert sock.recv(4) == b"fine"
    assert "unexpected error" in caplog.text and "a bug in the handler" in caplog.text


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_threading_http_server_serves_and_answers_503_when_full() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello, max_connections=1)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    address = server.socket.getsockname()[:2]
    try:
        with socket.create_connection(address, timeout=TIMEOUT):  # the one place, idle
            for _ in range(100):  # until the server has started its thread
                with socket.create_connection(address, timeout=TIMEOUT) as other:
                    other.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    if read_all(other).startswith(b"HTTP/1.1 503 "):
                        break
                time.sleep(0.05)
            else:
                raise AssertionError("never refused")
        for _ in range(100):  # the place is free again once the idle one is gone
            with socket.create_connection(address, timeout=TIMEOUT) as client:
                client.sendall(b"GET / HTTP/1.0\r\n\r\n")
                if read_all(client).endswith(b"hello"):
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("never served again")
        assert server.daemon_threads
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


class Mask(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, ())
        body = ",".join(sorted(s.name for s in blocked if isinstance(s, signal.Signals))).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="no thread signal masks")
def test_a_ctrl_c_is_never_handed_to_a_connections_thread(listener: socket.socket) -> None:
    # CPython runs handlers in the main thread alone; a SIGINT the kernel gave a
    # connection's thread left `wsio serve` in accept() until the next client came.
    def blocked_in_handler(sock: socket.socket, address: Any) -> None:
        names = ",".join(
            sorted(
                s.name
                for s in signal.pthread_sigmask(signal.SIG_BLOCK, ())
                if isinstance(s, signal.Signals)
            )
        )
        sock.sendall(names.encode())

    accepting_mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    server = ThreadedServer(listener, blocked_in_handler)
    accepting = threading.Thread(target=server.serve_forever)
    accepting.start()
    http_server = ThreadingHTTPServer(("127.0.0.1", 0), Mask)
    http_accepting = threading.Thread(
        target=http_server.serve_forever, kwargs={"poll_interval": 0.05}
    )
    http_accepting.start()
    try:
        with dial(listener) as sock:
            blocked = read_all(sock).decode().split(",")
        with socket.create_connection(http_server.socket.getsockname()[:2], TIMEOUT) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            blocked_http = read_all(sock).partition(b"\r\n\r\n")[2].decode().split(",")
    finally:
        server.shutdown(TIMEOUT)
        accepting.join(TIMEOUT)
        http_server.shutdown()
        http_server.server_close()
        http_accepting.join(TIMEOUT)
    for names in (blocked, blocked_http):
        assert {"SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGCHLD"} <= set(names)
        # A fault in the thread itself is still its own; faulthandler's SIGABRT too.
        assert not {"SIGSEGV", "SIGBUS", "SIGFPE", "SIGABRT"} & set(names)
    # The thread that starts them keeps its own mask.
    assert signal.pthread_sigmask(signal.SIG_BLOCK, ()) == accepting_mask


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop(signum)


def test_serve_forever_runs_a_signal_handler_that_no_accept_saw(listener: socket.socket) -> None:
    # A signal the kernel hands to a thread of the application's own (or that lands just
    # before accept(2)) interrupts no system call. Its handler must still end
    # serve_forever in the main thread, with no client coming: `wsio serve` sat in
    # accept() after a Ctrl-C that way.
    server = ThreadedServer(listener, lambda sock, address: None)
    serving = threading.Event()
    returned = threading.Event()
    stopped_it = threading.Event()

    def signal_this_thread() -> None:
        serving.wait(TIMEOUT)
        time.sleep(0.2)  # into accept(); were it sooner, the handler ran before it
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
        if not returned.wait(TIMEOUT):  # the old hang: end it
            stopped_it.set()
            server.shutdown(TIMEOUT)

    previous = signal.signal(signal.SIGUSR1, _raise_stop)
    signaller = threading.Thread(target=signal_this_thread)
    signaller.start()
    try:
        serving.set()
        with pytest.raises(_Stop):
            server.serve_forever()
        returned.set()
        assert not stopped_it.is_set(), "the handler ran only once shutdown() woke accept()"
    finally:
        returned.set()
        signaller.join(TIMEOUT)
        signal.signal(signal.SIGUSR1, previous)
        server.shutdown(TIMEOUT)
