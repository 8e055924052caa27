"""The wsio servers and clients that the Autobahn|Testsuite runs against.

``python -m compliance.run --ci`` runs the targets marked ``ci=True`` (CI and
``make test``); ``--all`` runs every one (``make compliance-all``); ``--target NAME``
runs one. Between them, the ``ci=True`` targets must cover every case group against at
least one server and one client of each API (blocking and asyncio, with and without
compression); see compliance/README.md for the timings that budget allows.

The shape of an entry (``compliance/model.py`` documents every field)::

    SERVERS = [
        ServerTarget(
            name="sync-echo",  # the agent name in the reports: letters, digits, _ . -
            command=["{python}", "examples/echo_server.py", "--host", "{host}", "--port", "{port}"],
            ci=True,
            exclude_cases=COMPRESSION_CASES,  # groups 1-10 only: no permessage-deflate
        ),
        ServerTarget(
            name="sync-echo-deflate",
            command=["{python}", "examples/wsflate_echo.py", "--port", "{port}"],
            ci=True,
            cases=COMPRESSION_CASES,  # groups 12-13 only
        ),
        ServerTarget(
            name="sync-echo-pure",  # the same server on the uncompiled engine
            command=["{python}", "examples/echo_server.py", "--port", "{port}"],
            ci=False,
            exclude_cases=COMPRESSION_CASES,
            env={"WSIO_PURE": "1"},
        ),
    ]
    CLIENTS = [
        ClientTarget(
            name="sync-client",
            command=["{python}", "examples/autobahn_client.py", "{url}", "{agent}"],
            ci=True,
        ),
    ]

A server listens on ``{host}:{port}`` and echoes every message; a client speaks the
suite's getCaseCount / runCase / updateReports protocol against ``{url}``.
"""

from __future__ import annotations

from compliance.model import (
    COMPRESSION_CASES,
    COMPRESSION_QUICK_CASES,
    ClientTarget,
    ServerTarget,
)

__all__ = ["CLIENTS", "COMPRESSION_CASES", "SERVERS"]


# The sans-I/O core under the smallest blocking driver (compliance/protocol_driver.py):
# groups 1-10 and the quick cut of 12-13 on one server and one client in CI.
_CORE_CASES = (*(f"{group}.*" for group in range(1, 11)), *COMPRESSION_QUICK_CASES)
_DRIVER = ["{python}", "-m", "compliance.protocol_driver"]


def _example(script: str, *extra: str) -> list[str]:
    return ["{python}", f"examples/{script}", "--host", "{host}", "--port", "{port}", *extra]


# Groups 1-10 on the plain echo servers; groups 12-13 (permessage-deflate) on the
# wsflate example. CI runs every subgroup of 12-13 at its five smallest sizes
# (COMPRESSION_QUICK_CASES, ~30 s a peer); --all runs all 216 cases (~13 min a peer).
SERVERS: list[ServerTarget] = [
    ServerTarget(
        name="echo-high-level",
        command=_example("echo_high_level.py"),
        ci=True,
        exclude_cases=COMPRESSION_CASES,
        description="http.server + upgrade_http + read_client_data/write_server_message",
    ),
    ServerTarget(
        name="echo-low-level",
        command=_example("echo_low_level.py"),
        ci=True,
        exclude_cases=COMPRESSION_CASES,
        description="Reader/Writer + shutil.copyfileobj + ControlHandler",
    ),
    ServerTarget(
        name="wsio-serve",
        command=["{python}", "-m", "wsio", "serve", "--host", "{host}", "--port", "{port}", "-q"],
        ci=True,
        exclude_cases=COMPRESSION_CASES,
        description="python -m wsio serve: Upgrader + Reader/Writer, a thread per connection",
    ),
    ServerTarget(
        name="echo-raw-frames",
        command=_example("echo_raw_frames.py"),
        ci=False,
        # Group 6: the raw example does not check that text is UTF-8 (wsutil does).
        # 7.9.4 (a Close frame with the code 1005): parse_close_frame_data returns 1005
        # for an empty body too, so check_close_frame_data lets an explicit 1005 through;
        # reported, back in when the frame layer refuses it.
        exclude_cases=(*COMPRESSION_CASES, "6.*", "7.9.4"),
        description="read_header/cipher/write_header, header and close checks, no UTF-8",
    ),
    ServerTarget(
        name="echo-high-level-pure",
        command=_example("echo_high_level.py"),
        ci=False,
        exclude_cases=COMPRESSION_CASES,
        env={"WSIO_PURE": "1"},
        description="echo-high-level on the uncompiled engine",
    ),
    ServerTarget(
        name="echo-low-level-pure",
        command=_example("echo_low_level.py"),
        ci=False,
        exclude_cases=COMPRESSION_CASES,
        env={"WSIO_PURE": "1"},
        description="echo-low-level on the uncompiled engine",
    ),
    ServerTarget(
        name="wsflate-stream",
        command=_example("wsflate_stream.py"),
        ci=True,
        cases=COMPRESSION_QUICK_CASES,
        description="wsflate Reader/Writer over wsutil, no context takeover",
    ),
    ServerTarget(
        name="wsflate-stream-takeover",
        command=_example("wsflate_stream.py", "--takeover"),
        ci=True,
        cases=COMPRESSION_QUICK_CASES,
        description="wsflate Reader/Writer over wsutil, context takeover when offered",
    ),
    ServerTarget(
        name="wsflate-stream-full",
        command=_example("wsflate_stream.py"),
        ci=False,
        cases=COMPRESSION_CASES,
        description="wsflate-stream on all 216 compression cases",
    ),
    ServerTarget(
        name="wsflate-stream-takeover-full",
        command=_example("wsflate_stream.py", "--takeover"),
        ci=False,
        cases=COMPRESSION_CASES,
        description="wsflate-stream-takeover on all 216 compression cases",
    ),
    ServerTarget(
        name="protocol-server",
        command=[*_DRIVER, "serve", "--host", "{host}", "--port", "{port}"],
        ci=True,
        cases=_CORE_CASES,
        description="wsio.protocol.ServerProtocol under a blocking driver (deflate accepted)",
    ),
    ServerTarget(
        name="protocol-server-pure",
        command=[*_DRIVER, "serve", "--host", "{host}", "--port", "{port}"],
        ci=False,
        cases=_CORE_CASES,
        env={"WSIO_PURE": "1"},
        description="protocol-server on the uncompiled engine",
    ),
]

