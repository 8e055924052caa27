"""permessage-deflate negotiation (RFC 7692 §7.1), for servers and for clients.

A server gives :meth:`Extension.negotiate` to :class:`wsio.Upgrader` (``negotiate=``); it
is called once per offered extension, accepts the first acceptable
``permessage-deflate`` offer and answers it. A client sends :meth:`Extension.offer` in
its request and checks the server's answer with :meth:`Extension.accept`. Either way
:meth:`Extension.accepted` is then the agreement, from which the codecs are built.

Server-side configuration (the ``parameters`` of a server's Extension) means:

==============================  ================================================
``server_no_context_takeover``  this server never keeps its compression context
                                (always said in the response)
``client_no_context_takeover``  the client must not keep its context (always said)
``server_max_window_bits=N``    this server compresses with at most 2**N bytes of
                                window (said when N < 15 or when the client asked)
``client_max_window_bits=N``    the client should compress with at most 2**N bytes
                                (said when the client's offer allows it)
==============================  ================================================

Window bits 8: zlib cannot compress raw deflate with an 8-bit window (it refuses
``wbits=-8``), and the response may not answer a larger value than an offer's
``server_max_window_bits`` (RFC 7692 §7.1.2.1: "the same or smaller value"). wsio answers
8 and compresses with zlib's 9-bit window: zlib's deflate never emits a match farther
back than the window size minus 262 bytes (``MAX_DIST`` = ``w_size - MIN_LOOKAHEAD``),
which for 512 bytes is 250, inside the 256 bytes that the peer keeps. The tests check
this by inflating with an 8-bit window.
"""

from __future__ import annotations

from collections.abc import Sequence

from wsio._engine.httphead import Option
from wsio.exceptions import UnexpectedExtensionError
from wsio.wsflate.parameters import (
    DEFAULT_PARAMETERS,
    EXTENSION_NAME,
    MAX_WINDOW_BITS,
    Parameters,
)

__all__ = ["Extension"]


