"""permessage-deflate parameters (RFC 7692 §7.1): the value type, parsing, formatting.

A :class:`Parameters` is one ``permessage-deflate`` element of a
``Sec-WebSocket-Extensions`` header, read as an offer (client to server) or as a
response (server to client); :meth:`Parameters.parse` applies every rule of RFC 7692 §7.1
for the direction it is told, and :meth:`Parameters.option` writes it back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from wsio._engine.httphead import Option

__all__ = [
    "EXTENSION_NAME",
    "MAX_LZ77_WINDOW_SIZE",
    "MAX_WINDOW_BITS",
    "MIN_WINDOW_BITS",
    "Parameters",
    "DEFAULT_PARAMETERS",
]

#: RFC 7692 §7: 'The registered extension name for this extension is "permessage-deflate".'
EXTENSION_NAME: Final = "permessage-deflate"
#: RFC 7692 §7.1.2.1: "an LZ77 sliding window of up to 32,768 bytes".
MAX_LZ77_WINDOW_SIZE: Final = 32768
#: RFC 7692 §7.1.2.1: "a decimal integer value without leading zeroes between 8 to 15,
#: inclusive, indicating the base-2 logarithm of the LZ77 sliding window size".
MIN_WINDOW_BITS: Final = 8
MAX_WINDOW_BITS: Final = 15

_SERVER_NO_CONTEXT_TAKEOVER: Final = "server_no_context_takeover"
_CLIENT_NO_CONTEXT_TAKEOVER: Final = "client_no_context_takeover"
_SERVER_MAX_WINDOW_BITS: Final = "server_max_window_bits"
_CLIENT_MAX_WINDOW_BITS: Final = "client_max_window_bits"

# RFC 7692 §7.1.2.1: "server-max-window-bits = 1*DIGIT" with "a decimal integer value
# without leading zeroes"; the range is checked after the match.
_BITS = re.compile(r"[1-9][0-9]?")


@dataclass(frozen=True, slots=True)
class Parameters:
    """The four permessage-deflate parameters of one offer, response or agreement.

    ``server_max_window_bits`` is None (absent) or 8-15. ``client_max_window_bits`` is
    None (absent), 8-15, or True: present without a value, which only an offer may say
    ("I support the parameter in the response"). Instances are immutable and hashable;
    keep them as long as you like.
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | bool | None = None

    def __post_init__(self) -> None:
        for name in ("server_no_context_takeover", "client_no_context_takeover"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool")
        server = self.server_max_window_bits
        if server is not None and (
            isinstance(server, bool)
            or not isinstance(server, int)
            or not MIN_WINDOW_BITS <= server <= MAX_WINDOW_BITS
        ):
            raise ValueError(f"server_max_window_bits must be None or 8-15, not {server!r}")
        client = self.client_max_window_bits
        if client is False:
            raise ValueError("client_max_window_bits must be None, True or 8-15, not False")
        if (
            client is not None
            and client is not True
            and (not isinstance(client, int) or not MIN_WINDOW_BITS <= client <= MAX_WINDOW_BITS)
        ):
            raise ValueError(f"client_max_window_bits must be None, True or 8-15, not {client!r}")

    @property
    def server_window_bits(self) -> int:
        """The server's LZ77 window (base-2 log) these parameters allow: 15 when absent."""
        # RFC 7692 §7.1.2.1: "Absence of this parameter in an extension negotiation offer
        # indicates that the client can receive messages compressed using an LZ77 sliding
        # window of up to 32,768 bytes."
        return (
            MAX_WINDOW_BITS if self.server_max_window_bits is None else self.server_max_window_bits
        )

    @property
    def client_window_bits(self) -> int:
        """The client's LZ77 window (base-2 log) these parameters allow: 15 without a value."""
        # RFC 7692 §7.1.2.2: "Absence of this extension parameter in an extension
        # negotiation response indicates that the server can receive messages compressed
        # using an LZ77 sliding window of up to 32,768 bytes."
        bits = self.client_max_window_bits
        if bits is None or bits is True:
            return MAX_WINDOW_BITS
        return int(bits)

    @classmethod
    def parse(cls, option: Option, *, response: bool = False) -> Parameters:
        """Read a ``permessage-deflate`` option as an offer, or a response if ``response``.

        Raises ValueError (with the reason) for anything RFC 7692 §7.1 makes a server
        decline or a client fail: another extension name, an unknown or duplicate
        parameter, a value where none is allowed, or a missing or bad window size.
        """
        if option.name.lower() != EXTENSION_NAME:
            raise ValueError(f"not a {EXTENSION_NAME} option: {option.name!r}")
        # RFC 7692 §7.1: "A server MUST decline an extension negotiation offer for this
        # extension if any of the following conditions are met: The negotiation offer
        # contains an extension parameter not defined for use in an offer. The
        # negotiation offer contains an extension parameter with an invalid value. The
        # negotiation offer contains multiple extension parameters with the same name."
        # ... and "A client MUST _Fail the WebSocket Connection_ if the peer server
        # accepted an extension negotiation offer for this extension with an extension
        # negotiation response meeting any of the following conditions" (the same three).
        seen: set[str] = set()
        server_nct = client_nct = False
        server_bits: int | None = None
        client_bits: int | bool | None = None
        for raw_name, value in option.parameters:
            name = raw_name.lower()
            if name in seen:
                raise ValueError(f"duplicate parameter {name}")
            seen.add(name)
            if name in (_SERVER_NO_CONTEXT_TAKEOVER, _CLIENT_NO_CONTEXT_TAKEOVER):
                # RFC 7692 §7.1.1.1/§7.1.1.2: "This extension parameter has no value."
                if value is not None:
                    raise ValueError(f"{name} takes no value, got {value!r}")
                if name == _SERVER_NO_CONTEXT_TAKEOVER:
                    server_nct = True
                else:
                    client_nct = True
            elif name == _SERVER_MAX_WINDOW_BITS:
                # RFC 7692 §7.1.2.1: in an offer and in a response alike this parameter
                # "has a decimal integer value ... between 8 to 15".
                server_bits = _parse_bits(name, value)
            elif name == _CLIENT_MAX_WINDOW_BITS:
                # RFC 7692 §7.1.2.2: in an offer "This parameter has no value or a
                # decimal integer value"; in a response it "has a decimal integer value".
                bare = value is None and not response
                client_bits = True if bare else _parse_bits(name, value)
            else:
                raise ValueError(f"unknown parameter {raw_name!r}")
        return cls(server_nct, client_nct, server_bits, client_bits)

    def option(self) -> Option:
        """These parameters as a ``permessage-deflate`` option, in the RFC's order."""
        params: list[tuple[str, str | None]] = []
        if self.server_no_context_takeover:
            params.append((_SERVER_NO_CONTEXT_TAKEOVER, None))
        if self.client_no_context_takeover:
            params.append((_CLIENT_NO_CONTEXT_TAKEOVER, None))
        if self.server_max_window_bits is not None:
            params.append((_SERVER_MAX_WINDOW_BITS, str(self.server_max_window_bits)))
        if self.client_max_window_bits is True:
            params.append((_CLIENT_MAX_WINDOW_BITS, None))
        elif self.client_max_window_bits is not None:
            params.append((_CLIENT_MAX_WINDOW_BITS, str(self.client_max_window_bits)))
        return Option(EXTENSION_NAME, tuple(params))

    def __str__(self) -> str:
        return str(self.option())


def _parse_bits(name: str, value: str | None) -> int:
    if value is None:
        raise ValueError(f"{name} needs a value")
    if _BITS.fullmatch(value) is None or not MIN_WINDOW_BITS <= int(value) <= MAX_WINDOW_BITS:
        raise ValueError(f"{name} must be 8-15 without leading zeroes, got {value[:16]!r}")
    return int(value)


#: Neither side keeps its compression context between messages (gobwas/ws's default).
#: Nothing is held per idle connection: compressors come from a shared pool and a
#: decompressor lives only while a message is read. Give the server's
#: :class:`~wsio.wsflate.Extension` other parameters to trade memory for ratio.
DEFAULT_PARAMETERS: Final = Parameters(
    server_no_context_takeover=True, client_no_context_takeover=True
)
