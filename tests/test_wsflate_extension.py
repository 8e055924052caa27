"""wsflate.Extension: RFC 7692 §7.1 negotiation, server and client, every combination."""

from __future__ import annotations

import itertools

import pytest

from wsio._engine.httphead import Option, parse_options
from wsio.exceptions import HandshakeError, UnexpectedExtensionError
from wsio.wsflate import (
    DEFAULT_PARAMETERS,
    Compressor,
    Decompressor,
    Extension,
    Parameters,
)


def one(header: str) -> Option:
    (option,) = parse_options(header)
    return option


def negotiate(config: Parameters, header: str) -> str | None:
    extension = Extension(config)
    answers = [extension.negotiate(option) for option in parse_options(header)]
    accepted = [str(answer) for answer in answers if answer is not None]
    assert len(accepted) <= 1
    if accepted:
        assert extension.accepted() == Parameters.parse(one(accepted[0]), response=True)
    else:
        assert extension.accepted() is None
    return accepted[0] if accepted else None


PMD = "permessage-deflate"
SNCT = "server_no_context_takeover"
CNCT = "client_no_context_takeover"


@pytest.mark.parametrize(
    ("config", "offer", "response"),
    [
        # Plain configuration, plain offer: plain response.
        (Parameters(), PMD, PMD),
        # RFC 7692 §7.1.1.1: the server must honour server_no_context_takeover...
        (Parameters(), f"{PMD}; {SNCT}", f"{PMD}; {SNCT}"),
        # ... and may say it unasked.
        (Parameters(True), PMD, f"{PMD}; {SNCT}"),
        # RFC 7692 §7.1.1.2: the server may impose client_no_context_takeover.
        (Parameters(False, True), PMD, f"{PMD}; {CNCT}"),
        (Parameters(), f"{PMD}; {CNCT}", f"{PMD}; {CNCT}"),
        (DEFAULT_PARAMETERS, PMD, f"{PMD}; {SNCT}; {CNCT}"),
        (DEFAULT_PARAMETERS, f"{PMD}; client_max_window_bits", f"{PMD}; {SNCT}; {CNCT}"),
        # RFC 7692 §7.1.2.1: the same or smaller value; may be said unasked.
        (Parameters(), f"{PMD}; server_max_window_bits=10", f"{PMD}; server_max_window_bits=10"),
        (
            Parameters(server_max_window_bits=9),
            f"{PMD}; server_max_window_bits=10",
            f"{PMD}; server_max_window_bits=9",
        ),
        (
            Parameters(server_max_window_bits=12),
            f"{PMD}; server_max_window_bits=10",
            f"{PMD}; server_max_window_bits=10",
        ),
        (Parameters(server_max_window_bits=11), PMD, f"{PMD}; server_max_window_bits=11"),
        (Parameters(server_max_window_bits=15), PMD, PMD),
        # 8 is answered 8 (compressed with zlib's 9-bit window, which reaches back 250).
        (Parameters(), f"{PMD}; server_max_window_bits=8", f"{PMD}; server_max_window_bits=8"),
        # RFC 7692 §7.1.2.2: never client_max_window_bits unless offered...
        (Parameters(client_max_window_bits=10), PMD, PMD),
        # ... valueless: the server may limit the client ...
        (Parameters(), f"{PMD}; client_max_window_bits", PMD),
        (
            Parameters(client_max_window_bits=10),
            f"{PMD}; client_max_window_bits",
            f"{PMD}; client_max_window_bits=10",
        ),
        # ... with a value: equal to or smaller than it.
        (
            Parameters(),
            f"{PMD}; client_max_window_bits=12",
            f"{PMD}; client_max_window_bits=12",
        ),
        (
            Parameters(client_max_window_bits=10),
            f"{PMD}; client_max_window_bits=12",
            f"{PMD}; client_max_window_bits=10",
        ),
        (
            Parameters(client_max_window_bits=14),
            f"{PMD}; client_max_window_bits=12",
            f"{PMD}; client_max_window_bits=12",
        ),
        # The first acceptable offer wins; malformed ones are declined (RFC 7692 §7.1).
        (Parameters(), f"{PMD}; foo, {PMD}; {SNCT}", f"{PMD}; {SNCT}"),
        (Parameters(), f"{PMD}; server_max_window_bits, {PMD}", PMD),
        (Parameters(), f"{PMD}; {SNCT}, {PMD}", f"{PMD}; {SNCT}"),
        (Parameters(), f"x-webkit-deflate-frame, {PMD}; {CNCT}", f"{PMD}; {CNCT}"),
        # Nothing acceptable: declined.
        (Parameters(), f"{PMD}; client_max_window_bits=16", None),
        (Parameters(), f"{PMD}; {SNCT}=yes", None),
        (Parameters(), f"{PMD}; {CNCT}; {CNCT}", None),
        (Parameters(), f"{PMD}; server_max_window_bits=7", None),
        (Parameters(), "x-webkit-deflate-frame", None),
    ],
)
def test_server_negotiation(config: Parameters, offer: str, response: str | None) -> None:
    assert negotiate(config, offer) == response


def test_server_reset_and_reuse() -> None:
    extension = Extension()
    assert extension.negotiate(one(PMD)) is not None
    assert extension.negotiate(one(PMD)) is None  # sticks to the first accepted
    extension.reset()
    assert extension.accepted() is None
    assert extension.negotiate(one(f"{PMD}; server_max_window_bits=9")) is not None
    accepted = extension.accepted()
    assert accepted is not None and accepted.server_max_window_bits == 9