class Extension:
    """Negotiates permessage-deflate with ``parameters`` as this side's configuration.

    Not thread-safe; :meth:`reset` it between handshakes to reuse it.
    """

    __slots__ = ("_accepted", "parameters")

    def __init__(self, parameters: Parameters = DEFAULT_PARAMETERS) -> None:
        self.parameters = parameters
        self._accepted: Parameters | None = None

    def reset(self) -> None:
        """Forget the last agreement, for the next handshake."""
        self._accepted = None

    def accepted(self) -> Parameters | None:
        """The agreed parameters of the last handshake, or None if there were none.

        On a server: exactly the response it sent. On a client: the server's response
        together with the limits this client promised in its offer.
        """
        return self._accepted

    # -- server side ---------------------------------------------------------------

    def negotiate(self, option: Option) -> Option | None:
        """Answer one offered extension: the response option, or None to decline it.

        Other extensions, malformed offers, and every offer after one was accepted are
        declined (the client lists its offers in order of preference).
        """
        if option.name.lower() != EXTENSION_NAME or self._accepted is not None:
            return None
        try:
            offer = Parameters.parse(option)
        except ValueError:
            # RFC 7692 §7.1: "A server MUST decline an extension negotiation offer for
            # this extension if ... [it] contains an extension parameter not defined for
            # use in an offer ... with an invalid value ... multiple extension parameters
            # with the same name".
            return None
        agreed = self._merge(offer)
        self._accepted = agreed
        return agreed.option()

    def _merge(self, offer: Parameters) -> Parameters:
        config = self.parameters

        # RFC 7692 §7.1.1.1: "A server accepts an extension negotiation offer that
        # includes the "server_no_context_takeover" extension parameter by including the
        # "server_no_context_takeover" extension parameter in the corresponding extension
        # negotiation response" and "A server MAY include the
        # "server_no_context_takeover" extension parameter in an extension negotiation
        # response even if the extension negotiation offer being accepted by the
        # extension negotiation response didn't include [it]".
        server_nct = offer.server_no_context_takeover or config.server_no_context_takeover

        # RFC 7692 §7.1.1.2: "A server MAY include the "client_no_context_takeover"
        # extension parameter in an extension negotiation response. If the received
        # extension negotiation offer includes the "client_no_context_takeover" extension
        # parameter, the server may either ignore the parameter or use the parameter to
        # avoid taking up memory". wsio repeats the client's hint, so that the agreement
        # says what both sides will do.
        client_nct = offer.client_no_context_takeover or config.client_no_context_takeover

        # RFC 7692 §7.1.2.1: "A server accepts an extension negotiation offer with this
        # parameter by including the "server_max_window_bits" extension parameter in the
        # extension negotiation response to send back to the client with the same or
        # smaller value as the offer." and "A server MAY include the
        # "server_max_window_bits" extension parameter in an extension negotiation
        # response even if the extension negotiation offer being accepted by the
        # response didn't include [it]". Every value 8-15 is supported (see the module
        # docstring for 8), so no offer is declined for it.
        server_bits: int | None
        if offer.server_max_window_bits is not None:
            server_bits = min(offer.server_max_window_bits, config.server_window_bits)
        elif config.server_window_bits < MAX_WINDOW_BITS:
            server_bits = config.server_window_bits
        else:
            server_bits = None

        # RFC 7692 §7.1.2.2: "If a received extension negotiation offer doesn't have the
        # "client_max_window_bits" extension parameter, the corresponding extension
        # negotiation response to the offer MUST NOT include the "client_max_window_bits"
        # extension parameter." ... "If the "client_max_window_bits" extension parameter
        # in a received extension negotiation offer has a value, the server may either
        # ignore this value or use this value to avoid allocating an unnecessarily big
        # LZ77 sliding window by including the "client_max_window_bits" extension
        # parameter in the corresponding extension negotiation response to the offer with
        # a value equal to or smaller than the received value."
        # A client that did not offer the parameter may use 15 whatever this server
        # would like: wsio accepts it (and inflates with a 15-bit window) rather than
        # run the connection without compression.
        client_bits: int | None = None
        wanted = self.parameters.client_max_window_bits
        wanted_bits = wanted if isinstance(wanted, int) and wanted is not True else None
        if offer.client_max_window_bits is True:
            client_bits = wanted_bits
        elif offer.client_max_window_bits is not None:
            offered = int(offer.client_max_window_bits)
            client_bits = offered if wanted_bits is None else min(offered, wanted_bits)
        return Parameters(server_nct, client_nct, server_bits, client_bits)

    # -- client side ---------------------------------------------------------------

    def offer(self) -> Option:
        """The offer to send (for ``Dialer(extensions=[...])``): these parameters as an option."""
        return self.parameters.option()

    def accept(self, option: Option) -> Parameters:
        """Check the server's response to :meth:`offer` and keep the agreement.

        Raises UnexpectedExtensionError for a response that breaks RFC 7692 §7.1 or that
        this client's offer did not allow; the handshake has then failed.
        """
        return self._accept(option, (self.parameters,))

    def accept_extensions(
        self, offered: Sequence[Option], accepted: list[Option]
    ) -> Sequence[Option] | None:
        """The Dialer's ``accept_extensions`` hook: check the permessage-deflate answer.

        Each ``permessage-deflate`` option in ``offered`` counts as an offer (the server
        answers one of them); the agreement is kept for :meth:`accepted`. Returns None:
        the accepted list stands. Raises UnexpectedExtensionError.
        """
        offers: list[Parameters] = []
        for option in offered:
            if option.name.lower() == EXTENSION_NAME:
                try:
                    offers.append(Parameters.parse(option))
                except ValueError as exc:
                    raise UnexpectedExtensionError(f"our own offer is invalid: {exc}") from None
        for option in accepted:
            if option.name.lower() == EXTENSION_NAME:
                self._accept(option, offers or (self.parameters,))
        return None

    def _accept(self, option: Option, offers: Sequence[Parameters]) -> Parameters:
        if option.name.lower() != EXTENSION_NAME:
            raise UnexpectedExtensionError(f"the server accepted {option.name!r}, not offered")
        if self._accepted is not None:
            # RFC 6455 §9.1: each extension name appears once in the server's response.
            raise UnexpectedExtensionError(f"the server accepted {EXTENSION_NAME} twice")
        # RFC 7692 §7.1: "A client MUST _Fail the WebSocket Connection_ if the peer
        # server accepted an extension negotiation offer for this extension with an
        # extension negotiation response meeting any of the following conditions: The
        # negotiation response contains an extension parameter not defined for use in a
        # response. The negotiation response contains an extension parameter with an
        # invalid value. The negotiation response contains multiple extension parameters
        # with the same name. The client does not support the configuration that the
        # response represents."
        try:
            response = Parameters.parse(option, response=True)
        except ValueError as exc:
            raise UnexpectedExtensionError(f"bad {EXTENSION_NAME} response: {exc}") from None
        # The server answers one of the offers: the first that allows the response.
        error: UnexpectedExtensionError | None = None
        for offered in offers:
            try:
                agreed = _agree(offered, response)
            except UnexpectedExtensionError as exc:
                error = error or exc
                continue
            self._accepted = agreed
            return agreed
        assert error is not None
        raise error