CLIENTS: list[ClientTarget] = [
    ClientTarget(
        name="autobahn-client",
        command=["{python}", "examples/autobahn_client.py", "{url}", "{agent}"],
        ci=True,
        exclude_cases=COMPRESSION_CASES,
        description="Dialer + Reader/Writer + ControlHandler, client side",
    ),
    ClientTarget(
        name="autobahn-client-pure",
        command=["{python}", "examples/autobahn_client.py", "{url}", "{agent}"],
        ci=False,
        exclude_cases=COMPRESSION_CASES,
        env={"WSIO_PURE": "1"},
        description="autobahn-client on the uncompiled engine",
    ),
    ClientTarget(
        name="autobahn-client-deflate",
        command=["{python}", "examples/autobahn_client.py", "{url}", "{agent}", "--deflate"],
        ci=True,
        cases=COMPRESSION_QUICK_CASES,
        description="autobahn-client offering permessage-deflate (wsflate Reader/Writer)",
    ),
    ClientTarget(
        name="autobahn-client-deflate-full",
        command=["{python}", "examples/autobahn_client.py", "{url}", "{agent}", "--deflate"],
        ci=False,
        cases=COMPRESSION_CASES,
        description="autobahn-client-deflate on all 216 compression cases",
    ),
    ClientTarget(
        name="protocol-client",
        command=[*_DRIVER, "client", "{url}", "{agent}"],
        ci=True,
        exclude_cases=COMPRESSION_CASES,
        description="wsio.protocol.ClientProtocol under a blocking driver",
    ),
    ClientTarget(
        name="protocol-client-deflate",
        command=[*_DRIVER, "client", "{url}", "{agent}", "--deflate"],
        ci=True,
        cases=COMPRESSION_QUICK_CASES,
        description="protocol-client offering permessage-deflate",
    ),
]

# wsio.aio's callback level (examples/aio_*.py): groups 1-10 and the quick 12/13 set.
SERVERS += [
    ServerTarget(
        name="aio-callback-server",
        command=_example("aio_echo_callback.py"),
        ci=True,
        cases=_CORE_CASES,
        description="wsio.aio.create_server, a Listener echoing each frame (deflate on)",
    ),
]
CLIENTS += [
    ClientTarget(
        name="aio-callback-client",
        command=["{python}", "examples/aio_autobahn_client.py", "{url}", "{agent}"],
        ci=True,
        exclude_cases=COMPRESSION_CASES,
        description="wsio.aio.create_connection, a Listener echoing each frame",
    ),
    ClientTarget(
        name="aio-callback-client-deflate",
        command=["{python}", "examples/aio_autobahn_client.py", "{url}", "{agent}", "--deflate"],
        ci=True,
        cases=COMPRESSION_QUICK_CASES,
        description="aio-callback-client offering permessage-deflate",
    ),
]

# wsio.aio's high level (Connection, serve, connect), server and client.
SERVERS.append(
    ServerTarget(
        name="aio-echo",
        command=_example("aio_echo.py"),
        ci=True,
        cases=_CORE_CASES,
        description="wsio.aio.serve: a Connection per client, async for / send (deflate accepted)",
    )
)
CLIENTS.append(
    ClientTarget(
        name="aio-client",
        command=["{python}", "examples/aio_client.py", "{url}", "{agent}"],
        # 3.3 (a message, then a frame with RSV bits, in octet-wise chops) is answered
        # in order since Listener.owes_answer holds the Close for the unread message;
        # tests/test_aio_connection.py replays it from a raw server.
        ci=True,
        cases=_CORE_CASES,
        description="wsio.aio.connect: a Connection per case, offering permessage-deflate",
    )
)

# wsio.sync, the high-level connection for threads (examples/sync_*.py).
SERVERS.append(
    ServerTarget(
        name="sync-high-level",
        command=["{python}", "examples/sync_echo.py", "--host", "{host}", "--port", "{port}"],
        ci=True,
        cases=_CORE_CASES,
        description="wsio.sync.serve echo (Connection iteration and send), deflate accepted",
    )
)
CLIENTS.append(
    ClientTarget(
        name="sync-high-level-client",
        command=["{python}", "examples/sync_autobahn_client.py", "{url}", "{agent}"],
        ci=True,
        cases=_CORE_CASES,
        description="wsio.sync.connect echo client, permessage-deflate offered",
    )
)
