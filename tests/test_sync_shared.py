"""wsio._connection, the I/O-free logic wsio.sync and wsio.aio share: keepalive
bookkeeping on a fake clock, option checks, close mapping, send dispatch, backoff."""

from __future__ import annotations

import pytest

import wsio
from wsio import _connection as shared
from wsio._engine import limits
from wsio.protocol import ClientProtocol, ServerProtocol


def test_defaults_are_the_named_limits() -> None:
    options = shared.Options()
    assert options.ping_interval == limits.DEFAULT_PING_INTERVAL
    assert options.ping_timeout == limits.DEFAULT_PING_TIMEOUT
    assert options.close_timeout == limits.DEFAULT_CLOSE_TIMEOUT
    assert options.max_queue == limits.DEFAULT_MAX_QUEUE
    assert options.write_limits == limits.DEFAULT_WRITE_LIMIT
    assert options.compression == "deflate"
    assert shared.Options(write_limit=4096).write_limits == (4096, 1024)


@pytest.mark.parametrize(
    "bad",
    [
        {"ping_interval": 0},
        {"close_timeout": -1},
        {"max_queue": 0},
        {"write_limit": (10, 20)},
        {"compression": "gzip"},
        {"max_message_size": -1},
    ],
)
def test_bad_options_fail_at_once(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        shared.Options(**bad)  # type: ignore[arg-type]


def test_split_options_leaves_the_handshake_its_keywords() -> None:
    options, rest = shared.split_options({"ping_interval": None, "origins": ["x"]})
    assert options.ping_interval is None
    assert rest == {"origins": ["x"]}


def test_keepalive_schedule_on_a_fake_clock() -> None:
    pings = shared.PingTracker(interval=10.0, timeout=5.0, now=0.0)
    assert pings.next_deadline() == 10.0
    assert not pings.keepalive_due(9.9)
    assert pings.keepalive_due(10.0)
    pings.keepalive_sent(b"ka", 10.0)
    assert not pings.keepalive_due(12.0)  # one at a time
    assert pings.next_deadline() == 15.0
    assert not pings.overdue(14.9)
    assert pings.pong(b"ka", 10.5) == []  # no waiter: only the schedule moves
    assert pings.latency == pytest.approx(0.5)
    assert pings.next_deadline() == 20.5
    pings.keepalive_sent(b"k2", 20.5)
    assert pings.overdue(25.5)


def test_a_pong_answers_every_earlier_ping() -> None:
    pings = shared.PingTracker(interval=None, timeout=None, now=0.0)
    pings.sent(b"1", 1.0, "first")
    pings.sent(b"2", 2.0, "second")
    pings.sent(b"3", 3.0, "third")
    assert pings.pong(b"unknown", 3.5) == []
    assert pings.pong(b"2", 4.0) == [("first", 3.0), ("second", 2.0)]
    assert pings.waiters() == ["third"]
    with pytest.raises(ValueError):
        pings.sent(b"x", 5.0)
        pings.sent(b"x", 5.0)


def test_closed_error_maps_the_closing_handshake() -> None:
    server = ServerProtocol()
    client = ClientProtocol()
    client.send_close(1000, "bye")
    for buffer in client.data_to_send():
        server.receive_data(buffer)
    server.events_received()
    error = shared.closed_error(server)
    assert isinstance(error, wsio.ConnectionClosedOK)
    assert (error.code, error.reason, error.sent_code) == (1000, "bye", 1000)
    lost = ServerProtocol()
    lost.receive_eof()
    assert isinstance(shared.closed_error(lost), wsio.ConnectionClosedError)
    assert shared.closed_error(lost).code == 1006


def test_message_kind() -> None:
    assert shared.message_kind("t") == shared.TEXT
    assert shared.message_kind(memoryview(b"b")) == shared.BINARY
    assert shared.message_kind(iter(["a"])) == shared.FRAGMENTED
    with pytest.raises(TypeError):
        shared.message_kind({"a": 1})
    with pytest.raises(TypeError):
        shared.message_kind(42)
    with pytest.raises(TypeError):
        shared.fragment_kind(b"x", shared.TEXT)


def test_backoff_and_what_is_retried() -> None:
    backoff = shared.Backoff(initial=1.0, factor=2.0, maximum=4.0, jitter=0.0)
    assert [backoff.next() for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next() == 1.0
    assert shared.retryable(ConnectionRefusedError())
    assert shared.retryable(wsio.InvalidStatusError(503))
    assert not shared.retryable(wsio.InvalidStatusError(403))
    assert shared.retryable(wsio.HandshakeTimeoutError("slow"))
    assert not shared.retryable(wsio.InvalidAcceptError("bad"))
    assert not shared.retryable(ValueError())