def _agree(offered: Parameters, response: Parameters) -> Parameters:
    """The agreement a response to ``offered`` makes, or UnexpectedExtensionError."""
    # RFC 7692 §7.1.1.1: the server accepts server_no_context_takeover "by including
    # the "server_no_context_takeover" extension parameter in the corresponding
    # extension negotiation response".
    if offered.server_no_context_takeover and not response.server_no_context_takeover:
        raise UnexpectedExtensionError(
            f"{EXTENSION_NAME}: server_no_context_takeover was requested, not granted"
        )
    # RFC 7692 §7.1.2.1: the server accepts "by including the
    # "server_max_window_bits" extension parameter ... with the same or smaller
    # value as the offer".
    if offered.server_max_window_bits is not None and (
        response.server_max_window_bits is None
        or response.server_max_window_bits > offered.server_max_window_bits
    ):
        raise UnexpectedExtensionError(
            f"{EXTENSION_NAME}: server_max_window_bits={offered.server_max_window_bits}"
            f" was requested, got {response.server_max_window_bits}"
        )
    # RFC 7692 §7.1.2.2: "If a received extension negotiation offer doesn't have the
    # "client_max_window_bits" extension parameter, the corresponding extension
    # negotiation response to the offer MUST NOT include [it]", and a value in the
    # response is "equal to or smaller than the received value".
    client_bits = response.client_max_window_bits
    if client_bits is not None:
        if offered.client_max_window_bits is None:
            raise UnexpectedExtensionError(
                f"{EXTENSION_NAME}: client_max_window_bits in the response was not offered"
            )
        if offered.client_max_window_bits is not True and int(client_bits) > int(
            offered.client_max_window_bits
        ):
            raise UnexpectedExtensionError(
                f"{EXTENSION_NAME}: client_max_window_bits={client_bits} is more than"
                f" the {offered.client_max_window_bits} offered"
            )
    elif offered.client_max_window_bits is not None and offered.client_max_window_bits is not True:
        # RFC 7692 §7.1.2.2: with a value in the offer, "the client is not going to
        # use an LZ77 sliding window size greater than the size specified by the
        # value in the extension negotiation offer", whatever the response says.
        client_bits = offered.client_max_window_bits

    return Parameters(
        server_no_context_takeover=response.server_no_context_takeover,
        # RFC 7692 §7.1.1.2: with the hint in the offer "the client is not going to
        # use context takeover" even if the response does not say it.
        client_no_context_takeover=(
            response.client_no_context_takeover or offered.client_no_context_takeover
        ),
        server_max_window_bits=response.server_max_window_bits,
        client_max_window_bits=client_bits,
    )