@pytest.mark.parametrize(
    ("offer", "response", "agreed"),
    [
        (Parameters(), PMD, Parameters()),
        (Parameters(), f"{PMD}; {SNCT}", Parameters(True)),
        (Parameters(), f"{PMD}; {CNCT}", Parameters(False, True)),
        (Parameters(), f"{PMD}; server_max_window_bits=9", Parameters(server_max_window_bits=9)),
        (Parameters(True), f"{PMD}; {SNCT}", Parameters(True)),
        # The client's own hint binds it whatever the response says (RFC 7692 §7.1.1.2).
        (Parameters(False, True), PMD, Parameters(False, True)),
        (Parameters(client_max_window_bits=11), PMD, Parameters(client_max_window_bits=11)),
        (
            Parameters(client_max_window_bits=11),
            f"{PMD}; client_max_window_bits=9",
            Parameters(client_max_window_bits=9),
        ),
        (
            Parameters(client_max_window_bits=True),
            f"{PMD}; client_max_window_bits=8",
            Parameters(client_max_window_bits=8),
        ),
        (
            Parameters(server_max_window_bits=12),
            f"{PMD}; server_max_window_bits=10",
            Parameters(server_max_window_bits=10),
        ),
    ],
)
def test_client_accepts(offer: Parameters, response: str, agreed: Parameters) -> None:
    extension = Extension(offer)
    assert extension.offer() == offer.option()
    assert extension.accept(one(response)) == agreed
    assert extension.accepted() == agreed


@pytest.mark.parametrize(
    ("offer", "response"),
    [
        # RFC 7692 §7.1: unknown, duplicate, invalid: fail.
        (Parameters(), f"{PMD}; foo"),
        (Parameters(), f"{PMD}; {SNCT}; {SNCT}"),
        (Parameters(), f"{PMD}; server_max_window_bits"),
        (Parameters(), f"{PMD}; server_max_window_bits=16"),
        (Parameters(), f"{PMD}; {CNCT}=1"),
        # Valueless client_max_window_bits is an offer's form only.
        (Parameters(client_max_window_bits=True), f"{PMD}; client_max_window_bits"),
        # RFC 7692 §7.1.2.2: "MUST NOT include" it unless offered.
        (Parameters(), f"{PMD}; client_max_window_bits=10"),
        # Larger than offered.
        (Parameters(client_max_window_bits=10), f"{PMD}; client_max_window_bits=11"),
        # RFC 7692 §7.1.2.1: a requested server window must be granted, same or smaller.
        (Parameters(server_max_window_bits=10), PMD),
        (Parameters(server_max_window_bits=10), f"{PMD}; server_max_window_bits=11"),
        # RFC 7692 §7.1.1.1: a requested server_no_context_takeover must be granted.
        (Parameters(True), PMD),
        # Another extension, not offered.
        (Parameters(), "x-webkit-deflate-frame"),
    ],
)
def test_client_refuses(offer: Parameters, response: str) -> None:
    extension = Extension(offer)
    with pytest.raises(UnexpectedExtensionError):
        extension.accept(one(response))
    assert extension.accepted() is None


def test_client_refuses_a_second_acceptance() -> None:
    extension = Extension(Parameters())
    extension.accept(one(PMD))
    with pytest.raises(HandshakeError):
        extension.accept(one(PMD))
    extension.reset()
    extension.accept(one(PMD))


FLAGS = (False, True)
SERVER_BITS: tuple[int | None, ...] = (None, 8, 9, 12, 15)
CLIENT_BITS: tuple[int | bool | None, ...] = (None, True, 8, 11, 15)
CONFIGS = [
    Parameters(snct, cnct, sbits, cbits)
    for snct, cnct, sbits, cbits in itertools.product(FLAGS, FLAGS, SERVER_BITS, CLIENT_BITS)
]


def exchange(
    sender: Parameters, receiver: Parameters, *, client_sends: bool, messages: list[bytes]
) -> None:
    """Compress ``messages`` as one side's agreement says, inflate as the other's says."""
    if client_sends:
        bits, nct = sender.client_window_bits, sender.client_no_context_takeover
        rbits, rnct = receiver.client_window_bits, receiver.client_no_context_takeover
    else:
        bits, nct = sender.server_window_bits, sender.server_no_context_takeover
        rbits, rnct = receiver.server_window_bits, receiver.server_no_context_takeover
    compressor = Compressor(bits, no_context_takeover=nct)
    decompressor = Decompressor(rbits, no_context_takeover=rnct)
    for message in messages:
        assert decompressor.decompress_message(compressor.compress_message(message)) == message


def test_every_combination_agrees_and_interoperates() -> None:
    # Every client offer against every server configuration: the client accepts what
    # the server answers, the two agreements are compatible, and data flows both ways.
    messages = [bytes(range(256)) * 8, b"abc" * 500 + bytes(range(200)) * 3, b""]
    for offer, config in itertools.product(CONFIGS, CONFIGS):
        server = Extension(config)
        response = server.negotiate(offer.option())
        assert response is not None, (offer, config)
        server_agreed = server.accepted()
        assert server_agreed is not None
        client = Extension(offer)
        client_agreed = client.accept(one(str(response)))
        # The server never compresses with a larger window than the client allowed...
        assert server_agreed.server_window_bits <= offer.server_window_bits
        assert client_agreed.server_window_bits == server_agreed.server_window_bits
        # ... and the client never with a larger one than the server inflates with.
        assert client_agreed.client_window_bits <= server_agreed.client_window_bits
        if offer.server_no_context_takeover:
            assert server_agreed.server_no_context_takeover
        if server_agreed.client_no_context_takeover:
            assert client_agreed.client_no_context_takeover
        exchange(server_agreed, client_agreed, client_sends=False, messages=messages)
        exchange(client_agreed, server_agreed, client_sends=True, messages=messages)
