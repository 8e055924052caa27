"""The safe defaults of every limit, in one place; every layer takes them as keywords.

RFC 6455 §10.4: "implementations that have implementation- and/or platform-specific
limitations regarding the frame size or total message size after reassembly from
multiple frames MUST protect themselves against exceeding those limits."
"""

from __future__ import annotations

#: Largest message, after reassembly and after decompression (close code 1009 above it).
DEFAULT_MAX_MESSAGE_SIZE = 16 * 2**20
#: Largest single frame, as declared in its header.
DEFAULT_MAX_FRAME_SIZE = 16 * 2**20
#: Most frames in one fragmented message (each costs bookkeeping beyond its bytes).
DEFAULT_MAX_FRAGMENTS = 131072
#: Longest request, status or header line in the opening handshake.
DEFAULT_MAX_LINE = 8192
#: Most header lines in the opening handshake.
DEFAULT_MAX_HEADERS = 128
#: Largest opening handshake head (request or response line plus headers).
DEFAULT_MAX_HEAD_SIZE = 65536
#: Seconds for connect + TLS + opening handshake.
DEFAULT_OPEN_TIMEOUT = 10.0
#: Seconds to wait for the peer's Close frame and end of stream after sending ours.
DEFAULT_CLOSE_TIMEOUT = 10.0
#: Keepalive: seconds between pings, and seconds to wait for the pong.
DEFAULT_PING_INTERVAL = 20.0
DEFAULT_PING_TIMEOUT = 20.0
#: Write buffer high and low water marks (bytes) for flow control.
DEFAULT_WRITE_LIMIT = (65536, 16384)
#: Received messages queued before reading from the peer pauses.
DEFAULT_MAX_QUEUE = 16
#: Seconds for a server's whole opening handshake (request read, checked and answered).
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
