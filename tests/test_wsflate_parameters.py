"""wsflate.Parameters: RFC 7692 §7.1 parsing of offers and responses, and formatting."""

from __future__ import annotations

import pytest

from wsio._engine.httphead import Option, parse_options
from wsio.wsflate import DEFAULT_PARAMETERS, EXTENSION_NAME, Parameters


def one(header: str) -> Option:
    (option,) = parse_options(header)
    return option


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("permessage-deflate", Parameters()),
        ("permessage-deflate; server_no_context_takeover", Parameters(True)),
        ("permessage-deflate; client_no_context_takeover", Parameters(False, True)),
        ("permessage-deflate; server_max_window_bits=8", Parameters(server_max_window_bits=8)),
        ("permessage-deflate; server_max_window_bits=15", Parameters(server_max_window_bits=15)),
        ('permessage-deflate; server_max_window_bits="10"', Parameters(server_max_window_bits=10)),
        ("permessage-deflate; client_max_window_bits", Parameters(client_max_window_bits=True)),
        ("permessage-deflate; client_max_window_bits=9", Parameters(client_max_window_bits=9)),
        ("Permessage-Deflate; Client_Max_Window_Bits", Parameters(client_max_window_bits=True)),
        (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
            " server_max_window_bits=12; client_max_window_bits=11",
            Parameters(True, True, 12, 11),
        ),
    ],
)
def test_parse_offer(header: str, expected: Parameters) -> None:
    assert Parameters.parse(one(header)) == expected


@pytest.mark.parametrize(
    "header",
    [
        # RFC 7692 §7.1: unknown parameters, duplicates and invalid values are declined.
        "permessage-deflate; foo",
        "permessage-deflate; foo=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; server_no_context_takeover=1",
        'permessage-deflate; client_no_context_takeover=""',
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=+9",
        "permessage-deflate; server_max_window_bits=9.0",
        "permessage-deflate; server_max_window_bits=a",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=08",
        'permessage-deflate; client_max_window_bits=""',
        "permessage-deflate; client_max_window_bits=999999999999999999999999",
        "x-webkit-deflate-frame",
    ],
)
def test_parse_offer_refused(header: str) -> None:
    with pytest.raises(ValueError):
        Parameters.parse(one(header))


def test_parse_response_needs_client_bits_value() -> None:
    # RFC 7692 §7.1.2.2: in a response client_max_window_bits "has a decimal integer value".
    option = one("permessage-deflate; client_max_window_bits")
    assert Parameters.parse(option).client_max_window_bits is True
    with pytest.raises(ValueError, match="needs a value"):
        Parameters.parse(option, response=True)
    parsed = Parameters.parse(one("permessage-deflate; client_max_window_bits=10"), response=True)
    assert parsed.client_max_window_bits == 10


@pytest.mark.parametrize(
    "params",
    [
        Parameters(),
        DEFAULT_PARAMETERS,
        Parameters(True, False, 8, None),
        Parameters(False, True, None, True),
        Parameters(True, True, 15, 8),
        Parameters(client_max_window_bits=12),
    ],
)
def test_option_round_trip(params: Parameters) -> None:
    option = params.option()
    assert option.name == EXTENSION_NAME
    assert Parameters.parse(option) == params
    assert Parameters.parse(one(str(params))) == params


def test_option_text() -> None:
    assert str(DEFAULT_PARAMETERS) == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    )
    assert str(Parameters(server_max_window_bits=10, client_max_window_bits=True)) == (
        "permessage-deflate; server_max_window_bits=10; client_max_window_bits"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server_max_window_bits": 7},
        {"server_max_window_bits": 16},
        {"server_max_window_bits": True},
        {"client_max_window_bits": 16},
        {"client_max_window_bits": False},
        {"client_max_window_bits": "10"},
    ],
)
def test_constructor_refuses_bad_bits(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Parameters(**kwargs)  # type: ignore[arg-type]


def test_constructor_refuses_non_bool_flags() -> None:
    with pytest.raises(TypeError):
        Parameters(server_no_context_takeover=1)  # type: ignore[arg-type]


def test_effective_window_bits() -> None:
    assert Parameters().server_window_bits == 15
    assert Parameters().client_window_bits == 15
    assert Parameters(client_max_window_bits=True).client_window_bits == 15
    assert Parameters(client_max_window_bits=9).client_window_bits == 9
    assert Parameters(server_max_window_bits=8).server_window_bits == 8
